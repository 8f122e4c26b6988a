"""Stride-1 convolutions as one GEMM per window tap, with no im2col.

Lay the output over the grid of (zero-padded) input positions, flattened over (image,
D, H, W): grid row r is input pixel r. For window tap t = (kd, kh, kw), grid row r
reads input row r + offset[t], so over a run of grid rows the tap's operand is a plain
block of the input, rows of C floats one after another, which BLAS reads in place:

    out_grid[rows] = sum over taps t of X[rows + offset[t]] @ W[t]        (C x F each)

Grid rows whose window would hang over the far edge (oh >= OH, ...) are computed and
dropped: (H*W - OH*OW) / (H*W) of the work, the price of never copying windows. The
weight gradient is the same sum read the other way, dW[t] = X[rows + offset[t]]^T @ G,
with G the output gradient laid on the grid (zeros on the dropped rows)."""
import numpy as np
from numba import njit, prange

from .blas import gemm_tile
from .epilogue import apply
from .scalar import FASTMATH

TILE_FLOATS = 1 << 15  # a chunk's operand and result rows stay in L2 across its taps
MIN_JOBS = 4  # chunks are cut smaller when fewer would leave threads idle (small batches)
MAX_JOBS = 16  # weight gradient: parallel jobs, each with its own partial sum
ACCUMULATE = np.array([1.0, 1.0], np.float32)  # gemm_tile (alpha, beta): out += a @ b
OVERWRITE = np.array([1.0, 0.0], np.float32)


@njit(cache=True, nogil=True)
def _grid_shape(x, geometry, out_spatial):
    """(GD, GH, GW): the padded input's extent, exactly what the outputs' windows cover."""
    kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, _, _, _ = geometry
    od_, oh_, ow_ = out_spatial
    return ((od_ - 1) * sd + (kd_ - 1) * dd + 1, (oh_ - 1) * sh + (kh_ - 1) * dh + 1,
            (ow_ - 1) * sw + (kw_ - 1) * dw + 1)


@njit(cache=True, nogil=True, parallel=True)
def _on_grid(x, geometry, out_spatial):
    """x laid on the grid: zero padding added (leading pads from geometry, trailing as the
    output needs), as x itself when there is none."""
    pd, ph, pw = geometry[9], geometry[10], geometry[11]
    n_, d_in, h_in, w_in, c = x.shape
    gd, gh, gw = _grid_shape(x, geometry, out_spatial)
    if pd == 0 and ph == 0 and pw == 0 and gd <= d_in and gh <= h_in and gw <= w_in:
        return x  # every window inside the input (at strides above 1 the grid may end early)
    grid = np.empty((n_, gd, gh, gw, c), np.float32)
    for line in prange(n_ * gd * gh):
        n, i, j = line // (gd * gh), (line // gh) % gd, line % gh
        row = grid[n, i, j]
        si, sj = i - pd, j - ph
        if 0 <= si < d_in and 0 <= sj < h_in:
            # One block copy of the input line (per-pixel copies cost more than the data).
            inside = max(0, min(w_in, gw - pw))
            row[: min(pw, gw)] = 0.0
            row[pw : pw + inside] = x[n, si, sj, :inside]
            row[pw + inside :] = 0.0
        else:
            row[:, :] = 0.0
    return grid


@njit(cache=True, nogil=True)
def _tap_offsets(geometry, gh, gw):
    kd_, kh_, kw_, _, _, _, dd, dh, dw, _, _, _ = geometry
    offsets = np.empty(kd_ * kh_ * kw_, np.int64)
    t = 0
    for kd in range(kd_):
        for kh in range(kh_):
            for kw in range(kw_):
                offsets[t] = (kd * dd * gh + kh * dh) * gw + kw * dw
                t += 1
    return offsets


@njit(cache=True, nogil=True)
def _used_rows(grid, out_spatial):
    """Grid rows up to the last one that is an output (later ones read past the input)."""
    n_, gd, gh, gw, _ = grid.shape
    od_, oh_, ow_ = out_spatial
    return (((n_ - 1) * gd + od_ - 1) * gh + oh_ - 1) * gw + ow_


@njit(cache=True, nogil=True)
def _input_grid(x, geometry, out_spatial):
    """(the input's rows on the grid (rows, C), the grid's (N, GD, GH, GW), the taps' row
    offsets, how many grid rows the outputs use)."""
    grid = _on_grid(x, geometry, out_spatial)
    n_, gd, gh, gw, c = grid.shape
    return grid.reshape((-1, c)), (n_, gd, gh, gw), _tap_offsets(geometry, gh, gw), _used_rows(grid, out_spatial)


@njit(cache=True, nogil=True)
def _chunk_rows(c, f, used):
    """Grid rows per GEMM: operand and result rows within TILE_FLOATS, at least MIN_JOBS chunks."""
    rows = max(64, min(1024, TILE_FLOATS // (c + f)) // 16 * 16)
    return max(16, min(rows, -(-used // MIN_JOBS)))


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_taps(x, w2d, out, geometry, steps, chan, res):
    """Stride-1 ungrouped convolution: x (N, D, H, W, C), w2d (taps * C, F) in (kd, kh,
    kw, c) row order, out (N, OD, OH, OW, F); the epilogue on each output run."""
    n_, od_, oh_, ow_, f = out.shape
    c = x.shape[4]
    rows_in, (_, gd, gh, gw), offsets, used = _input_grid(x, geometry, (od_, oh_, ow_))
    out2 = out.reshape((-1, f))
    chunk = _chunk_rows(c, f, used)
    for job in prange((used + chunk - 1) // chunk):
        r0 = job * chunk
        r1 = min(used, r0 + chunk)
        tile = np.empty((r1 - r0, f), np.float32)
        for t in range(offsets.shape[0]):
            operand = rows_in[r0 + offsets[t] : r1 + offsets[t]]
            gemm_tile(operand, w2d[t * c : (t + 1) * c], tile, 0, r1 - r0, 0, f, OVERWRITE if t == 0 else ACCUMULATE)
        # Keep the grid rows that are outputs: runs of at most OW along each grid line.
        r = r0
        while r < r1:
            line, k = r // gw, r % gw
            end = min(r1, r - k + gw)
            i, j = (line // gh) % gd, line % gh
            if i < od_ and j < oh_ and k < ow_:
                stop = min(end, r - k + ow_)
                first = ((line // (gh * gd) * od_ + i) * oh_ + j) * ow_ + k
                block = out2[first : first + stop - r]
                block[:, :] = tile[r - r0 : stop - r0]
                apply(block, steps, chan, res, first)
            r = end


@njit(cache=True, nogil=True, parallel=True)
def _gradient_on_grid(g, grid_shape, used):
    """g (N, OD, OH, OW, F) laid on the grid's first `used` rows, zeros elsewhere."""
    n_, od_, oh_, ow_, f = g.shape
    _, gd, gh, gw = grid_shape
    result = np.empty((used, f), np.float32)
    for line in prange((used + gw - 1) // gw):
        n, i, j = line // (gd * gh), (line // gh) % gd, line % gh
        for k in range(min(gw, used - line * gw)):
            row = result[line * gw + k]
            if i < od_ and j < oh_ and k < ow_:
                row[:] = g[n, i, j, k]
            else:
                row[:] = 0.0
    return result


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_weight_grad_taps(x, g, out, geometry):
    """out (taps * C, F) = the stride-1 convolution's kernel gradient, one GEMM per tap
    and chunk of grid rows, the chunks split over a few jobs with partial sums."""
    n_, od_, oh_, ow_, f = g.shape
    c = x.shape[4]
    rows_in, grid_shape, offsets, used = _input_grid(x, geometry, (od_, oh_, ow_))
    taps = offsets.shape[0]
    grads = _gradient_on_grid(g, grid_shape, used)
    chunk = max(16, _chunk_rows(c, f, used) // 2)  # the reduction runs over the chunk: shorter ones keep BLAS in cache
    chunks = (used + chunk - 1) // chunk
    jobs = max(1, min(MAX_JOBS, chunks))
    partial = np.zeros((jobs, taps, c, f), np.float32)
    for job in prange(jobs):
        for q in range(job * chunks // jobs, (job + 1) * chunks // jobs):
            r0 = q * chunk
            r1 = min(used, r0 + chunk)
            for t in range(taps):
                operand = rows_in[r0 + offsets[t] : r1 + offsets[t]].T
                gemm_tile(operand, grads[r0:r1], partial[job, t], 0, c, 0, f, ACCUMULATE)
    out[:, :] = partial.sum(axis=0).reshape((taps * c, f))
