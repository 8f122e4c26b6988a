"""Matrix products with a fused epilogue. Large row counts go to BLAS (single-threaded,
one call per row block, blocks in parallel); a handful of rows (batch-1 inference) use
a kernel that streams the weights once (BLAS packs the whole weight matrix per call,
which costs more than the product at these sizes)."""
import numpy as np
from numba import njit, prange

from .epilogue import apply
from .scalar import FASTMATH

SMALL_M = 8  # below this many rows, the streaming kernel beats BLAS
ROW_BLOCK = 64


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _stream_rows(a, b, out):
    """out = a @ b for a few rows: one pass over b, row views so the loop vectorizes."""
    m, k = a.shape
    for r in range(m):
        row = out[r]
        row[:] = 0
        for kk in range(k):
            s = a[r, kk]
            weights = b[kk]
            for c in range(row.shape[0]):
                row[c] += s * weights[c]


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def matmul(a, b, out, steps, chan, res):
    """out (M, N) = epilogue(a (M, K) @ b (K, N)); all C-contiguous float32."""
    m, k = a.shape
    n = b.shape[1]
    if m < SMALL_M:
        _stream_rows(a, b, out)
        apply(out, steps, chan, res, 0)
        return
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
