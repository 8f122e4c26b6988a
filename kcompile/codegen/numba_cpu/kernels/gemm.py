"""Matrix products with a fused epilogue. Large row counts go to BLAS (single-threaded,
one call per row block, blocks in parallel); a handful of rows (batch-1 inference) use
a kernel that streams the weights once (BLAS packs the whole weight matrix per call,
which costs more than the product at these sizes)."""
import numpy as np
from numba import njit, prange

from .epilogue import apply
from .scalar import FASTMATH

SMALL_M = 8  # below this many rows, a product streams the weights once (BLAS would pack them)
PARALLEL_WEIGHTS = 1 << 18  # weight matrices this large are streamed by several threads
ROW_BLOCK = 64


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
    """out (M, N) = epilogue(a (M, K) @ b (K, N)); all C-contiguous float32."""
    m, k = a.shape
    n = b.shape[1]
    if m < SMALL_M:
        if k * n >= PARALLEL_WEIGHTS and n >= 64:
            _stream_rows_parallel(a, b, out, 4)
        else:
            _stream_rows(a, b, out, 0, n)
        apply(out, steps, chan, res, 0)
    else:
        _row_blocks(a, b, out, steps, chan, res)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _row_blocks(a, b, out, steps, chan, res):
    """BLAS per block of rows, blocks in parallel, each block's epilogue while it is hot."""
    m = a.shape[0]
    blocks = (m + ROW_BLOCK - 1) // ROW_BLOCK
    for i in prange(blocks):
        r0 = i * ROW_BLOCK
        r1 = min(m, r0 + ROW_BLOCK)
        block = out[r0:r1]
        np.dot(a[r0:r1], b, block)
        apply(block, steps, chan, res, r0)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def batched_matmul(a, b, out):
    """out (B, M, N) = a (B, M, K) @ b (B, K, N), batch dims already broadcast and flattened."""
    for i in prange(a.shape[0]):
        np.dot(a[i], b[i], out[i])
