"""Convolutions over channels-last data, written once for three spatial dimensions
(1-D and 2-D convolutions arrive as 3-D ones with unit extents).

conv: im2col per tile of output pixels into a thread-local buffer, one BLAS GEMM per
tile against the (window * C, F) kernel matrix, the epilogue on the tile while it is
hot; or, at stride 1, one GEMM per window tap straight from the input (taps.py); or an
implicit GEMM on a register-tiled micro-kernel (igemm.py); or direct accumulation; or,
for 3x3 windows at stride 1, Winograd's F(2x2, 3x3) or F(4x4, 3x3) (winograd.py). 1x1
stride-1 convolutions skip the im2col. Depthwise convolutions (one input channel per
group) use a direct kernel."""
import numpy as np
from numba import njit, prange

from .epilogue import apply
from .igemm import conv_igemm
from .scalar import FASTMATH
from .taps import conv_taps
from .winograd import applies as winograd_applies
from .winograd import conv_winograd

TILE_BYTES = 1 << 18  # im2col tile that stays in L2
MIN_JOBS = 4  # at least this many parallel jobs per call (a get_num_threads() call would defeat caching)
# Algorithms of `conv` (the lowering picks one per shape, measured: see tuning.py).
IM2COL = 0  # im2col tiles into BLAS GEMMs
DIRECT = 1  # direct accumulation, for few input channels (groups == 1 only)
TAPS = 2  # one GEMM per window tap over the input grid (stride 1, groups == 1 only)
IGEMM = 3  # implicit GEMM on a register-tiled micro-kernel (groups == 1 only)
WINOGRAD_2 = 4  # Winograd F(2x2, 3x3) (winograd.applies)
WINOGRAD_4 = 5  # Winograd F(4x4, 3x3)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _im2col(x, n, p0, p1, cols, geometry, out_hw):
    """Fill cols (p1 - p0, KD*KH*KW*C) with the windows of output pixels p0..p1."""
    kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, pd, ph, pw = geometry
    _, d_in, h_in, w_in, c = x.shape
    oh_, ow_ = out_hw
    flat = x.reshape(-1)
    span = kw_ * c
    for p in range(p0, p1):
        od = p // (oh_ * ow_)
        rem = p % (oh_ * ow_)
        oh = rem // ow_
        ow = rem % ow_
        row = cols[p - p0]
        iw0 = ow * sw - pw
        whole_row = dw == 1 and iw0 >= 0 and iw0 + kw_ <= w_in
        col = 0
        for kd in range(kd_):
            idd = od * sd - pd + kd * dd
            for kh in range(kh_):
                ih = oh * sh - ph + kh * dh
                if not (0 <= idd < d_in and 0 <= ih < h_in):
                    row[col : col + span] = 0.0
                elif whole_row:
                    # The KW neighbouring pixels are contiguous: one copy of KW * C values.
                    base = (((n * d_in + idd) * h_in + ih) * w_in + iw0) * c
                    row[col : col + span] = flat[base : base + span]
                else:
                    for kw in range(kw_):
                        iw = iw0 + kw * dw
                        if 0 <= iw < w_in:
                            row[col + kw * c : col + (kw + 1) * c] = x[n, idd, ih, iw]
                        else:
                            row[col + kw * c : col + (kw + 1) * c] = 0.0
                col += span


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _direct_rows(x, w2d, out2, n, od, oh, geometry, out_shape):
    """One output row by direct accumulation (few input channels: im2col's GEMM would
    have a tiny inner dimension). w2d rows are (kd, kh, kw, c)."""
    kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, pd, ph, pw = geometry
    _, d_in, h_in, w_in, c = x.shape
    od_, oh_, ow_, f = out_shape
    row0 = ((n * od_ + od) * oh_ + oh) * ow_
    block = out2[row0 : row0 + ow_]
    block[:, :] = 0.0
    for kd in range(kd_):
        idd = od * sd - pd + kd * dd
        if idd < 0 or idd >= d_in:
            continue
        for kh in range(kh_):
            ih = oh * sh - ph + kh * dh
            if ih < 0 or ih >= h_in:
                continue
            for kw in range(kw_):
                for ch in range(c):
                    weights = w2d[((kd * kh_ + kh) * kw_ + kw) * c + ch]
                    for ow in range(ow_):
                        iw = ow * sw - pw + kw * dw
                        if 0 <= iw < w_in:
                            v = x[n, idd, ih, iw, ch]
                            target = block[ow]
                            for j in range(f):
                                target[j] += v * weights[j]
    return row0


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv(x, w2d, out, geometry, groups, method, steps, chan, res):
    """x (N, D, H, W, C); w2d (KD*KH*KW*C/groups, F); out (N, OD, OH, OW, F).
    geometry = (KD, KH, KW, SD, SH, SW, DD, DH, DW, PD, PH, PW) with P* the leading pads.
    method: IM2COL, DIRECT, TAPS, IGEMM, WINOGRAD_2 or WINOGRAD_4 (a 1x1 stride-1 conv is
    always one GEMM; a method that does not apply to the shape falls back to im2col)."""
    n_, od_, oh_, ow_, f = out.shape
    c = x.shape[4]
    pixels = od_ * oh_ * ow_
    k = w2d.shape[0]
    out2 = out.reshape((n_ * pixels, f))
    pointwise = k == c and geometry[0] * geometry[1] * geometry[2] == 1 and pixels == x.shape[1] * x.shape[2] * x.shape[3]
    pointwise = pointwise and geometry[3] == 1 and geometry[4] == 1 and geometry[5] == 1 and groups == 1
    if pointwise:
        x2 = x.reshape((n_ * pixels, c))
        rows = n_ * pixels
        tiles = max(_tiles(rows, 4 * max(c, f)), min(MIN_JOBS, rows // 16 + 1))
        for t in prange(tiles):
            r0 = t * rows // tiles
            r1 = (t + 1) * rows // tiles
            block = out2[r0:r1]
            np.dot(x2[r0:r1], w2d, block)
            apply(block, steps, chan, res, r0)
        return
    winograd = method == WINOGRAD_2 or method == WINOGRAD_4
    if winograd and winograd_applies(geometry, groups, c, f):
        conv_winograd(x, w2d, out, geometry, 2 if method == WINOGRAD_2 else 4, steps, chan, res)
        return
    if method == IGEMM and groups == 1:
        conv_igemm(x, w2d, out, geometry, steps, chan, res)
        return
    if method == TAPS and groups == 1 and geometry[3] == 1 and geometry[4] == 1 and geometry[5] == 1:
        conv_taps(x, w2d, out, geometry, steps, chan, res)
        return
    if method == DIRECT and groups == 1:
        for job in prange(n_ * od_ * oh_):
            n = job // (od_ * oh_)
            row0 = _direct_rows(x, w2d, out2, n, (job // oh_) % od_, job % oh_, geometry, (od_, oh_, ow_, f))
            apply(out2[row0 : row0 + ow_], steps, chan, res, row0)
        return
    # Enough tiles per image to use every thread, each small enough to stay in cache.
    tiles = max(_tiles(pixels, 4 * k * groups), min(-(-MIN_JOBS // n_), pixels // 16 + 1))
    cg = c // groups
    fg = f // groups
    for job in prange(n_ * tiles):
        n = job // tiles
        t = job % tiles
        p0 = t * pixels // tiles
        p1 = (t + 1) * pixels // tiles
        cols = np.empty((p1 - p0, k * groups), np.float32)
        _im2col(x, n, p0, p1, cols, geometry, (oh_, ow_))
        block = out2[n * pixels + p0 : n * pixels + p1]
        if groups == 1:
            np.dot(cols, w2d, block)
        else:
            # cols columns are (window, C); gather each group's channels, one GEMM per group.
            window = k // cg
            part = np.empty((p1 - p0, k), np.float32)
            result = np.empty((p1 - p0, fg), np.float32)
            for g in range(groups):
                for r in range(p1 - p0):
                    for wi in range(window):
                        for ch in range(cg):
                            part[r, wi * cg + ch] = cols[r, wi * c + g * cg + ch]
                np.dot(part, w2d[:, g * fg : (g + 1) * fg].copy(), result)
                block[:, g * fg : (g + 1) * fg] = result
        apply(block, steps, chan, res, n * pixels + p0)


@njit(cache=True, nogil=True)
def _tiles(rows, row_bytes):
    """How many tiles keep a tile of `rows` rows of `row_bytes` under TILE_BYTES."""
    return max(1, (rows * row_bytes + TILE_BYTES - 1) // TILE_BYTES)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def depthwise_conv(x, w, out, geometry, steps, chan, res):
    """One input channel per group: w (KD, KH, KW, F) with F = C * multiplier."""
    kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, pd, ph, pw = geometry
    n_, od_, oh_, ow_, f = out.shape
    _, d_in, h_in, w_in, c = x.shape
    mult = f // c
    out2 = out.reshape((n_ * od_ * oh_ * ow_, f))
    for job in prange(n_ * od_ * oh_):
        n = job // (od_ * oh_)
        od = (job // oh_) % od_
        oh = job % oh_
        acc = np.zeros((ow_, f), np.float32)
        for kd in range(kd_):
            idd = od * sd - pd + kd * dd
            if idd < 0 or idd >= d_in:
                continue
            for kh in range(kh_):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= h_in:
                    continue
                for kw in range(kw_):
                    wk = w[kd, kh, kw]
                    for ow in range(ow_):
                        iw = ow * sw - pw + kw * dw
                        if 0 <= iw < w_in:
                            src = x[n, idd, ih, iw]
                            if mult == 1:
                                for ch in range(f):
                                    acc[ow, ch] += src[ch] * wk[ch]
                            else:
                                for ch in range(f):
                                    acc[ow, ch] += src[ch // mult] * wk[ch]
        row0 = ((n * od_ + od) * oh_ + oh) * ow_
        block = out2[row0 : row0 + ow_]
        block[:, :] = acc
        apply(block, steps, chan, res, row0)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def conv_transpose(x, w_pos, out, geometry, crops, steps, chan, res):
    """Transposed convolution as scatter-GEMMs: w_pos (KD*KH*KW, C, F); out is the full
    result cropped by `crops` (leading crop per axis; the trailing side may extend with
    zeros)."""
    kd_, kh_, kw_, sd, sh, sw, dd, dh, dw = geometry
    cd, ch_, cw = crops
    n_, d_in, h_in, w_in, c = x.shape
    _, od_, oh_, ow_, f = out.shape
    pixels = d_in * h_in * w_in
    for n in prange(n_):
        xn = x[n].reshape((pixels, c))
        acc = np.zeros((od_, oh_, ow_, f), np.float32)
        prod = np.empty((pixels, f), np.float32)
        for pos in range(kd_ * kh_ * kw_):
            kd = pos // (kh_ * kw_)
            kh = (pos // kw_) % kh_
            kw = pos % kw_
            np.dot(xn, w_pos[pos], prod)
            for p in range(pixels):
                idd = p // (h_in * w_in)
                ih = (p // w_in) % h_in
                iw = p % w_in
                zd = idd * sd + kd * dd - cd
                zh = ih * sh + kh * dh - ch_
                zw = iw * sw + kw * dw - cw
                if 0 <= zd < od_ and 0 <= zh < oh_ and 0 <= zw < ow_:
                    for ch in range(f):
                        acc[zd, zh, zw, ch] += prod[p, ch]
        out[n] = acc
    rows = n_ * od_ * oh_ * ow_
    apply(out.reshape((rows, f)), steps, chan, res, 0)
