"""Matrix products with a fused epilogue. Large products go to BLAS: the output is cut
into one tile per thread (along its longer side first), each
tile a single-threaded BLAS call per chunk of rows followed by the chunk's epilogue
while it is in cache. Either operand may be a transposed view (the backward pass's
x^T @ g and g @ W^T): BLAS reads it in place. A handful of rows (batch-1 inference)
use a kernel that streams the weights once (BLAS packs the whole weight matrix per
call, which costs more than the product at these sizes)."""
import numpy as np
from numba import njit, prange
from numba.np.ufunc.parallel import _iget_num_threads

from .blas import gemm_tile
from .epilogue import apply
from .scalar import FASTMATH

SMALL_M = 8  # below this many rows, a product streams the weights once (BLAS would pack them)
PARALLEL_WEIGHTS = 1 << 18  # weight matrices this large are streamed by several threads
MIN_TILE_ROWS = 32  # fewer rows per tile and BLAS spends its time packing the other operand
MIN_TILE_COLUMNS = 64
ROW_CHUNK = 256  # rows per BLAS call: the chunk's epilogue then finds it in cache
# A transposed right operand this thin is copied first: BLAS's transposed path took 3-5x
# the time of the plain one there (the backward pass's g @ W^T behind a 10-way softmax).
THIN_K = 16


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _stream_rows(a, b, out, c0, c1):
    """out[:, c0:c1] = a @ b[:, c0:c1] for a few rows: one pass over those weight columns,
    row views so the inner loop vectorizes."""
    m, k = a.shape
    for r in range(m):
        row = out[r, c0:c1]
        row[:] = 0
        for kk in range(k):
            s = a[r, kk]
            weights = b[kk, c0:c1]
            for c in range(c1 - c0):
                row[c] += s * weights[c]


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _stream_rows_parallel(a, b, out, blocks):
    n = b.shape[1]
    for j in prange(blocks):
        _stream_rows(a, b, out, j * n // blocks, (j + 1) * n // blocks)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def matmul(a, b, out, steps, chan, res):
    """out (M, N) = epilogue(a (M, K) @ b (K, N)); float32, out C-contiguous, a and b
    each C-contiguous or a transposed view of a C-contiguous array."""
    m, k = a.shape
    n = b.shape[1]
    if k <= THIN_K and b.strides[1] != b.itemsize:
        b = np.ascontiguousarray(b)
    if m < SMALL_M:
        if k * n >= PARALLEL_WEIGHTS and n >= 64:
            _stream_rows_parallel(a, b, out, 4)
        else:
            _stream_rows(a, b, out, 0, n)
        apply(out, steps, chan, res, 0)
    else:
        _tiles(a, b, out, steps, chan, res)


@njit(cache=True, nogil=True)
def _tile_grid(m, n, threads):
    """(row tiles, column tiles): one tile per thread, the longer side of the output split
    first. Each tile's BLAS call packs the whole of the operand it shares with the tiles
    beside it (all of b for a band of rows, all of a for a band of columns), so split
    the way that repeats the smaller one."""
    if n > m:
        column_tiles = max(1, min(threads, n // MIN_TILE_COLUMNS))
        return max(1, min(threads // column_tiles, m // MIN_TILE_ROWS)), column_tiles
    row_tiles = max(1, min(threads, m // MIN_TILE_ROWS))
    return row_tiles, max(1, min(threads // row_tiles, n // MIN_TILE_COLUMNS))


@njit(cache=True, nogil=True, inline="always")
def _split(size, parts, k, align):
    """Start of part k of `size` cut into `parts` (starts rounded down to `align`)."""
    return size if k == parts else (k * size // parts) // align * align


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _tiles(a, b, out, steps, chan, res):
    """BLAS per tile of the output, tiles in parallel, each chunk's epilogue while it is hot."""
    m, n = out.shape
    row_tiles, column_tiles = _tile_grid(m, n, _iget_num_threads())  # numba.get_num_threads() would not cache
    scalars = np.array([1.0, 0.0], np.float32)  # alpha, beta
    for t in prange(row_tiles * column_tiles):
        i, j = t // column_tiles, t % column_tiles
        r0, r1 = _split(m, row_tiles, i, 1), _split(m, row_tiles, i + 1, 1)
        c0, c1 = _split(n, column_tiles, j, 16), _split(n, column_tiles, j + 1, 16)
        for s in range(r0, r1, ROW_CHUNK):
            e = min(r1, s + ROW_CHUNK)
            gemm_tile(a, b, out, s, e, c0, c1, scalars)
            apply(out[s:e, c0:c1], steps, chan[:, c0:c1], res[:, c0:c1], s)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def batched_matmul(a, b, out):
    """out (B, M, N) = a (B, M, K) @ b (B, K, N), batch dims already broadcast and flattened."""
    for i in prange(a.shape[0]):
        np.dot(a[i], b[i], out[i])
