"""Matrix products and convolutions.

Dense layers and convolutions are one kernel: an *implicit GEMM*. Output row r (a
sample, or an output pixel) reads its operand through a pointer computed from r (for a
convolution: the corner of its window in the input), and the reduction runs over
*taps*, (offset, length) runs of contiguous floats from that pointer (one per window
position; one for a dense layer). Consecutive taps that are contiguous in memory merge
into *segments* (a window row). Zero padding is virtual: a tap of a window that hangs
over the input's edge reads a buffer of zeros instead, and a tile with such a row
reduces tap by tap rather than segment by segment, so no padded copy of the input is
made. Weights are packed at build time into panels of NR = nv * W columns, so a
micro-kernel keeps an MR x NR tile of sums in vector registers, loads nv vectors of
weights and broadcasts MR operand values per step of the reduction. The epilogue
(bias, activation, residual add) runs on each finished tile before it is stored.

Tasks are (block of row tiles, panel) pairs; the C runtime spreads them over threads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...errors import KcompileError
from ...passes.rewrite import per_channel
from .irhelp import F32, I64, VOID, Fn, Sym, i64
from .k_elementwise import apply_epilogue_in_place
from .mathops import eval_program, program_dtypes

# Rows of the register tile for nv vectors of columns, by vector register count.
MR_TABLE = {32: {1: 12, 2: 12}, 16: {1: 12, 2: 6}}
MAX_TILES_PER_TASK = 8
MAX_VIRTUAL_TAPS = 64  # larger padded windows read a padded copy (per-tap pointers live on the stack)
TARGET_TASKS = 16  # enough tasks to balance a few threads when the batch is small
FLOAT_P = ir.PointerType(F32)


def tile_shape(isa, columns: int) -> tuple:
    nv = 1 if columns <= isa.width else 2
    return MR_TABLE.get(isa.registers, MR_TABLE[16])[nv], nv


# -- the micro-kernel ------------------------------------------------------------------------------
def micro_kernel_name(isa, mr: int, nv: int, stride: int) -> str:
    return f"kc_uk_{mr}x{nv * isa.width}_{stride}"


def micro_kernel(nm, mr: int, nv: int, stride: int):
    """void uk(float **ptrs, i64 *firsts, i64 *lengths, i64 nseg, float *panel, float *tile):
    tile[i][c] = sum over segments s, k < lengths[s] of ptrs[firsts[s] * stride + i][k] *
    panel[k'][c] (ptrs holds one pointer per tap and row, `stride` rows per tap)."""
    W = nm.isa.width
    NR = nv * W

    def build():
        f = Fn(nm.module, micro_kernel_name(nm.isa, mr, nv, stride), VOID,
               [ir.PointerType(FLOAT_P), ir.PointerType(I64), ir.PointerType(I64), I64, FLOAT_P, FLOAT_P])
        f.fn.attributes.add("noinline")
        ptrs, firsts, lengths, nseg, panel, tile = f.args
        for a in (ptrs, firsts, lengths, panel, tile):
            a.add_attribute("noalias")
        b = f.b
        vty = ir.VectorType(F32, W)
        zero = ir.Constant(vty, [ir.Constant(F32, 0.0)] * W)
        acc = [[f.var(vty, zero, name=f"acc{i}_{v}") for v in range(nv)] for i in range(mr)]
        bpos = f.var(I64, i64(0), name="bpos")
        fma = f.declare(f"llvm.fma.v{W}f32", vty, [vty, vty, vty])
        with f.loop(0, nseg, name="seg") as s:
            length = b.load(b.gep(lengths, [s]))
            first = b.mul(b.load(b.gep(firsts, [s])), i64(stride))
            rows = [b.load(b.gep(ptrs, [b.add(first, i64(i))])) for i in range(mr)]
            start = b.load(bpos)
            bp = b.gep(panel, [start])
            with f.loop(0, length, name="k") as k:
                kb = b.mul(k, i64(NR))
                bv = [f.load(bp, b.add(kb, i64(v * W)), W, align=64) for v in range(nv)]
                for i in range(mr):
                    a = f.splat(f.load(rows[i], k), W)
                    for v in range(nv):
                        b.store(b.call(fma, [a, bv[v], b.load(acc[i][v])]), acc[i][v])
            b.store(b.add(start, b.mul(length, i64(NR))), bpos)
        for i in range(mr):
            for v in range(nv):
                f.store(b.load(acc[i][v]), tile, i64(i * NR + v * W), align=64)
        return f.finish()

    return nm.kernel(("uk", mr, nv, stride), build)


# -- implicit GEMM ---------------------------------------------------------------------------------------
@dataclass
class Gemm:
    label: str
    rows: Sym  # M
    row_ptr: object  # (f, r) -> float* (the row's base, group 0)
    taps: list  # [(offset, length)] in floats from the row pointer, in the weights' row order
    weights: np.ndarray  # (K, groups * Fg)
    groups: int
    group_stride: int  # floats between groups in an operand row
    out: object  # Value, row-major (M, groups * Fg)
    epilogue: tuple = ()
    extras: tuple = ()
    # Virtual zero padding: (f, r) -> (an i1 per tap: inside the input, an i1: all are);
    # None when every tap of every row is inside.
    tap_inside: object = None


def merge_taps(taps: list) -> tuple:
    """(first tap, length) of each segment: runs of taps contiguous in memory."""
    firsts, lengths = [], []
    for t, (off, length) in enumerate(taps):
        if lengths and taps[firsts[-1]][0] + lengths[-1] == off:
            lengths[-1] += length
        else:
            firsts.append(t)
            lengths.append(length)
    return firsts, lengths


def _epilogue_operands(nm, g: Gemm, channels: int):
    """Per extra input: ("vec", packed per-channel array) or ("res", value); None if the
    epilogue cannot run on register tiles."""
    ops = []
    for v in g.extras:
        if isinstance(v, np.ndarray):
            ops.append(("vec", np.asarray(v, np.float32).reshape(channels)))
        elif nm.graph.is_param(v):
            vec = per_channel(nm.graph.params[v.name], channels, g.out.rank)
            if vec is None or v.dtype != "float32":
                return None
            ops.append(("vec", vec))
        elif v.type == g.out.type:
            ops.append(("res", v))
        else:
            return None
    return ops


def emit_gemm(nm, g: Gemm):
    isa = nm.isa
    W = isa.width
    K = int(sum(n for _, n in g.taps))
    F = g.weights.shape[1]
    Fg = F // g.groups
    if g.weights.shape[0] != K:
        raise KcompileError(f"{g.label}: weights {g.weights.shape} do not match a reduction of {K}")
    MR, nv = tile_shape(isa, Fg)
    NR = nv * W
    npanels = -(-Fg // NR)
    P = g.groups * npanels
    program = g.epilogue
    ep_ops = _epilogue_operands(nm, g, F) if program else []
    if program and ep_ops is not None:
        program_dtypes(program, [getattr(v, "dtype", "float32") for v in g.extras], "float32")
    fused = ep_ops is not None

    # Pack: (groups, panels, K, NR) with zero columns past Fg.
    w = np.zeros((g.groups, npanels * NR, K), np.float32)
    for grp in range(g.groups):
        w[grp, :Fg] = g.weights[:, grp * Fg:(grp + 1) * Fg].T
    packed = np.ascontiguousarray(w.reshape(g.groups, npanels, NR, K).transpose(0, 1, 3, 2))
    vectors = []
    for kind, item in (ep_ops or []):
        if kind == "vec":
            vv = np.zeros((g.groups, npanels * NR), np.float32)
            vv[:, :Fg] = item.reshape(g.groups, Fg)
            vectors.append(vv)
        else:
            vectors.append(None)
    # Pointer slots: one per tap with virtual padding (a tile over an edge reduces tap by
    # tap), else one per segment (the slot of segment s holds its first tap's pointer).
    firsts, lengths = merge_taps(g.taps)
    T = len(g.taps)
    virtual = g.tap_inside is not None
    slots = list(range(T)) if virtual else firsts
    merged = (np.array(firsts if virtual else range(len(firsts)), np.int64), np.array(lengths, np.int64))
    by_tap = (np.arange(T, dtype=np.int64), np.array([n for _, n in g.taps], np.int64))
    zeros = np.zeros(max(max(n for _, n in g.taps) + g.group_stride * (g.groups - 1), 1), np.float32)
    rows_outer = packed.nbytes <= (512 << 10)
    target_blocks = -(-TARGET_TASKS // P)

    def ntiles(f):
        return f.ceil_div(g.rows, MR)

    def tiles_per_task(f, n_tiles):
        """clamp(ceil(tiles / target blocks), 1, MAX_TILES_PER_TASK), from the batch."""
        per = f.ceil_div(n_tiles, target_blocks)
        return f.min(f.max(per, 1), MAX_TILES_PER_TASK)

    def nblocks(f):
        n_tiles = ntiles(f)
        per = tiles_per_task(f, n_tiles)
        return f.b.sdiv(f.b.add(n_tiles, f.b.sub(per, i64(1))), per)

    def body(f, lo, hi):
        b = f.b
        packed_ptr = nm.const_ptr(f, packed)
        segments = [nm.const_ptr(f, a) for a in merged]
        if virtual:
            zero_ptr = nm.const_ptr(f, zeros)
            single_taps = [nm.const_ptr(f, a) for a in by_tap]
        vec_ptrs = [nm.const_ptr(f, v) if v is not None else None for v in vectors]
        extras_ptrs = [None if isinstance(v, np.ndarray) else nm.ptr(f, v) for v in g.extras] if fused else []
        out_ptr = nm.ptr(f, g.out)
        ptrs = f.alloca(FLOAT_P, len(slots) * MR, align=64, name="ptrs")
        tile = f.alloca(F32, MR * NR, align=64, name="tile")
        M = f.sym(g.rows)
        n_tiles = ntiles(f)
        per_task = tiles_per_task(f, n_tiles)
        n_blocks = b.sdiv(b.add(n_tiles, b.sub(per_task, i64(1))), per_task)
        with f.loop(lo, hi, name="task") as t:
            if rows_outer:
                rb, pidx = b.sdiv(t, i64(P)), b.srem(t, i64(P))
            else:
                pidx, rb = b.sdiv(t, n_blocks), b.srem(t, n_blocks)
            grp, j = b.sdiv(pidx, i64(npanels)), b.srem(pidx, i64(npanels))
            panel = b.gep(packed_ptr, [b.mul(pidx, i64(K * NR))])
            t0 = b.mul(rb, per_task)
            t1 = f.min(b.add(t0, per_task), n_tiles)
            col0 = b.add(b.mul(grp, i64(Fg)), b.mul(j, i64(NR)))  # output column of the panel
            in_off = b.mul(grp, i64(g.group_stride))
            with f.loop(t0, t1, name="tile") as tt:
                r0 = b.mul(tt, i64(MR))
                mr = f.min(b.sub(M, r0), i64(MR))
                by_segment = [ptrs, *segments, i64(len(firsts)), panel, tile]
                if not virtual:
                    _tap_pointers(f, g, ptrs, slots, r0, mr, MR, in_off)
                    _call_micro_kernels(nm, f, mr, MR, nv, by_segment)
                else:
                    inside = _tap_pointers(f, g, ptrs, slots, r0, mr, MR, in_off, b.gep(zero_ptr, [in_off]))
                    with b.if_else(inside) as (then, otherwise):
                        with then:
                            _call_micro_kernels(nm, f, mr, MR, nv, by_segment)
                        with otherwise:  # some window hangs over the edge: by taps
                            _call_micro_kernels(nm, f, mr, MR, nv, [ptrs, *single_taps, i64(T), panel, tile])
                _store_tile(nm, f, g, program if fused else (), ep_ops or [], vec_ptrs, extras_ptrs, out_ptr, tile,
                            r0, mr, grp, j, col0, F, Fg, NR, npanels)

    ntasks = lambda f: f.b.mul(nblocks(f), i64(P))  # noqa: E731
    nm.step(g.label, body, ntasks=ntasks, cost=g.rows * (2 * K * F))
    if not fused:
        apply_epilogue_in_place(nm, _FakeNode(g))


class _FakeNode:
    def __init__(self, g: Gemm):
        self.attrs = {"epilogue": g.epilogue}
        self.inputs = [None, None] + list(g.extras)
        self.output = g.out


def _tap_pointers(f, g: Gemm, ptrs, slots, r0, mr, MR, in_off, zero=None):
    """ptrs[k * MR + i] = where row r0 + i reads tap slots[k] (with `zero`: the zeros for
    a tap outside the input); returns whether every tap of these rows is inside (with
    zero, for a Gemm with tap_inside)."""
    b = f.b
    inside = f.var(ir.IntType(1), ir.Constant(ir.IntType(1), 1), name="inside") if zero is not None else None
    with f.loop(0, mr, name="r") as i:
        r = b.add(r0, i)
        base = b.gep(g.row_ptr(f, r), [in_off])
        flags, all_inside = g.tap_inside(f, r) if zero is not None else (None, None)
        if zero is not None:
            b.store(b.and_(b.load(inside), all_inside), inside)
        for k, t in enumerate(slots):
            p = b.gep(base, [i64(g.taps[t][0])])
            if flags is not None and flags[t] is not None:
                p = b.select(flags[t], p, zero)
            b.store(p, b.gep(ptrs, [b.add(i64(k * MR), i)]))
    return b.load(inside) if zero is not None else None


def _call_micro_kernels(nm, f, mr, MR, nv, args):
    """Call the MR-row micro-kernel, or the one for the remaining rows."""
    b = f.b
    full = b.icmp_signed("==", mr, i64(MR))
    with b.if_else(full) as (then, otherwise):
        with then:
            b.call(micro_kernel(nm, MR, nv, MR), args)
        with otherwise:
            done = f.fn.append_basic_block("uk.done")
            switch = b.switch(mr, done)
            for rows in range(1, MR):
                block = f.fn.append_basic_block(f"uk.{rows}")
                switch.add_case(i64(rows), block)
                b.position_at_end(block)
                b.call(micro_kernel(nm, rows, nv, MR), args)
                b.branch(done)
            b.position_at_end(done)


def _store_tile(nm, f, g, program, ep_ops, vec_ptrs, extras_ptrs, out_ptr, tile, r0, mr, grp, j, col0, F, Fg, NR,
                npanels):
    """Epilogue and store of an (mr x NR) tile at rows r0.., columns col0.."""
    b = f.b
    W = nm.isa.width
    vec_base = b.add(b.mul(grp, i64(npanels * NR)), b.mul(j, i64(NR)))

    def emit_row(i, cols_range):
        r = b.add(r0, i)
        row_out = b.add(b.mul(r, i64(F)), col0)

        def lanes(c, w):
            acc = f.load(tile, b.add(b.mul(i, i64(NR)), c), w)
            if program:
                vals = []
                for (kind, _), vp, xp in zip(ep_ops, vec_ptrs, extras_ptrs):
                    if kind == "vec":
                        vals.append(f.load(vp, b.add(vec_base, c), w))
                    else:
                        vals.append(f.load(xp, b.add(row_out, c), w))
                acc, _ = eval_program(f, program, vals, ["float32"] * len(vals), acc, "float32")
            f.store(acc, out_ptr, b.add(row_out, c))

        cols_range(lanes)

    partial = Fg % NR
    if partial == 0:
        with f.loop(0, mr, name="st") as i:
            emit_row(i, lambda lanes: [lanes(i64(v * W), W) for v in range(NR // W)])
        return
    last = b.icmp_signed("==", j, i64(npanels - 1))
    with b.if_else(last) as (then, otherwise):
        with then:
            with f.loop(0, mr, name="stp") as i:
                emit_row(i, lambda lanes: f.vloop(0, partial, W, lanes))
        with otherwise:
            with f.loop(0, mr, name="st") as i:
                emit_row(i, lambda lanes: [lanes(i64(v * W), W) for v in range(NR // W)])


# -- lowerings ---------------------------------------------------------------------------------------------
def _param(nm, value):
    if not nm.graph.is_param(value):
        return None
    return np.asarray(nm.graph.params[value.name], np.float32)


def lower_matmul(nm, node):
    a, bval = node.inputs[:2]
    out = node.output
    weights = _param(nm, bval)
    if weights is not None and weights.ndim == 2 and a.dtype == "float32":
        K = a.shape[-1]

        def row_ptr(f, r):
            return f.b.gep(nm.ptr(f, a), [f.b.mul(r, i64(K))])

        rows = nm.count(a) * 1
        rows = Sym(rows.coef // K, rows.dyn)
        emit_gemm(nm, Gemm(f"{out.name}_matmul", rows, row_ptr, [(0, K)], weights, 1, 0, out,
                           node.attrs.get("epilogue", ()), tuple(node.inputs[2:])))
        return
    _batched_matmul(nm, node)
    apply_epilogue_in_place(nm, node)


def _lead_strides(nm, value, out_lead: list) -> list:
    dims, strides = nm.dims(value)[:-2], nm.strides(value)[:-2]
    offset = len(out_lead) - len(dims)
    result = []
    for axis, size in enumerate(out_lead):
        jj = axis - offset
        result.append(0 if jj < 0 or (dims[jj] == 1 and size != 1) else strides[jj])
    return result


def _unravel(f, index, sizes: list) -> list:
    """Multi-index of a flat index over sizes (ints or Syms), outermost first."""
    b = f.b
    out = []
    for size in reversed(sizes[1:]):
        s = f.sym(size)
        out.append(b.srem(index, s))
        index = b.sdiv(index, s)
    out.append(index)
    return list(reversed(out))


def _batched_matmul(nm, node):
    """General (..., M, K) @ (..., K, N) with broadcast leading axes: a plain loop nest."""
    a, bv = node.inputs[:2]
    out = node.output
    if a.dtype != "float32":
        raise KcompileError("native backend: matmul supports float32 only")
    out_dims = nm.dims(out)
    lead = out_dims[:-2]
    M, K, N = a.shape[-2], a.shape[-1], bv.shape[-1]
    if any(d is None for d in (M, K, N)):
        raise KcompileError(f"native backend: matmul over the batch axis ({a.type} @ {bv.type}) is not supported")
    sa, sb = _lead_strides(nm, a, lead), _lead_strides(nm, bv, lead)
    nlead = Sym(1)
    for d in lead:
        nlead = nlead * d
    W = nm.isa.width

    def body(f, lo, hi):
        b = f.b
        pa, pb, pc = nm.ptr(f, a), nm.ptr(f, bv), nm.ptr(f, out)
        with f.loop(lo, hi, name="bm") as t:
            idx = _unravel(f, t, lead) if lead else []
            oa, ob = i64(0), i64(0)
            for k, ix in enumerate(idx):
                if sa[k] != 0:
                    oa = b.add(oa, b.mul(ix, f.sym(sa[k])))
                if sb[k] != 0:
                    ob = b.add(ob, b.mul(ix, f.sym(sb[k])))
            oc = b.mul(t, i64(M * N))
            with f.loop(0, M, name="m") as m:
                crow = b.add(oc, b.mul(m, i64(N)))
                f.vloop(0, N, W, lambda c, w: f.store(ir.Constant(F32, 0.0) if w == 1 else
                                                       _zeros(w), pc, b.add(crow, c)))
                with f.loop(0, K, name="k") as k:
                    av = f.load(pa, b.add(oa, b.add(b.mul(m, i64(K)), k)))
                    brow = b.add(ob, b.mul(k, i64(N)))

                    def axpy(c, w):
                        acc = f.load(pc, b.add(crow, c), w)
                        prod = b.fmul(f.splat(av, w), f.load(pb, b.add(brow, c), w))
                        f.store(b.fadd(acc, prod), pc, b.add(crow, c))

                    f.vloop(0, N, W, axpy)

    nm.step(f"{out.name}_batched_matmul", body, ntasks=nlead if lead else 1, cost=nlead * (2 * M * K * N))


def _zeros(w):
    return ir.Constant(ir.VectorType(F32, w), [ir.Constant(F32, 0.0)] * w)


def _as3(values, n, fill):
    return (fill,) * (3 - n) + tuple(values)


def lower_conv(nm, node):
    x, wv = node.inputs[:2]
    out = node.output
    weights = _param(nm, wv)
    if weights is None:
        raise KcompileError(f"conv {node.meta.get('layer', out.name)}: the native backend needs constant weights")
    if x.dtype != "float32":
        raise KcompileError("native backend: conv supports float32 only")
    nsp = x.rank - 2
    if nsp > 3:
        raise KcompileError(f"native backend: {nsp}-D convolution is not supported")
    a = node.attrs
    groups = a.get("groups", 1)
    window = _as3(wv.shape[:-2], nsp, 1)
    strides = _as3(a["strides"], nsp, 1)
    dil = _as3(a["dilations"], nsp, 1)
    pads = _as3(a["pads"], nsp, (0, 0))
    if any(p < 0 for pair in pads for p in pair):
        raise KcompileError("native backend: negative convolution padding")
    spatial = _as3(x.shape[1:-1], nsp, 1)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads))
    osp = _as3(out.shape[1:-1], nsp, 1)
    C = x.shape[-1]
    cg = wv.shape[-2]
    F = wv.shape[-1]
    batch = nm.dims(x)[0]
    positions = [(k1, k2, k3) for k1 in range(window[0]) for k2 in range(window[1]) for k3 in range(window[2])]

    def offsets(dims):
        """Each window position's offset (floats) from the window's corner in a buffer of `dims`."""
        return [((k1 * dil[0] * dims[1] + k2 * dil[1]) * dims[2] + k3 * dil[2]) * C for k1, k2, k3 in positions]

    if groups == C and cg == 1 and F == C and groups > 1 and len(positions) <= 64:
        source = _padded_input(nm, x, spatial, padded, pads, C, batch)
        _depthwise(nm, node, source, offsets(padded), weights.reshape(-1, F), padded, strides, osp, batch)
        return

    # Taps are window positions, offsets from the window's corner. With virtual padding
    # the corner is at o * stride - pad_lo in the input itself (outside it at the
    # borders); a window too large for per-tap pointers reads a padded copy instead.
    padded_any = any(lo or hi for lo, hi in pads)
    virtual = padded_any and len(positions) <= MAX_VIRTUAL_TAPS
    if virtual or not padded_any:
        source, dims, lows = (lambda f: nm.ptr(f, x)), spatial, [lo for lo, _ in pads]
    else:
        source, dims, lows = _padded_input(nm, x, spatial, padded, pads, C, batch), padded, [0, 0, 0]
    taps = [(off, cg) for off in offsets(dims)]
    per_image = osp[0] * osp[1] * osp[2]

    def corner(f, r):
        b = f.b
        n, rem = b.sdiv(r, i64(per_image)), b.srem(r, i64(per_image))
        o1, rem = b.sdiv(rem, i64(osp[1] * osp[2])), b.srem(rem, i64(osp[1] * osp[2]))
        o2, o3 = b.sdiv(rem, i64(osp[2])), b.srem(rem, i64(osp[2]))
        return n, [b.sub(b.mul(o, i64(st)), i64(lo)) for o, st, lo in zip((o1, o2, o3), strides, lows)]

    def row_ptr(f, r):
        b = f.b
        n, (c1, c2, c3) = corner(f, r)
        pixel = b.add(b.mul(b.add(b.mul(b.add(b.mul(n, i64(dims[0])), c1), i64(dims[1])), c2), i64(dims[2])), c3)
        return b.gep(source(f), [b.mul(pixel, i64(C))])

    def tap_inside(f, r):
        """Per tap: is its pixel inside the input (None: always, on unpadded axes)."""
        b = f.b
        _, coords = corner(f, r)
        per_axis = []  # per axis, per window index: i1 or None
        for c, w, d, (lo, hi), size in zip(coords, window, dil, pads, spatial):
            per_axis.append([None if lo == hi == 0 else
                             b.icmp_unsigned("<", b.add(c, i64(k * d)), i64(size)) for k in range(w)])
        flags, everywhere = [], ir.Constant(ir.IntType(1), 1)
        for position in positions:
            parts = [per_axis[axis][k] for axis, k in enumerate(position) if per_axis[axis][k] is not None]
            flag = None
            for part in parts:
                flag = part if flag is None else b.and_(flag, part)
            flags.append(flag)
        for axis_flags in per_axis:
            for flag in axis_flags:
                if flag is not None:
                    everywhere = b.and_(everywhere, flag)
        return flags, everywhere

    rows = Sym(per_image) * batch
    emit_gemm(nm, Gemm(f"{out.name}_conv", rows, row_ptr, taps, weights.reshape(-1, F), groups, cg, out,
                       a.get("epilogue", ()), tuple(node.inputs[2:]), tap_inside if virtual else None))


def _depthwise(nm, node, source, offsets, weights, padded, strides, osp, batch):
    """Depthwise convolution (one filter per channel): vectors over channels, a sum over
    the window's positions, the epilogue on each vector before it is stored."""
    out = node.output
    C = out.shape[-1]
    W = nm.isa.width
    program = node.attrs.get("epilogue", ())
    extras = tuple(node.inputs[2:])
    g = Gemm("", Sym(0), None, [], weights, 1, 0, out, program, extras)
    ep_ops = _epilogue_operands(nm, g, C) if program else []
    fused = ep_ops is not None
    if program and fused:
        program_dtypes(program, [v.dtype for v in extras], "float32")
    rows = Sym(osp[0] * osp[1]) * batch
    positions = len(offsets)

    def body(f, lo, hi):
        b = f.b
        src, dst = source(f), nm.ptr(f, out)
        pw = nm.const_ptr(f, np.ascontiguousarray(weights, np.float32))
        vecs = [nm.const_ptr(f, item) if kind == "vec" else None for kind, item in (ep_ops or [])]
        res = [nm.ptr(f, item) if kind == "res" else None for kind, item in (ep_ops or [])]
        with f.loop(lo, hi, name="drow") as r:
            n, rem = b.sdiv(r, i64(osp[0] * osp[1])), b.srem(r, i64(osp[0] * osp[1]))
            o1, o2 = b.sdiv(rem, i64(osp[1])), b.srem(rem, i64(osp[1]))
            i1 = b.add(b.mul(n, i64(padded[0])), b.mul(o1, i64(strides[0])))
            i2 = b.add(b.mul(i1, i64(padded[1])), b.mul(o2, i64(strides[1])))
            with f.loop(0, osp[2], name="o3") as o3:
                base = b.mul(b.add(b.mul(i2, i64(padded[2])), b.mul(o3, i64(strides[2]))), i64(C))
                obase = b.mul(b.add(b.mul(r, i64(osp[2])), o3), i64(C))

                def lanes(c, w):
                    acc = _zeros(w) if w > 1 else ir.Constant(F32, 0.0)
                    for k, off in enumerate(offsets):
                        xv = f.load(src, b.add(base, b.add(i64(off), c)), w)
                        acc = f.intrinsic("fma", [xv, f.load(pw, b.add(i64(k * C), c), w), acc])
                    if program and fused:
                        vals = [f.load(vp, c, w) if kind == "vec" else f.load(rp, b.add(obase, c), w)
                                for (kind, _), vp, rp in zip(ep_ops, vecs, res)]
                        acc, _ = eval_program(f, program, vals, ["float32"] * len(vals), acc, "float32")
                    f.store(acc, dst, b.add(obase, c))

                f.vloop(0, C, W, lanes)

    nm.step(f"{out.name}_depthwise", body, ntasks=rows, cost=nm.count(out) * (2 * positions))
    if program and not fused:
        apply_epilogue_in_place(nm, node)


def _padded_input(nm, x, spatial, padded, pads, C, batch):
    """A function (f) -> float* of the zero-padded input (a scratch copy when padded)."""
    if tuple(spatial) == tuple(padded):
        return lambda f: nm.ptr(f, x)
    count = Sym(padded[0] * padded[1] * padded[2] * C) * batch
    scratch = nm.scratch(count * 4)
    W = nm.isa.width
    rows = Sym(padded[0] * padded[1]) * batch
    row_len = padded[2] * C

    def body(f, lo, hi):
        b = f.b
        src, dst = nm.ptr(f, x), nm.scratch_ptr(f, scratch)
        def zero(start, stop):
            f.vloop(start, stop, W, lambda c, w: f.store(_zeros(w) if w > 1 else ir.Constant(F32, 0.0), dst, c))

        with f.loop(lo, hi, name="prow") as r:
            base = b.mul(r, i64(row_len))
            n, rem = b.sdiv(r, i64(padded[0] * padded[1])), b.srem(r, i64(padded[0] * padded[1]))
            p1, p2 = b.sdiv(rem, i64(padded[1])), b.srem(rem, i64(padded[1]))
            i1, i2 = b.sub(p1, i64(pads[0][0])), b.sub(p2, i64(pads[1][0]))
            inside = b.and_(b.and_(b.icmp_signed(">=", i1, i64(0)), b.icmp_signed("<", i1, i64(spatial[0]))),
                            b.and_(b.icmp_signed(">=", i2, i64(0)), b.icmp_signed("<", i2, i64(spatial[1]))))
            with b.if_else(inside) as (then, otherwise):
                with then:  # the row's margins are zeros, its middle a copy of the input row
                    left = pads[2][0] * C
                    right = left + spatial[2] * C
                    zero(base, b.add(base, i64(left)))
                    srow = b.mul(b.add(b.mul(b.add(b.mul(n, i64(spatial[0])), i1), i64(spatial[1])), i2),
                                 i64(spatial[2] * C))
                    drow = b.add(base, i64(left))
                    f.vloop(0, spatial[2] * C, W, lambda c, w: f.store(f.load(src, b.add(srow, c), w), dst,
                                                                       b.add(drow, c)))
                    zero(b.add(base, i64(right)), b.add(base, i64(row_len)))
                with otherwise:
                    zero(base, b.add(base, i64(row_len)))

    # Costed above its element count: run in parallel, the padded rows stay in the cache of
    # the thread whose convolution tasks read them.
    nm.step(f"{x.name}_pad", body, ntasks=rows, cost=count * 8)
    return lambda f: nm.scratch_ptr(f, scratch)


def lower_conv_transpose(nm, node):
    """Gather form: each output pixel sums x[i] @ w[k]^T over the kernel positions k
    whose stride and dilation map some input pixel i onto it."""
    x, wv = node.inputs[:2]
    out = node.output
    weights = _param(nm, wv)
    if weights is None:
        raise KcompileError(f"conv_transpose {node.meta.get('layer', out.name)}: the native backend needs constant "
                            "weights")
    nsp = x.rank - 2
    if nsp > 3:
        raise KcompileError(f"native backend: {nsp}-D transposed convolution is not supported")
    a = node.attrs
    window = _as3(wv.shape[:-2], nsp, 1)
    strides = _as3(a["strides"], nsp, 1)
    dil = _as3(a["dilations"], nsp, 1)
    lows = _as3([p[0] for p in a["pads"]], nsp, 0)
    spatial = _as3(x.shape[1:-1], nsp, 1)
    osp = _as3(out.shape[1:-1], nsp, 1)
    F, C = wv.shape[-2], wv.shape[-1]
    positions = int(np.prod(window))
    packed = np.ascontiguousarray(weights.reshape(positions, F, C).transpose(0, 2, 1))  # (k, C, F)
    W = nm.isa.width
    batch = nm.dims(x)[0]
    rows = Sym(osp[0] * osp[1]) * batch

    def body(f, lo, hi):
        b = f.b
        px, po = nm.ptr(f, x), nm.ptr(f, out)
        pw = nm.const_ptr(f, packed)
        acc = f.alloca(F32, F, align=64, name="acc")
        with f.loop(lo, hi, name="orow") as r:
            n, rem = b.sdiv(r, i64(osp[0] * osp[1])), b.srem(r, i64(osp[0] * osp[1]))
            o1, o2 = b.sdiv(rem, i64(osp[1])), b.srem(rem, i64(osp[1]))
            with f.loop(0, osp[2], name="o3") as o3:
                f.vloop(0, F, W, lambda c, w: f.store(_zeros(w) if w > 1 else ir.Constant(F32, 0.0), acc, c))
                with f.loop(0, positions, name="kp") as kp:
                    k1 = b.sdiv(kp, i64(window[1] * window[2]))
                    k2 = b.srem(b.sdiv(kp, i64(window[2])), i64(window[1]))
                    k3 = b.srem(kp, i64(window[2]))
                    valid = ir.Constant(ir.IntType(1), 1)
                    idx = []
                    for o, k, s, d, lo_, size in zip((o1, o2, o3), (k1, k2, k3), strides, dil, lows, spatial):
                        t = b.sub(b.add(o, i64(lo_)), b.mul(k, i64(d)))
                        q = b.sdiv(t, i64(s))
                        ok = b.and_(b.icmp_signed(">=", t, i64(0)), b.icmp_signed("==", b.srem(t, i64(s)), i64(0)))
                        valid = b.and_(valid, b.and_(ok, b.icmp_signed("<", q, i64(size))))
                        idx.append(q)
                    with f.if_then(valid):
                        pix = b.add(b.mul(b.add(b.mul(b.add(b.mul(n, i64(spatial[0])), idx[0]), i64(spatial[1])),
                                                idx[1]), i64(spatial[2])), idx[2])
                        with f.loop(0, C, name="c") as c:
                            xv = f.load(px, b.add(b.mul(pix, i64(C)), c))
                            wrow = b.mul(b.add(b.mul(kp, i64(C)), c), i64(F))

                            def axpy(j, w):
                                prod = b.fmul(f.splat(xv, w), f.load(pw, b.add(wrow, j), w))
                                f.store(b.fadd(f.load(acc, j, w), prod), acc, j)

                            f.vloop(0, F, W, axpy)
                opix = b.add(b.mul(b.add(b.mul(n, i64(osp[0])), o1), i64(osp[1])), o2)
                obase = b.mul(b.add(b.mul(opix, i64(osp[2])), o3), i64(F))
                f.vloop(0, F, W, lambda j, w: f.store(f.load(acc, j, w), po, b.add(obase, j)))

    nm.step(f"{out.name}_conv_transpose", body, ntasks=rows,
            cost=nm.count(out) * (2 * C * max(positions // max(np.prod(strides), 1), 1)))
    apply_epilogue_in_place(nm, node)
