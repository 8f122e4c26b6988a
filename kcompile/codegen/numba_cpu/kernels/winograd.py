"""3x3 stride-1 convolutions by Winograd's minimal filtering, F(m x m, 3 x 3) (Lavin &
Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).

Each tile of m x m output pixels reads an (m + 2) x (m + 2) patch d of the input; with
the transforms B, G and A below, its output is A^T [(G g G^T) . (B^T d B)] A, where the
product is elementwise per (patch position, channel pair) -- summed over input
channels, that is one GEMM per patch position xi: M[xi] (tiles, F) = V[xi] (tiles, C)
@ U[xi] (C, F). Per output pixel that is (m + 2)^2 / m^2 multiplications per (C, F)
pair instead of 9: 4 for m = 2, 2.25 for m = 4; the transforms are additions (and a few
constant multiplications) over vectors of channels.

A parallel job takes a run of tile rows (of one image, or of several small ones): it
transforms their patches into V, runs the GEMMs on igemm.py's register-tiled
micro-kernel (the rows of V[xi] its operand rows, U[xi] packed into its panels),
transforms the results back into the output and runs the epilogue on the job's rows
while they are in cache. Kernel gradients reuse the input transform and transform the
output gradient's tiles the other way (`conv_weight_grad_winograd`). The transforms are
generated as LLVM IR from the matrices below (intrinsics, as igemm.py's micro-kernel:
after changing them, delete this folder's __pycache__), so both tile sizes share one
implementation. Channels and filters must be whole vectors."""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ...native.irhelp import F32, I64, VOID, Fn, i64
from ...native.k_gemm import FLOAT_P
from .epilogue import apply
from .igemm import (MR, W, _address, _aligned, _flat_grid, _micro_tile_1, _micro_tile_2, _weight_grad_tile_1,
                    _weight_grad_tile_2, _weight_grad_tile_intrinsic, panel_shape, weight_grad_panel_shape)
from .scalar import FASTMATH

# B^T (input), G (kernel) and A^T (output) for F(2x2, 3x3) and F(4x4, 3x3), interpolation
# points 0, +-1 (, +-2) and infinity.
BT2 = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G2 = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT2 = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
BT4 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
AT4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)
TRANSFORMS = {2: (BT2, G2, AT2), 4: (BT4, G4, AT4)}
# A job's V and M buffers together: they stay in L2 between the GEMMs and the transforms
# (2^18 and 2^20 bytes ran slower).
JOB_BYTES = 1 << 19
MIN_JOBS = 8  # fewer tile rows per job when there are few (batch 1), so that every thread has work
WGRAD_JOBS = 8  # kernel gradient: parallel jobs, each with its own partial sum of the products


# -- transforms, as LLVM IR ----------------------------------------------------------------------
def _combine(b, matrix, row, values):
    """sum_k matrix[row, k] * values[k], skipping zeros, +-1 as additions."""
    total = None
    for k, coef in enumerate(matrix[row]):
        if coef == 0:
            continue
        value = values[k]
        if abs(coef) != 1:
            value = b.fmul(value, ir.Constant(value.type, [ir.Constant(F32, float(abs(coef)))] * W))
        if total is None:
            total = value if coef > 0 else b.fneg(value)
        else:
            total = b.fadd(total, value) if coef > 0 else b.fsub(total, value)
    return total


def _sandwich(b, left, right, tile):
    """left @ tile @ right^T for a tile of vectors (lists of lists)."""
    half = [[_combine(b, left, i, [tile[k][j] for k in range(len(tile))]) for j in range(len(tile[0]))]
            for i in range(len(left))]
    return [[_combine(b, right, j, half[i]) for j in range(len(right))] for i in range(len(left))]


def _patch_transform(module, kind: str, m: int):
    """void fn(float *src, i64 row, i64 pixel, float *dst, i64 plane, i64 width): for each
    vector of the `width` channels, the patch at src (rows `row` floats apart, pixels
    `pixel` apart) becomes L p L^T, position xi stored at dst + xi * plane. L is B^T for
    an input patch ("in", (m + 2)^2 positions from (m + 2)^2) or A for a tile of the
    output gradient ("grad", (m + 2)^2 from m^2)."""
    name = f"kc_winograd_{kind}_{m}_{W}"
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    bt, _, at = TRANSFORMS[m]
    left = bt if kind == "in" else at.T
    size, out_size = left.shape[1], left.shape[0]
    f = Fn(module, name, VOID, [FLOAT_P, I64, I64, FLOAT_P, I64, I64])
    f.fn.attributes.add("noinline")
    src, row, pixel, dst, plane, width = f.args
    b = f.b
    with f.loop(0, width, W, name="q") as q:
        patch = [[f.load(src, b.add(b.add(b.mul(i64(i), row), b.mul(i64(j), pixel)), q), W) for j in range(size)]
                 for i in range(size)]
        v = _sandwich(b, left, left, patch)
        for i in range(out_size):
            for j in range(out_size):
                f.store(v[i][j], dst, b.add(b.mul(i64(i * out_size + j), plane), q))
    return f.finish()


def _output_transform(module, m: int):
    """void out(float *src, i64 plane, float **dsts, i64 width): for each vector of the
    `width` filters, the tile's products (position xi at src + xi * plane) become
    A^T M A, output pixel (i, j) stored at dsts[i * m + j]."""
    name = f"kc_winograd_out_{m}_{W}"
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    at = TRANSFORMS[m][2]
    a = m + 2
    f = Fn(module, name, VOID, [FLOAT_P, I64, ir.PointerType(FLOAT_P), I64])
    f.fn.attributes.add("noinline")
    src, plane, dsts, width = f.args
    b = f.b
    targets = [b.load(b.gep(dsts, [i64(k)])) for k in range(m * m)]
    with f.loop(0, width, W, name="q") as q:
        products = [[f.load(src, b.add(b.mul(i64(i * a + j), plane), q), W) for j in range(a)] for i in range(a)]
        y = _sandwich(b, at, at, products)
        for i in range(m):
            for j in range(m):
                f.store(y[i][j], targets[i * m + j], q)
    return f.finish()


def _patch_intrinsic(kind: str, m: int):
    @intrinsic
    def patch_tile(typingctx, src, src_offset, row, pixel, dst, dst_offset, plane, width):
        """dst[dst_offset + xi * plane + ch] = (L p L^T)[xi][ch], p the patch at
        src[src_offset:] (see _patch_transform)."""
        def codegen(context, builder, signature, args):
            src_data = context.make_array(signature.args[0])(context, builder, args[0]).data
            dst_data = context.make_array(signature.args[4])(context, builder, args[4]).data
            fn = _patch_transform(builder.module, kind, m)
            builder.call(fn, [builder.gep(src_data, [args[1]]), args[2], args[3], builder.gep(dst_data, [args[5]]),
                              args[6], args[7]])
            return context.get_dummy_value()

        return types.none(src, src_offset, row, pixel, dst, dst_offset, plane, width), codegen

    return patch_tile


def _output_intrinsic(m: int):
    @intrinsic
    def output_tile(typingctx, src, src_offset, plane, dsts, width):
        """Output pixel k of the tile, filters [0, width), at address dsts[k] = (A^T M A)[k]."""
        def codegen(context, builder, signature, args):
            src_data = context.make_array(signature.args[0])(context, builder, args[0]).data
            dst_data = context.make_array(signature.args[3])(context, builder, args[3]).data
            fn = _output_transform(builder.module, m)
            float_pp = ir.PointerType(FLOAT_P)
            builder.call(fn, [builder.gep(src_data, [args[1]]), args[2], builder.bitcast(dst_data, float_pp), args[4]])
            return context.get_dummy_value()

        return types.none(src, src_offset, plane, dsts, width), codegen

    return output_tile


_input_tile_2, _input_tile_4 = _patch_intrinsic("in", 2), _patch_intrinsic("in", 4)
_grad_tile_2, _grad_tile_4 = _patch_intrinsic("grad", 2), _patch_intrinsic("grad", 4)
_output_tile_2, _output_tile_4 = _output_intrinsic(2), _output_intrinsic(4)
# Kernel gradients by one vector of filters: channel rows in tiles of EVEN_ROWS when the
# channels divide into them (12-row tiles computed 24 rows for 16 channels; by two
# vectors, 8-row tiles ran slower than 12-row ones with their waste).
EVEN_ROWS = 8
_weight_grad_rows = _weight_grad_tile_intrinsic(1, EVEN_ROWS)


# -- kernels ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def applies(geometry, groups, channels, filters):
    """Whether `conv_winograd` takes this convolution: a 3x3 window (one deep), unit
    strides and dilations, ungrouped, channels and filters in whole vectors."""
    window = geometry[0] == 1 and geometry[1] == 3 and geometry[2] == 3
    unit = True
    for k in range(3, 9):
        unit = unit and geometry[k] == 1
    return window and unit and groups == 1 and channels % W == 0 and filters % W == 0


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def pack(w2d, m):
    """w2d (9 * C, F), rows (kh, kw, c), as U = G g G^T in the micro-kernel's panels:
    (position, panel, C, NR) floats, zeros past F, aligned. Once when the program is
    bound for constant weights; on each call for weights that change."""
    g = G2 if m == 2 else G4
    a = m + 2
    k, f = w2d.shape
    c = k // 9
    nr = panel_shape(f)[0]
    panels = (f + nr - 1) // nr
    packed = _aligned(a * a * panels * c * nr)
    view = packed.reshape((a * a, panels, c, nr))
    half = np.empty((a, 3, f), np.float32)  # G g for one input channel
    for ch in range(c):
        for i in range(a):
            for kw in range(3):
                g0, g1, g2 = np.float32(g[i, 0]), np.float32(g[i, 1]), np.float32(g[i, 2])
                w0, w1, w2 = w2d[kw * c + ch], w2d[(3 + kw) * c + ch], w2d[(6 + kw) * c + ch]
                for q in range(f):
                    half[i, kw, q] = g0 * w0[q] + g1 * w1[q] + g2 * w2[q]
        for i in range(a):
            for j in range(a):
                g0, g1, g2 = np.float32(g[j, 0]), np.float32(g[j, 1]), np.float32(g[j, 2])
                for q in range(f):
                    view[i * a + j, q // nr, ch, q % nr] = g0 * half[i, 0, q] + g1 * half[i, 1, q] + g2 * half[i, 2, q]
    return packed


@njit(cache=True, nogil=True, inline="always")
def _tile_origin(u0, t, tiles_h, tiles_w, m):
    """(plane, first output row, first output column) of tile t of a run of tile rows
    (units) starting at u0: planes are (image, depth) pairs, tiles_h tile rows each."""
    unit = u0 + t // tiles_w
    return unit // tiles_h, unit % tiles_h * m, t % tiles_w * m


@njit(cache=True, nogil=True)
def _transform_inputs(flat, grid_dims, c, m, od_, tiles_h, tiles_w, u0, count, v):
    """v (positions, count, c) = B^T d B for the `count` tiles from tile row (unit) u0 on,
    d their patches of the padded input `flat` (taps.py's grid, of grid_dims)."""
    gd, gh, gw = grid_dims
    for t in range(count):
        plane, oh0, ow0 = _tile_origin(u0, t, tiles_h, tiles_w, m)
        corner = (((plane // od_ * gd + plane % od_) * gh + oh0) * gw + ow0) * c
        if m == 2:
            _input_tile_2(flat, corner, gw * c, c, v, t * c, count * c, c)
        else:
            _input_tile_4(flat, corner, gw * c, c, v, t * c, count * c, c)


@njit(cache=True, nogil=True)
def conv_winograd(x, w2d, out, geometry, m, steps, chan, res):
    """Convolution of x (N, D, H, W, C) by w2d (9 * C, F) (see `applies`), out (N, D, OH,
    OW, F), by F(m x m, 3 x 3) with m 2 or 4; the epilogue on each job's rows. Transforms
    the weights on each call (they change between training steps)."""
    conv_winograd_packed(x, pack(w2d, m), out, geometry, m, steps, chan, res)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_winograd_packed(x, packed, out, geometry, m, steps, chan, res):
    """conv_winograd on weights already transformed and packed (`pack`)."""
    n_, od_, oh_, ow_, f = out.shape
    c = x.shape[4]
    a = m + 2
    positions = a * a
    tiles_h, tiles_w = (oh_ + m - 1) // m, (ow_ + m - 1) // m
    flat, (gd, gh, gw) = _flat_grid(x, geometry, (od_, tiles_h * m, tiles_w * m))  # whole tiles inside the grid
    flat_out = out.reshape(-1)
    out2 = out.reshape((-1, f))
    nr, mr = panel_shape(f)
    panels = (f + nr - 1) // nr
    firsts = np.zeros(1, np.int64)
    lengths = np.full(1, c, np.int64)
    # A job takes consecutive tile rows (units), across images when they are small: its
    # rows of V and M stay in L2, and each GEMM has rows enough for whole register tiles.
    units = n_ * od_ * tiles_h
    per_job = max(1, JOB_BYTES // (positions * (c + panels * nr) * 4 * tiles_w))
    per_job = max(1, min(per_job, units // MIN_JOBS))
    jobs = (units + per_job - 1) // per_job
    for job in prange(jobs):
        u0 = job * per_job
        u1 = min(units, u0 + per_job)
        count = (u1 - u0) * tiles_w  # tiles in the job
        blocks = (count + mr - 1) // mr
        v = np.empty(positions * count * c, np.float32)
        products = _aligned(positions * blocks * panels * mr * nr)
        sink = _aligned(m * m * nr)  # outputs of edge tiles that fall past the image
        ptrs = np.empty(MR, np.int64)
        dsts = np.empty(m * m, np.int64)
        _transform_inputs(flat, (gd, gh, gw), c, m, od_, tiles_h, tiles_w, u0, count, v)
        for xi in range(positions):
            for blk in range(blocks):
                for i in range(mr):  # past the last tile: the last one again (computed, not stored)
                    ptrs[i] = _address(v, (xi * count + min(blk * mr + i, count - 1)) * c)
                for p in range(panels):
                    tile = products[((xi * blocks + blk) * panels + p) * mr * nr :]
                    if nr == W:
                        _micro_tile_1(ptrs, firsts, lengths, packed, (xi * panels + p) * c * nr, tile)
                    else:
                        _micro_tile_2(ptrs, firsts, lengths, packed, (xi * panels + p) * c * nr, tile)
        stride = blocks * panels * mr * nr  # between positions in `products`
        for t in range(count):
            plane, oh0, ow0 = _tile_origin(u0, t, tiles_h, tiles_w, m)
            for p in range(panels):
                for i in range(m):
                    for j in range(m):
                        if oh0 + i < oh_ and ow0 + j < ow_:
                            dsts[i * m + j] = _address(flat_out, ((plane * oh_ + oh0 + i) * ow_ + ow0 + j) * f + p * nr)
                        else:
                            dsts[i * m + j] = _address(sink, (i * m + j) * nr)
                at = ((t // mr * panels + p) * mr + t % mr) * nr
                width = min(nr, f - p * nr)
                if m == 2:
                    _output_tile_2(products, at, stride, dsts, width)
                else:
                    _output_tile_4(products, at, stride, dsts, width)
        first, last = u0 // tiles_h, (u1 - 1) // tiles_h  # the job's rows of the output, one block
        r0 = (first * oh_ + u0 % tiles_h * m) * ow_
        r1 = (last * oh_ + min(oh_, ((u1 - 1) % tiles_h + 1) * m)) * ow_
        apply(out2[r0:r1], steps, chan, res, r0)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_weight_grad_winograd(x, g, out, geometry, m):
    """out (9 * C, F) = the kernel gradient of a convolution `applies` takes, x (N, D, H,
    W, C), g (N, D, OH, OW, F): y = A^T [U . V] A per tile makes dU[xi] (C, F) = the sum
    over tiles of V[xi]^T (A dY A^T)[xi], one GEMM per position reduced over the tiles
    (igemm.py's kernel-gradient micro-kernel, channel rows by filter vectors), then
    out = G^T dU G."""
    n_, od_, oh_, ow_, f = g.shape
    c = x.shape[4]
    a = m + 2
    positions = a * a
    tiles_h, tiles_w = (oh_ + m - 1) // m, (ow_ + m - 1) // m
    flat, grid_dims = _flat_grid(x, geometry, (od_, tiles_h * m, tiles_w * m))
    flat_g = g.reshape(-1)
    nr, mr = weight_grad_panel_shape(f)
    even = nr == W and c % mr != 0 and c % EVEN_ROWS == 0
    mr = EVEN_ROWS if even else mr
    rows = (c + mr - 1) // mr * mr  # whole tiles of channel rows: rows past c are scratch
    units = n_ * od_ * tiles_h
    per_chunk = max(1, JOB_BYTES // (positions * (c + f) * 4 * tiles_w))  # tile rows transformed at a time
    chunks = (units + per_chunk - 1) // per_chunk
    jobs = max(1, min(WGRAD_JOBS, chunks))
    partial = np.zeros((jobs, positions, rows, f), np.float32)
    for job in prange(jobs):
        sums = partial[job].reshape(-1)
        v = np.empty(positions * per_chunk * tiles_w * c, np.float32)
        dg = np.empty(positions * per_chunk * tiles_w * f, np.float32)
        edge = np.empty(m * m * f, np.float32)  # a gradient tile past the image's edge, zero-filled
        ptrs = np.empty(mr, np.int64)
        for chunk in range(job * chunks // jobs, (job + 1) * chunks // jobs):
            u0 = chunk * per_chunk
            count = (min(units, u0 + per_chunk) - u0) * tiles_w
            _transform_inputs(flat, grid_dims, c, m, od_, tiles_h, tiles_w, u0, count, v)
            for t in range(count):
                plane, oh0, ow0 = _tile_origin(u0, t, tiles_h, tiles_w, m)
                src, at, row = flat_g, ((plane * oh_ + oh0) * ow_ + ow0) * f, ow_ * f
                if oh0 + m > oh_ or ow0 + m > ow_:
                    edge[:] = 0.0
                    for i in range(min(m, oh_ - oh0)):
                        for j in range(min(m, ow_ - ow0)):
                            pixel = at + i * row + j * f
                            edge[(i * m + j) * f : (i * m + j + 1) * f] = flat_g[pixel : pixel + f]
                    src, at, row = edge, 0, m * f
                if m == 2:
                    _grad_tile_2(src, at, row, f, dg, t * f, count * f, f)
                else:
                    _grad_tile_4(src, at, row, f, dg, t * f, count * f, f)
            for xi in range(positions):
                for r0 in range(0, rows, mr):
                    for i in range(mr):
                        ptrs[i] = _address(v, xi * count * c + min(r0 + i, c - 1))
                    for p in range(f // nr):
                        b_at, tile_at = xi * count * f + p * nr, (xi * rows + r0) * f + p * nr
                        if even:
                            _weight_grad_rows(ptrs, c, 0, dg, b_at, f, 0, count, 1, sums, tile_at, f)
                        elif nr == W:
                            _weight_grad_tile_1(ptrs, c, 0, dg, b_at, f, 0, count, 1, sums, tile_at, f)
                        else:
                            _weight_grad_tile_2(ptrs, c, 0, dg, b_at, f, 0, count, 1, sums, tile_at, f)
    products = partial.sum(axis=0)
    transform = G2 if m == 2 else G4
    for tap in prange(9):
        kh, kw = tap // 3, tap % 3
        block = out[tap * c : (tap + 1) * c]
        block[:, :] = 0.0
        for xi in range(positions):
            coef = np.float32(transform[xi // a, kh] * transform[xi % a, kw])
            if coef != 0:
                for ch in range(c):
                    source, target = products[xi, ch], block[ch]
                    for q in range(f):
                        target[q] += coef * source[q]
