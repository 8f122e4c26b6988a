"""Windowed max and average pooling over channels-last data (3-D; 1-D and 2-D arrive
with unit extents)."""
import numpy as np
from numba import njit, prange

from .scalar import FASTMATH


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def pool(x, out, geometry, is_max, count_include_pad):
    """geometry = (KD, KH, KW, SD, SH, SW, PD, PH, PW); padding never wins a max and counts
    toward an average only with count_include_pad."""
    kd_, kh_, kw_, sd, sh, sw, pd, ph, pw = geometry
    n_, od_, oh_, ow_, c = out.shape
    _, d_in, h_in, w_in, _ = x.shape
    for job in prange(n_ * od_ * oh_):
        n = job // (od_ * oh_)
        od = (job // oh_) % od_
        oh = job % oh_
        for ow in range(ow_):
            acc = np.full(c, -np.inf if is_max else 0.0, np.float32)
            count = 0
            for kd in range(kd_):
                idd = od * sd - pd + kd
                for kh in range(kh_):
                    ih = oh * sh - ph + kh
                    for kw in range(kw_):
                        iw = ow * sw - pw + kw
                        if 0 <= idd < d_in and 0 <= ih < h_in and 0 <= iw < w_in:
                            count += 1
                            src = x[n, idd, ih, iw]
                            if is_max:
                                for ch in range(c):
                                    acc[ch] = max(acc[ch], src[ch])
                            else:
                                for ch in range(c):
                                    acc[ch] += src[ch]
            if not is_max:
                denominator = kd_ * kh_ * kw_ if count_include_pad else max(count, 1)
                for ch in range(c):
                    acc[ch] /= denominator
            out[n, od, oh, ow] = acc
