"""Windowed max and average pooling over channels-last data (3-D; 1-D and 2-D arrive
with unit extents)."""
import numpy as np
from numba import njit, prange

from .scalar import FASTMATH


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def pool(x, out, geometry, is_max, count_include_pad):
    """geometry = (KD, KH, KW, SD, SH, SW, PD, PH, PW); padding never wins a max and counts
    toward an average only with count_include_pad. Each output pixel's channels are
    accumulated in place, on rows of the flattened arrays so the channel loops vectorize
    (a scratch vector per pixel and 5-D indexing made mnist_cnn's 2x2 pooling 2.4x slower)."""
    kd_, kh_, kw_, sd, sh, sw, pd, ph, pw = geometry
    if is_max and is_2x2(geometry):
        _max_pool_2x2(x, out)
        return
    n_, od_, oh_, ow_, c = out.shape
    _, d_in, h_in, w_in, _ = x.shape
    x2, out2 = x.reshape((-1, c)), out.reshape((-1, c))
    start = np.float32(-np.inf) if is_max else np.float32(0)
    for job in prange(n_ * od_ * oh_):
        n, od, oh = job // (od_ * oh_), (job // oh_) % od_, job % oh_
        for ow in range(ow_):
            acc = out2[job * ow_ + ow]
            acc[:] = start
            count = 0
            for kd in range(kd_):
                idd = od * sd - pd + kd
                for kh in range(kh_):
                    ih = oh * sh - ph + kh
                    for kw in range(kw_):
                        iw = ow * sw - pw + kw
                        if 0 <= idd < d_in and 0 <= ih < h_in and 0 <= iw < w_in:
                            count += 1
                            src = x2[((n * d_in + idd) * h_in + ih) * w_in + iw]
                            if is_max:
                                for ch in range(c):
                                    acc[ch] = max(acc[ch], src[ch])
                            else:
                                for ch in range(c):
                                    acc[ch] += src[ch]
            if not is_max:
                scale = np.float32(1) / np.float32(kd_ * kh_ * kw_ if count_include_pad else max(count, 1))
                for ch in range(c):
                    acc[ch] *= scale


@njit(cache=True, nogil=True)
def is_2x2(geometry):
    """2x2 windows two apart, no padding: MaxPooling2D's default, every seed CNN's pooling."""
    return geometry == (1, 2, 2, 1, 2, 2, 0, 0, 0)


@njit(inline="always")
def _larger(a, b):
    return b if b > a else a  # ties keep the first


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _max_pool_2x2(x, out):
    """Max pooling on 2x2 windows (is_2x2): each output channel reads its four cells in
    one loop over the channels, which vectorizes; the general loop's per-cell passes
    ran 2.2x slower on mnist_cnn's and cifar10_cnn's pooling."""
    n_, od_, oh_, ow_, c = out.shape
    _, d_in, h_in, w_in, _ = x.shape
    x2, out2 = x.reshape((-1, c)), out.reshape((-1, c))
    for job in prange(n_ * od_ * oh_):
        n, od, oh = job // (od_ * oh_), (job // oh_) % od_, job % oh_
        top = ((n * d_in + od) * h_in + 2 * oh) * w_in  # the windows' first input row
        for ow in range(ow_):
            r, o = top + 2 * ow, job * ow_ + ow
            for ch in range(c):
                upper = _larger(x2[r, ch], x2[r + 1, ch])
                out2[o, ch] = _larger(upper, _larger(x2[r + w_in, ch], x2[r + w_in + 1, ch]))
