"""Table lookups (Embedding), resizing and matrix transposes."""
from numba import njit, prange

from .scalar import FASTMATH


@njit(cache=True, nogil=True, parallel=True)
def gather_rows(table, indices, out):
    """out[i] = table[indices[i]] for flat indices; out (len(indices), row)."""
    rows = table.shape[0]
    for i in prange(indices.shape[0]):
        j = indices[i]
        if j < 0 or j >= rows:
            raise IndexError("gather index out of range")
        out[i] = table[j]


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def resize_bilinear(x, out, lo_h, hi_h, frac_h, lo_w, hi_w, frac_w):
    """x (N, H, W, C) -> out (N, OH, OW, C) with precomputed source rows and weights."""
    n_, oh_, ow_, c = out.shape
    for job in prange(n_ * oh_):
        n = job // oh_
        oh = job % oh_
        fh = frac_h[oh]
        top = x[n, lo_h[oh]]
        bottom = x[n, hi_h[oh]]
        for ow in range(ow_):
            fw = frac_w[ow]
            a = top[lo_w[ow]]
            b = top[hi_w[ow]]
            cc = bottom[lo_w[ow]]
            d = bottom[hi_w[ow]]
            for ch in range(c):
                upper = a[ch] + (b[ch] - a[ch]) * fw
                lower = cc[ch] + (d[ch] - cc[ch]) * fw
                out[n, oh, ow, ch] = upper + (lower - upper) * fh


@njit(cache=True, nogil=True, parallel=True)
def resize_nearest(x, out, rows, cols):
    n_, oh_, ow_, c = out.shape
    for job in prange(n_ * oh_):
        n = job // oh_
        oh = job % oh_
        src = x[n, rows[oh]]
        for ow in range(ow_):
            out[n, oh, ow] = src[cols[ow]]


TILE = 32  # a 32 x 32 float32 tile of source and destination fits in L1 together


@njit(cache=True, nogil=True, parallel=True)
def transpose2d(x, out):
    """out = x.T, tile by tile: a plain strided copy misses the cache on every element of
    one side (the weight and activation transposes of a training step's backward pass)."""
    rows, cols = x.shape
    tiles_c = (cols + TILE - 1) // TILE
    for t in prange(((rows + TILE - 1) // TILE) * tiles_c):
        r0 = (t // tiles_c) * TILE
        c0 = (t % tiles_c) * TILE
        for c in range(c0, min(c0 + TILE, cols)):
            for r in range(r0, min(r0 + TILE, rows)):
                out[c, r] = x[r, c]
