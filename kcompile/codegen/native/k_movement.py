"""Data movement: every injective primitive is a strided copy, dst[i] = src[offset +
sum(i_k * stride_k)], over coalesced axes (transpose, slice, concat, pad, broadcast_to,
repeat), plus gather (rows of a table, indices checked at run time) and resize
(source-index tables built at compile time). reshape is free: a view of its input."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...errors import KcompileError
from ...ir.ops.shape import resize_source
from .irhelp import F32, I32, I64, VOID, I8P, Sym, const, i64, ir_type
from .k_elementwise import CHUNK, broadcast_strides, coalesce

KC_ERROR_INPUT_VALUE = 5  # keep in sync with runtime.c / model.h


def _contiguous(dims: list) -> list:
    out, acc = [], Sym(1)
    for d in reversed(dims):
        out.append(acc if acc.dyn else acc.coef)
        acc = acc * d
    return list(reversed(out))


def _offset_sum(pairs):
    """sum(index * stride) of static indices and int/Sym strides: an int, a Sym, or a
    (Sym, int) pair when the sum has a batch-sized and a fixed part."""
    fixed, per_batch = 0, 0
    for index, stride in pairs:
        if not index:
            continue
        term = Sym(index) * stride if isinstance(stride, Sym) else Sym(index * stride)
        if term.dyn:
            per_batch += term.coef
        else:
            fixed += term.coef
    if per_batch and fixed:
        return (Sym(per_batch, True), fixed)
    return Sym(per_batch, True) if per_batch else fixed


def emit_copy(nm, label, dst, dst_offset, dst_strides, src, src_offset, src_strides, sizes):
    """dst[dst_offset + i . dst_strides] = src[src_offset + i . src_strides] for i in sizes."""
    sizes, (sst, dstr) = coalesce(list(sizes), [list(src_strides), list(dst_strides)])
    W = nm.isa.width
    flat = len(sizes) == 1
    total = Sym(1)
    for s in sizes:
        total = total * s

    def body(f, lo, hi):
        b = f.b
        ps, pd = nm.ptr(f, src), nm.ptr(f, dst)
        s0, d0 = f.sym(src_offset), f.sym(dst_offset)

        def inner(sb, db, start, stop):
            if sst[-1] == 1 and dstr[-1] == 1:
                f.vloop(start, stop, W, lambda i, w: f.store(f.load(ps, b.add(sb, i), w), pd, b.add(db, i)))
                return
            with f.loop(start, stop, name="c") as i:
                sv = f.load(ps, b.add(sb, b.mul(i, f.sym(sst[-1]))) if sst[-1] != 0 else sb)
                f.store(sv, pd, b.add(db, b.mul(i, f.sym(dstr[-1]))))

        if flat:
            start = b.mul(lo, i64(CHUNK))
            stop = f.min(b.mul(hi, i64(CHUNK)), f.sym(sizes[0]))
            inner(s0, d0, start, stop)
            return

        def nest(axis, sb, db, first=None):
            if axis == len(sizes) - 1:
                inner(sb, db, i64(0), f.sym(sizes[-1]))
                return
            start, stop = first if first else (i64(0), f.sym(sizes[axis]))
            with f.loop(start, stop, name=f"m{axis}") as i:
                nsb = b.add(sb, b.mul(i, f.sym(sst[axis]))) if sst[axis] != 0 else sb
                nest(axis + 1, nsb, b.add(db, b.mul(i, f.sym(dstr[axis]))))

        nest(0, s0, d0, (lo, hi))

    ntasks = (lambda f: f.ceil_div(sizes[0], CHUNK)) if flat else sizes[0]
    nm.step(label, body, ntasks=ntasks, cost=total)


def emit_fill(nm, label, dst, value):
    W = nm.isa.width
    count = nm.count(dst)

    def body(f, lo, hi):
        b = f.b
        pd = nm.ptr(f, dst)
        start = b.mul(lo, i64(CHUNK))
        stop = f.min(b.mul(hi, i64(CHUNK)), f.sym(count))

        f.vloop(start, stop, W, lambda i, w: f.store(const(ir_type(dst.dtype, w), value), pd, i))

    nm.step(label, body, ntasks=lambda f: f.ceil_div(count, CHUNK), cost=count)


def emit_transpose_copy(nm, x, perm, hint):
    """A scratch copy of x with its axes permuted (a Temp)."""
    factor = nm.factor(x)
    shape = tuple(x.shape[p] for p in perm)
    tmp = nm.temp(hint, shape, x.dtype, factor)
    strides = nm.strides(x)
    emit_copy(nm, f"{hint}_copy", tmp, 0, nm.strides(tmp), x, 0, [strides[p] for p in perm], nm.dims(tmp))
    return tmp


def lower_reshape(nm, node):
    """Nothing to do: the memory plan makes a reshape a view of its input."""
    storage = nm.plan.storage.get(node.output.name)
    if storage is None or storage[0] != "view":
        emit_copy(nm, f"{node.output.name}_reshape", node.output, 0, [1], node.inputs[0], 0, [1],
                  [nm.count(node.output)])


def lower_transpose(nm, node):
    x, out = node.inputs[0], node.output
    strides = nm.strides(x)
    perm = node.attrs["perm"]
    emit_copy(nm, f"{out.name}_transpose", out, 0, nm.strides(out), x, 0, [strides[p] for p in perm], nm.dims(out))


def lower_slice(nm, node):
    x, out = node.inputs[0], node.output
    strides = nm.strides(x)
    src_strides = list(strides)
    starts = [0] * x.rank
    a = node.attrs
    for axis, start, stop, step in zip(a["axes"], a["starts"], a["stops"], a["steps"]):
        axis %= x.rank
        begin, _, _ = slice(start, stop, step).indices(x.shape[axis])
        starts[axis] = begin
        src_strides[axis] = strides[axis] * step
    offset = _offset_sum(zip(starts, strides))
    emit_copy(nm, f"{out.name}_slice", out, 0, nm.strides(out), x, offset, src_strides, nm.dims(out))


def lower_concat(nm, node):
    out = node.output
    axis = node.attrs["axis"] % out.rank
    out_strides = nm.strides(out)
    position = 0
    for k, v in enumerate(node.inputs):
        offset = _offset_sum([(position, out_strides[axis])])
        emit_copy(nm, f"{out.name}_concat{k}", out, offset, out_strides, v, 0, nm.strides(v), nm.dims(v))
        position += v.shape[axis]


def lower_pad(nm, node):
    x, out = node.inputs[0], node.output
    out_strides = nm.strides(out)
    emit_fill(nm, f"{out.name}_fill", out, node.attrs.get("value", 0.0) if out.dtype == "float32"
              else int(node.attrs.get("value", 0)))
    offset = _offset_sum([(lo, st) for (lo, _), st in zip(node.attrs["pads"], out_strides)])
    emit_copy(nm, f"{out.name}_pad", out, offset, out_strides, x, 0, nm.strides(x), nm.dims(x))


def lower_broadcast_to(nm, node):
    x, out = node.inputs[0], node.output
    out_dims = nm.dims(out)
    emit_copy(nm, f"{out.name}_broadcast", out, 0, nm.strides(out), x, 0, broadcast_strides(nm, x, out_dims), out_dims)


def lower_repeat(nm, node):
    x, out = node.inputs[0], node.output
    axis, repeats = node.attrs["axis"] % x.rank, node.attrs["repeats"]
    dims, strides = nm.dims(x), nm.strides(x)
    sizes = dims[: axis + 1] + [repeats] + dims[axis + 1:]
    src = strides[: axis + 1] + [0] + strides[axis + 1:]
    emit_copy(nm, f"{out.name}_repeat", out, 0, _contiguous(sizes), x, 0, src, sizes)


def lower_gather(nm, node):
    table, indices = node.inputs
    out = node.output
    if any(d is None for d in table.shape[1:]):
        raise KcompileError("native backend: gather from a table whose rows depend on the batch")
    row = int(np.prod(table.shape[1:], dtype=np.int64))
    n_rows = nm.dims(table)[0]
    count = nm.count(indices)
    W = nm.isa.width
    per_task = 64

    def body(f, lo, hi):
        b = f.b
        pt, pi, po = nm.ptr(f, table), nm.ptr(f, indices), nm.ptr(f, out)
        report = f.declare("kcrt_report_error", VOID, [I8P, I32])
        limit = f.sym(n_rows)
        start = b.mul(lo, i64(per_task))
        stop = f.min(b.mul(hi, i64(per_task)), f.sym(count))
        with f.loop(start, stop, name="g") as i:
            idx = f.load(pi, i)
            idx = b.sext(idx, I64) if idx.type.width < 64 else idx
            ok = b.and_(b.icmp_signed(">=", idx, i64(0)), b.icmp_signed("<", idx, limit))
            dst = b.mul(i, i64(row))
            with b.if_else(ok) as (then, otherwise):
                with then:
                    src = b.mul(idx, i64(row))
                    f.vloop(0, row, W, lambda c, w: f.store(f.load(pt, b.add(src, c), w), po, b.add(dst, c)))
                with otherwise:
                    b.call(report, [f.exec, ir.Constant(I32, KC_ERROR_INPUT_VALUE)])
                    f.vloop(0, row, W, lambda c, w: f.store(const(ir_type(out.dtype, w), 0), po, b.add(dst, c)))

    nm.step(f"{out.name}_gather", body, ntasks=lambda f: f.ceil_div(count, per_task), cost=nm.count(out))


def lower_resize(nm, node):
    x, out = node.inputs[0], node.output
    if x.rank not in (3, 4) or x.dtype != "float32":
        raise KcompileError(f"native backend: resize of a rank-{x.rank} {x.dtype} tensor is not supported")
    method = node.attrs["method"]
    sp_in = (1,) * (4 - x.rank) + tuple(x.shape[1:-1])
    sp_out = (1,) * (4 - x.rank) + tuple(node.attrs["sizes"])
    C = x.shape[-1]
    tables = [resize_source(o, i, method) for o, i in zip(sp_out, sp_in)]
    W = nm.isa.width
    batch = nm.dims(x)[0]

    def body(f, lo, hi):
        b = f.b
        px, po = nm.ptr(f, x), nm.ptr(f, out)
        if method == "nearest":
            ty = nm.const_ptr(f, np.asarray(tables[0][0], np.int64))
            tx = nm.const_ptr(f, np.asarray(tables[1][0], np.int64))
        else:
            (ly, hy), fy = tables[0]
            (lx, hx), fx = tables[1]
            ply, phy, pfy = (nm.const_ptr(f, np.asarray(t, d)) for t, d in ((ly, np.int64), (hy, np.int64),
                                                                            (fy, np.float32)))
            plx, phx, pfx = (nm.const_ptr(f, np.asarray(t, d)) for t, d in ((lx, np.int64), (hx, np.int64),
                                                                            (fx, np.float32)))
        with f.loop(lo, hi, name="ry") as r:
            n, oy = b.sdiv(r, i64(sp_out[0])), b.srem(r, i64(sp_out[0]))
            img = b.mul(n, i64(sp_in[0]))
            with f.loop(0, sp_out[1], name="ox") as ox:
                obase = b.mul(b.add(b.mul(r, i64(sp_out[1])), ox), i64(C))

                def pix(yy, xx):
                    return b.mul(b.add(b.mul(b.add(img, yy), i64(sp_in[1])), xx), i64(C))

                if method == "nearest":
                    src = pix(f.load(ty, oy), f.load(tx, ox))
                    f.vloop(0, C, W, lambda c, w: f.store(f.load(px, b.add(src, c), w), po, b.add(obase, c)))
                else:
                    y0, y1, wy = f.load(ply, oy), f.load(phy, oy), f.load(pfy, oy)
                    x0, x1, wx = f.load(plx, ox), f.load(phx, ox), f.load(pfx, ox)
                    corners = [pix(y0, x0), pix(y1, x0), pix(y0, x1), pix(y1, x1)]

                    def lanes(c, w):
                        one = const(ir.VectorType(F32, w) if w > 1 else F32, 1.0)
                        fy_, fx_ = f.splat(wy, w), f.splat(wx, w)
                        v = [f.load(px, b.add(p, c), w) for p in corners]
                        left = b.fadd(b.fmul(v[0], b.fsub(one, fy_)), b.fmul(v[1], fy_))
                        right = b.fadd(b.fmul(v[2], b.fsub(one, fy_)), b.fmul(v[3], fy_))
                        f.store(b.fadd(b.fmul(left, b.fsub(one, fx_)), b.fmul(right, fx_)), po, b.add(obase, c))

                    f.vloop(0, C, W, lanes)

    nm.step(f"{out.name}_resize", body, ntasks=Sym(sp_out[0]) * batch, cost=nm.count(out) * 4)
