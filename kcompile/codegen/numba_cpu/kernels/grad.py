"""Kernels for the primitives only backward graphs use (see kcompile/ir/ops/grad_ops.py)."""
import numpy as np
from numba import njit, prange

from .conv import _im2col
from .scalar import FASTMATH

CHUNKS = 4  # parallel partial sums for the weight gradient


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_weight_grad(x, g, out, geometry):
    """out (KD*KH*KW*C, F) = sum over images and output pixels of window(x) x g:
    x (N, D, H, W, C), g (N, OD, OH, OW, F); im2col per image, one GEMM each."""
    n_, od_, oh_, ow_, f = g.shape
    k = out.shape[0]
    pixels = od_ * oh_ * ow_
    partial = np.zeros((CHUNKS, k, f), np.float32)
    for chunk in prange(CHUNKS):
        cols = np.empty((pixels, k), np.float32)
        product = np.empty((k, f), np.float32)
        for n in range(chunk * n_ // CHUNKS, (chunk + 1) * n_ // CHUNKS):
            _im2col(x, n, 0, pixels, cols, geometry, (oh_, ow_))
            np.dot(cols.T, g[n].reshape((pixels, f)), product)
            partial[chunk] += product
    out[:, :] = partial.sum(axis=0)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def max_pool_grad(x, g, out, geometry):
    """Each window's gradient goes to its first maximum (row-major), overlaps add up.
    geometry = (KD, KH, KW, SD, SH, SW, PD, PH, PW); x, out (N, D, H, W, C)."""
    kd_, kh_, kw_, sd, sh, sw, pd, ph, pw = geometry
    n_, od_, oh_, ow_, c = g.shape
    _, d_in, h_in, w_in, _ = x.shape
    for n in prange(n_):
        out[n] = 0.0
        for od in range(od_):
            for oh in range(oh_):
                for ow in range(ow_):
                    for ch in range(c):
                        best = -np.inf
                        bd, bh, bw = -1, -1, -1
                        for kd in range(kd_):
                            idd = od * sd - pd + kd
                            for kh in range(kh_):
                                ih = oh * sh - ph + kh
                                for kw in range(kw_):
                                    iw = ow * sw - pw + kw
                                    if 0 <= idd < d_in and 0 <= ih < h_in and 0 <= iw < w_in:
                                        v = x[n, idd, ih, iw, ch]
                                        if v > best:
                                            best, bd, bh, bw = v, idd, ih, iw
                        if bd >= 0:
                            out[n, bd, bh, bw, ch] += g[n, od, oh, ow, ch]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scatter_add(indices, updates, out):
    """out (rows, R) = 0, then out[indices[i]] += updates[i]."""
    out[:, :] = 0.0
    rows = out.shape[0]
    for i in range(indices.shape[0]):
        j = indices[i]
        if j < 0 or j >= rows:
            raise IndexError("scatter_add index out of range")
        out[j] += updates[i]
