"""Kernels for the primitives only backward graphs use (see kcompile/ir/ops/grad_ops.py)."""
import numpy as np
from numba import njit, prange

from .conv import IGEMM, TAPS, WINOGRAD_2, WINOGRAD_4, _im2col
from .epilogue import apply
from .igemm import W, conv_weight_grad_igemm
from .pool import is_2x2
from .scalar import FASTMATH
from .taps import conv_weight_grad_taps
from .winograd import applies as winograd_applies
from .winograd import conv_weight_grad_winograd

GROUP_ROWS = 1024  # output pixels per GEMM in the weight gradient (its im2col stays near L2)
MAX_JOBS = 16  # parallel jobs of the weight gradient, each with its own partial sum


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def conv_weight_grad(x, g, out, geometry, method):
    """out (KD*KH*KW*C, F) = sum over images and output pixels of window(x) x g:
    x (N, D, H, W, C), g (N, OD, OH, OW, F). method: IM2COL, TAPS at stride 1 (one GEMM
    per window tap, see taps.py), IGEMM (the micro-kernel over the same padded input, F
    a multiple of the vector width, see igemm.py) or WINOGRAD_2 / WINOGRAD_4 (see
    winograd.applies); each falls back to im2col where it does not apply (and IGEMM to
    TAPS first)."""
    unit = geometry[3] == 1 and geometry[4] == 1 and geometry[5] == 1
    winograd = method == WINOGRAD_2 or method == WINOGRAD_4
    if winograd and winograd_applies(geometry, 1, x.shape[4], g.shape[4]):
        conv_weight_grad_winograd(x, g, out, geometry, 2 if method == WINOGRAD_2 else 4)
    elif method == IGEMM and g.shape[4] % W == 0:
        conv_weight_grad_igemm(x, g, out, geometry)
    elif (method == TAPS or method == IGEMM) and unit:
        conv_weight_grad_taps(x, g, out, geometry)
    else:
        _weight_grad_im2col(x, g, out, geometry)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _weight_grad_im2col(x, g, out, geometry):
    """The images are split over a few jobs run in parallel; a job takes its images in
    groups, one im2col of the group and one GEMM (cols.T @ g) per group, into the job's
    partial sum; the partial sums are added."""
    n_, od_, oh_, ow_, f = g.shape
    k = out.shape[0]
    pixels = od_ * oh_ * ow_
    group = max(1, min(n_, GROUP_ROWS // max(pixels, 1)))
    jobs = max(1, min(MAX_JOBS, n_))
    partial = np.zeros((jobs, k, f), np.float32)
    g2 = g.reshape((n_ * pixels, f))
    for job in prange(jobs):
        cols = np.empty((group * pixels, k), np.float32)
        product = np.empty((k, f), np.float32)
        acc = partial[job]
        n_end = (job + 1) * n_ // jobs
        for n0 in range(job * n_ // jobs, n_end, group):
            n1 = min(n_end, n0 + group)
            rows = (n1 - n0) * pixels
            for n in range(n0, n1):
                _im2col(x, n, 0, pixels, cols[(n - n0) * pixels : (n - n0 + 1) * pixels], geometry, (oh_, ow_))
            np.dot(cols[:rows].T, g2[n0 * pixels : n1 * pixels], product)
            acc += product
    out[:, :] = partial.sum(axis=0)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def max_pool_grad(x, g, out, geometry, steps, chan, res):
    """Each window's gradient goes to its first maximum (row-major), overlaps add up; then
    the epilogue (steps, chan, res: see epilogue.py), on each sample's or each job's rows
    while they are in cache. geometry = (KD, KH, KW, SD, SH, SW, PD, PH, PW); x, out
    (N, D, H, W, C). Channels innermost, so the comparisons vectorize."""
    kd_, kh_, kw_, sd, sh, sw, pd, ph, pw = geometry
    n_, od_, oh_, ow_, c = g.shape
    _, d_in, h_in, w_in, _ = x.shape
    if is_2x2(geometry):
        _max_pool_grad_2x2(x, g, out, steps, chan, res)
        return
    if (kd_, kh_, kw_) == (sd, sh, sw) and (pd, ph, pw) == (0, 0, 0):
        _max_pool_grad_tiled(x, g, out, kd_, kh_, kw_)
        _epilogue_pass(out.reshape((-1, c)), steps, chan, res)
        return
    cells = d_in * h_in * w_in
    for n in prange(n_):
        out[n] = 0.0
        best = np.empty(c, np.float32)
        where = np.empty(c, np.int64)
        target = out[n].reshape((d_in * h_in * w_in, c))
        for od in range(od_):
            for oh in range(oh_):
                for ow in range(ow_):
                    best[:] = -np.inf
                    where[:] = -1
                    for kd in range(kd_):
                        idd = od * sd - pd + kd
                        for kh in range(kh_):
                            ih = oh * sh - ph + kh
                            for kw in range(kw_):
                                iw = ow * sw - pw + kw
                                if 0 <= idd < d_in and 0 <= ih < h_in and 0 <= iw < w_in:
                                    cell = (idd * h_in + ih) * w_in + iw
                                    row = x[n, idd, ih, iw]
                                    for ch in range(c):
                                        if row[ch] > best[ch]:
                                            best[ch] = row[ch]
                                            where[ch] = cell
                    grad = g[n, od, oh, ow]
                    for ch in range(c):
                        if where[ch] >= 0:
                            target[where[ch], ch] += grad[ch]
        apply(target, steps, chan, res, n * cells)


EPILOGUE_ROWS = 256  # rows per job of a separate epilogue pass


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _epilogue_pass(out2, steps, chan, res):
    """The epilogue over all rows of out2, when a kernel's jobs do not own whole rows."""
    if steps.shape[0] == 0:
        return
    rows = out2.shape[0]
    for job in prange((rows + EPILOGUE_ROWS - 1) // EPILOGUE_ROWS):
        r0 = job * EPILOGUE_ROWS
        apply(out2[r0 : min(rows, r0 + EPILOGUE_ROWS)], steps, chan, res, r0)


@njit(nogil=True, parallel=True, fastmath=FASTMATH)
def _max_pool_grad_tiled(x, g, out, kd_, kh_, kw_):
    """Windows that tile the input (stride = window, no padding, the usual 2x2 pooling):
    each input cell belongs to at most one window, so every cell is written once, its
    window's gradient or 0, in one pass (no zeroing pass, no scattered adds). Rows of
    the flattened arrays, so the channel loops vectorize (40% faster than 5-D views)."""
    n_, od_, oh_, ow_, c = g.shape
    _, d_in, h_in, w_in, _ = x.shape
    if d_in != od_ * kd_ or h_in != oh_ * kh_ or w_in != ow_ * kw_:
        out[:] = 0.0  # the cells past the last whole window get no gradient
    x2, g2, out2 = x.reshape((-1, c)), g.reshape((-1, c)), out.reshape((-1, c))
    window = kd_ * kh_ * kw_
    for job in prange(n_ * od_ * oh_):
        n, od, oh = job // (od_ * oh_), (job // oh_) % od_, job % oh_
        best = np.empty(c, np.float32)
        where = np.empty(c, np.int32)
        cells = np.empty(window, np.int64)
        for ow in range(ow_):
            for k in range(window):
                d, h, w = od * kd_ + k // (kh_ * kw_), oh * kh_ + (k // kw_) % kh_, ow * kw_ + k % kw_
                cells[k] = ((n * d_in + d) * h_in + h) * w_in + w
            best[:] = x2[cells[0]]
            where[:] = 0
            for k in range(1, window):
                row = cells[k]
                for ch in range(c):
                    better = x2[row, ch] > best[ch]  # ties keep the first maximum
                    best[ch] = x2[row, ch] if better else best[ch]
                    where[ch] = k if better else where[ch]
            grad = ((n * od_ + od) * oh_ + oh) * ow_ + ow
            for k in range(window):
                row = cells[k]
                for ch in range(c):
                    out2[row, ch] = g2[grad, ch] if where[ch] == k else np.float32(0)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _max_pool_grad_2x2(x, g, out, steps, chan, res):
    """_max_pool_grad_tiled on 2x2 windows (pool.is_2x2): each channel's four cells
    compared and written in one loop over the channels, which vectorizes (2.5x faster on
    mnist_cnn's 128x24x24x64). The first maximum in row-major order wins ties. A job's
    input rows are its rows of out: it runs the epilogue on them, unless an odd last
    row or column leaves some rows to no job."""
    n_, od_, oh_, ow_, c = g.shape
    _, d_in, h_in, w_in, _ = x.shape
    whole = h_in == 2 * oh_ and w_in == 2 * ow_
    if not whole:
        out[:] = 0.0  # the odd last row or column gets no gradient
    x2, g2, out2 = x.reshape((-1, c)), g.reshape((-1, c)), out.reshape((-1, c))
    zero = np.float32(0)
    for job in prange(n_ * od_ * oh_):
        n, od, oh = job // (od_ * oh_), (job // oh_) % od_, job % oh_
        top = ((n * d_in + od) * h_in + 2 * oh) * w_in
        for ow in range(ow_):
            r, o = top + 2 * ow, job * ow_ + ow
            for ch in range(c):
                ul, ur, ll, lr = x2[r, ch], x2[r + 1, ch], x2[r + w_in, ch], x2[r + w_in + 1, ch]
                right_upper, right_lower = ur > ul, lr > ll
                lower = (lr if right_lower else ll) > (ur if right_upper else ul)
                grad = g2[o, ch]
                out2[r, ch] = grad if not lower and not right_upper else zero
                out2[r + 1, ch] = grad if not lower and right_upper else zero
                out2[r + w_in, ch] = grad if lower and not right_lower else zero
                out2[r + w_in + 1, ch] = grad if lower and right_lower else zero
        if whole:
            apply(out2[top : top + 2 * w_in], steps, chan, res, top)
    if not whole:
        _epilogue_pass(out2, steps, chan, res)


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
