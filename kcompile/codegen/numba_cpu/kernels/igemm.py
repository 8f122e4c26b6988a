"""Convolutions as an implicit GEMM on a register-tiled micro-kernel.

The micro-kernel is the native backend's (native/k_gemm.py, `micro_kernel`): an MR x NR
tile of sums held in vector registers over the whole reduction, NR = nv vectors of
output channels, MR output pixels whose operand values are broadcast. It is emitted as
LLVM IR into the Numba function that calls it (an intrinsic), so cached kernels keep
it (Numba's cache checks this file only: after changing micro_kernel, delete this
folder's __pycache__). BLAS-based algorithms (im2col, taps) re-read and re-write their
result tile once per GEMM call and pack operands on each call; on the seed CNNs' 3x3
convolutions of 16-64 channels this kernel ran at 1.08-1.48x the faster of them
(benchmarks/conv.py, 2026-11-30).

Output pixel r reads its window from the zero-padded input (taps.py's grid, no copy
when there is no padding) through one pointer per window row: a *segment* of KW * C
contiguous floats (dilation 1 along W) or KW segments of C floats. The weights are
packed into panels of (K, NR) floats, 64-byte aligned as the micro-kernel loads them:
once, when the program is bound, for constant weights (`pack`, `conv_packed`); on each
call for weights that change (training's, `conv_igemm`).

Kernel gradients have a micro-kernel of their own (`conv_weight_grad_igemm`, any
strides): a tile of (tap, channel) rows of the padded input by vectors of filters,
summed over a band of output lines, the output gradient read where it is."""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ...native.build import host_isa
from ...native.irhelp import F32, I64, VOID, Fn, i64
from ...native.k_gemm import FLOAT_P, micro_kernel, micro_kernel_name, tile_shape
from .epilogue import apply
from .scalar import FASTMATH
from .taps import _on_grid, _tap_offsets

ISA = host_isa()
W = ISA.width  # floats per vector register
MR1, _ = tile_shape(ISA, W)  # rows of the tile with one vector of columns
MR2, _ = tile_shape(ISA, 2 * W)  # ... with two
MR = max(MR1, MR2)  # pointer slots per segment (the micro-kernel's `stride`)
BLOCK_TILES = 8  # row tiles per parallel job: the job's output rows stay in cache for the epilogue
MIN_JOBS = 8  # fewer tiles per job when there are few rows (batch 1), so that every thread has work
WGRAD_PIXELS = 256  # kernel gradient: output pixels per micro-kernel call (its operand rows stay in L2)
MAX_JOBS = 16  # kernel gradient: parallel jobs, each with its own partial sum


class _IntrinsicModule:
    """What `micro_kernel` needs of a native module, over the LLVM module of the Numba
    function being compiled: the micro-kernel is defined there once."""

    def __init__(self, module):
        self.module, self.isa = module, ISA

    def kernel(self, key, build):
        existing = self.module.globals.get(micro_kernel_name(ISA, *key[1:]))
        return existing if existing is not None else build()


def _micro_tile_intrinsic(nv: int):
    mr = MR1 if nv == 1 else MR2

    @intrinsic
    def micro_tile(typingctx, ptrs, firsts, lengths, panel, panel_offset, tile):
        """tile (mr x nv*W, row-major) = the sums over the segments of rows ptrs[s * MR + i]
        times panel[panel_offset:] (see micro_kernel)."""
        def codegen(context, builder, signature, args):
            data = [context.make_array(t)(context, builder, a).data for t, a in zip(signature.args[:4], args[:4])]
            ptr_array, first_data, length_data, panel_data = data
            tile_data = context.make_array(signature.args[5])(context, builder, args[5]).data
            nseg = context.make_array(signature.args[1])(context, builder, args[1]).nitems
            fn = micro_kernel(_IntrinsicModule(builder.module), mr, nv, MR)
            float_pp = ir.PointerType(ir.PointerType(ir.FloatType()))
            builder.call(fn, [builder.bitcast(ptr_array, float_pp), first_data, length_data, nseg,
                              builder.gep(panel_data, [args[4]]), tile_data])
            return context.get_dummy_value()

        return types.none(ptrs, firsts, lengths, panel, panel_offset, tile), codegen

    return micro_tile


_micro_tile_1 = _micro_tile_intrinsic(1)
_micro_tile_2 = _micro_tile_intrinsic(2)


@intrinsic
def _address(typingctx, array, offset):
    """The address of element `offset` of `array`'s data, as an integer. (Taking it here,
    at each use, keeps the array alive: Numba frees an array after its last use, and an
    address taken once before a loop is not a use.)"""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(builder.gep(data, [args[1]]), ir.IntType(64))

    return types.int64(array, types.intp), codegen


@njit(cache=True, nogil=True)
def _aligned(n):
    """n float32 zeros starting on a 64-byte boundary (the micro-kernel's aligned loads)."""
    raw = np.zeros(n + 16, np.float32)
    skip = ((64 - raw.ctypes.data % 64) % 64) // 4
    return raw[skip : skip + n]


@njit(cache=True, nogil=True)
def _pack(w2d, nr):
    """(panels, K, nr) panels of w2d's columns, zeros past F, flattened and aligned."""
    k, f = w2d.shape
    panels = (f + nr - 1) // nr
    packed = _aligned(panels * k * nr)
    view = packed.reshape((panels, k, nr))
    for p in range(panels):
        width = min(nr, f - p * nr)
        view[p, :, :width] = w2d[:, p * nr : p * nr + width]
    return packed


@njit(cache=True, nogil=True)
def _segments(geometry, grid_dims, c):
    """(float offset of each segment from a window's corner, its length): one segment
    per window row (KD x KH) when its KW pixels are contiguous (dilation 1 along W),
    else one per tap."""
    kd_, kh_, kw_, _, _, _, dd, dh, dw, _, _, _ = geometry
    _, gh, gw = grid_dims
    per_row = 1 if dw == 1 else kw_
    offsets = np.empty(kd_ * kh_ * per_row, np.int64)
    lengths = np.empty(kd_ * kh_ * per_row, np.int64)
    s = 0
    for kd in range(kd_):
        for kh in range(kh_):
            for kw in range(per_row):
                offsets[s] = ((kd * dd * gh + kh * dh) * gw + kw * dw) * c
                lengths[s] = kw_ * c if per_row == 1 else c
                s += 1
    return offsets, lengths


@njit(cache=True, nogil=True)
def panel_shape(f):
    """(NR, MR) of a product's register tile for f output columns: one vector of columns
    when they fit in one, else two."""
    return (W, MR1) if f <= W else (2 * W, MR2)


@njit(cache=True, nogil=True)
def weight_grad_panel_shape(f):
    """(NR, MR) of the kernel-gradient micro-kernel's tile for f filters (a multiple of
    the vector width): two vectors of filters when they divide into them."""
    return (2 * W, MR2) if f % (2 * W) == 0 else (W, MR1)


@njit(cache=True, nogil=True)
def pack(w2d):
    """w2d (K, F) as conv_packed reads it: constant weights are packed once, when the
    program is bound (packing on each call cost batch-1 inference more than some of its
    convolutions)."""
    return _pack(w2d, panel_shape(w2d.shape[1])[0])


@njit(cache=True, nogil=True)
def _flat_grid(x, geometry, out_spatial):
    """(x on taps.py's zero-padded grid, flattened; the grid's (GD, GH, GW)): what the
    micro-kernels' row pointers address."""
    grid = _on_grid(x, geometry, out_spatial)
    _, gd, gh, gw, _ = grid.shape
    return grid.reshape(-1), (gd, gh, gw)


@njit(cache=True, nogil=True)
def conv_igemm(x, w2d, out, geometry, steps, chan, res):
    """Ungrouped convolution, any strides and dilations: x (N, D, H, W, C), w2d (KD*KH*KW*C,
    F) in (kd, kh, kw, c) row order, out (N, OD, OH, OW, F); the epilogue on each job's rows.
    Packs the weights on each call (they change between training steps)."""
    conv_packed(x, pack(w2d), w2d.shape[0], out, geometry, steps, chan, res)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_packed(x, packed, k, out, geometry, steps, chan, res):
    """conv_igemm on weights already packed (`pack`), k = KD*KH*KW*C."""
    n_, od_, oh_, ow_, f = out.shape
    c = x.shape[4]
    sd, sh, sw = geometry[3], geometry[4], geometry[5]
    flat, (gd, gh, gw) = _flat_grid(x, geometry, (od_, oh_, ow_))
    seg_offsets, seg_lengths = _segments(geometry, (gd, gh, gw), c)
    nseg = seg_offsets.shape[0]
    firsts = np.arange(nseg).astype(np.int64)
    nr, mr = panel_shape(f)
    panels = (f + nr - 1) // nr
    rows = n_ * od_ * oh_ * ow_
    out2 = out.reshape((rows, f))
    tiles = (rows + mr - 1) // mr
    per_job = max(1, min(BLOCK_TILES, tiles // MIN_JOBS))
    jobs = (tiles + per_job - 1) // per_job
    for job in prange(jobs):
        ptrs = np.empty(nseg * MR, np.int64)
        tile = _aligned(mr * nr)
        r_start = job * per_job * mr
        r_stop = min(rows, r_start + per_job * mr)
        for r0 in range(r_start, r_stop, mr):
            valid = min(mr, r_stop - r0)
            # The tile's first output pixel, then one step along W per row (no divisions
            # per row: they cost a 16-channel tile a visible share of its time).
            n, p = r0 // (od_ * oh_ * ow_), r0 % (od_ * oh_ * ow_)
            o1, o2, o3 = p // (oh_ * ow_), (p // ow_) % oh_, p % ow_
            for i in range(mr):
                if i < valid:
                    corner = (((n * gd + o1 * sd) * gh + o2 * sh) * gw + o3 * sw) * c
                for s in range(nseg):  # past the last row: the last one again (computed, not stored)
                    ptrs[s * MR + i] = _address(flat, corner + seg_offsets[s])
                o3 += 1
                if o3 == ow_:
                    o3, o2 = 0, o2 + 1
                    if o2 == oh_:
                        o2, o1 = 0, o1 + 1
                        if o1 == od_:
                            o1, n = 0, n + 1
            for j in range(panels):
                if nr == W:
                    _micro_tile_1(ptrs, firsts, seg_lengths, packed, j * k * nr, tile)
                else:
                    _micro_tile_2(ptrs, firsts, seg_lengths, packed, j * k * nr, tile)
                width = min(nr, f - j * nr)
                for i in range(valid):
                    target = out2[r0 + i, j * nr : j * nr + width]
                    for q in range(width):
                        target[q] = tile[i * nr + q]
        apply(out2[r_start:r_stop], steps, chan, res, r_start)


# -- kernel gradients --------------------------------------------------------------------------
def _weight_grad_micro_kernel(module, mr: int, nv: int):
    """void uk(float **a, i64 a_step, i64 a_line, float *b, i64 b_step, i64 b_line, i64 n,
    i64 lines, float *tile, i64 ldt): tile[i * ldt + c] += the sum over lines l < lines and
    pixels k < n of a[i][l * a_line + k * a_step] * b[l * b_line + k * b_step + c], for
    c < nv * W. One outer product per pixel: MR (tap, channel) rows of the input,
    broadcast, by nv vectors of output-gradient channels; the tile stays in registers
    over a band of output lines (the input's lines are a_line apart on the padded grid)."""
    name = f"kc_wgrad_lines_uk_{mr}x{nv * W}"
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    f = Fn(module, name, VOID, [ir.PointerType(FLOAT_P), I64, I64, FLOAT_P, I64, I64, I64, I64, FLOAT_P, I64])
    f.fn.attributes.add("noinline")
    a_ptrs, a_step, a_line, bp, b_step, b_line, n, lines, tile, ldt = f.args
    b = f.b
    vty = ir.VectorType(F32, W)
    fma = f.declare(f"llvm.fma.v{W}f32", vty, [vty, vty, vty])
    rows = [b.load(b.gep(a_ptrs, [i64(i)])) for i in range(mr)]
    spots = [[b.add(b.mul(i64(i), ldt), i64(v * W)) for v in range(nv)] for i in range(mr)]
    acc = [[f.var(vty, f.load(tile, spots[i][v], W), name=f"acc{i}_{v}") for v in range(nv)] for i in range(mr)]
    with f.loop(0, lines, name="l") as line:
        la, lb = b.mul(line, a_line), b.mul(line, b_line)
        with f.loop(0, n, name="k") as k:
            ka, kb = b.add(la, b.mul(k, a_step)), b.add(lb, b.mul(k, b_step))
            bv = [f.load(bp, b.add(kb, i64(v * W)), W) for v in range(nv)]
            for i in range(mr):
                a = f.splat(f.load(rows[i], ka), W)
                for v in range(nv):
                    b.store(b.call(fma, [a, bv[v], b.load(acc[i][v])]), acc[i][v])
    for i in range(mr):
        for v in range(nv):
            f.store(b.load(acc[i][v]), tile, spots[i][v])
    return f.finish()


def _weight_grad_tile_intrinsic(nv: int, mr: int | None = None):
    mr = mr or (MR1 if nv == 1 else MR2)

    @intrinsic
    def weight_grad_tile(typingctx, ptrs, a_step, a_line, b, b_offset, b_step, b_line, n, lines, tile, tile_offset,
                         ldt):
        """tile[tile_offset:] += the outer products of rows ptrs[:mr] and b[b_offset:] over
        a band of lines (see _weight_grad_micro_kernel)."""
        def codegen(context, builder, signature, args):
            def data(k):
                return context.make_array(signature.args[k])(context, builder, args[k]).data

            fn = _weight_grad_micro_kernel(builder.module, mr, nv)
            float_pp = ir.PointerType(ir.PointerType(ir.FloatType()))
            builder.call(fn, [builder.bitcast(data(0), float_pp), args[1], args[2], builder.gep(data(3), [args[4]]),
                              args[5], args[6], args[7], args[8], builder.gep(data(9), [args[10]]), args[11]])
            return context.get_dummy_value()

        return types.none(ptrs, a_step, a_line, b, b_offset, b_step, b_line, n, lines, tile, tile_offset, ldt), codegen

    return weight_grad_tile


_weight_grad_tile_1 = _weight_grad_tile_intrinsic(1)
_weight_grad_tile_2 = _weight_grad_tile_intrinsic(2)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_weight_grad_igemm(x, g, out, geometry):
    """out (taps * C, F) = the convolution's kernel gradient, F a multiple of the vector
    width: row (t, c) of out sums input channel c at the pixel tap t reads (on taps.py's
    padded grid, pixels `strides` apart) times the output gradient at each output pixel. The
    micro-kernel holds MR of those rows by one or two vectors of channels in registers
    over a band of output lines, reading the output gradient in place; jobs over the
    bands keep partial sums, added at the end."""
    n_, od_, oh_, ow_, f = g.shape
    c = x.shape[4]
    sd, sh, sw = geometry[3], geometry[4], geometry[5]
    flat_in, (gd, gh, gw) = _flat_grid(x, geometry, (od_, oh_, ow_))
    flat_g = g.reshape(-1)
    offsets = _tap_offsets(geometry, gh, gw)
    a_step, a_line = sw * c, sh * gw * c  # input floats between a line's pixels, between lines
    m = offsets.shape[0] * c
    nr, mr = weight_grad_panel_shape(f)
    band = max(1, min(oh_, WGRAD_PIXELS // ow_))  # output lines per micro-kernel call
    bands = (oh_ + band - 1) // band
    units = n_ * od_ * bands  # (image, depth, band): a band's lines are sh * gw grid pixels apart
    jobs = max(1, min(MAX_JOBS, units))
    partial = np.zeros((jobs, (m + mr - 1) // mr * mr, f), np.float32)  # whole tiles: rows past m are scratch
    for job in prange(jobs):
        ptrs = np.empty(mr, np.int64)
        sums = partial[job].reshape(-1)
        for u in range(job * units // jobs, (job + 1) * units // jobs):
            plane, h0 = u // bands, u % bands * band
            lines = min(oh_, h0 + band) - h0
            origin = ((plane // od_ * gd + plane % od_ * sd) * gh + h0 * sh) * gw  # the band's first window
            first = (plane * oh_ + h0) * ow_  # the band's first output pixel
            for m0 in range(0, m, mr):
                for i in range(mr):
                    row = min(m0 + i, m - 1)
                    ptrs[i] = _address(flat_in, (origin + offsets[row // c]) * c + row % c)
                for j in range(f // nr):
                    g_at, tile_at = first * f + j * nr, m0 * f + j * nr
                    if nr == W:
                        _weight_grad_tile_1(ptrs, a_step, a_line, flat_g, g_at, f, ow_ * f, ow_, lines, sums, tile_at, f)
                    else:
                        _weight_grad_tile_2(ptrs, a_step, a_line, flat_g, g_at, f, ow_ * f, ow_, lines, sums, tile_at, f)
    out[:, :] = partial.sum(axis=0)[:m]
