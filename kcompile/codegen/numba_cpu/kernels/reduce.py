"""Reductions and softmax over the middle axis of an (outer, reduced, inner) view: any
reduction over contiguous axes has this form."""
import math

import numpy as np
from numba import njit, prange

from .scalar import FASTMATH

SUM, MEAN, MAX, MIN = 0, 1, 2, 3
SPLIT_JOBS = 8  # jobs over the reduced axis when there are fewer outer rows than this
SPLIT_MIN_SIZE = 1 << 14  # smaller reductions are not worth starting threads for


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _combine(kind, a, b):
    if kind == MAX:
        return max(a, b)
    if kind == MIN:
        return min(a, b)
    return a + b


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _reduce_run(x, o, r0, r1, acc, kind):
    """acc (I,) = x[o, r0] combined with x[o, r0 + 1 : r1] (no division for MEAN)."""
    i_ = x.shape[2]
    if i_ == 1:  # over the last axis: a scalar over one contiguous run
        total = x[o, r0, 0]
        for r in range(r0 + 1, r1):
            total = _combine(kind, total, x[o, r, 0])
        acc[0] = total
        return
    acc[:] = x[o, r0]
    for r in range(r0 + 1, r1):
        row = x[o, r]
        for i in range(i_):
            acc[i] = _combine(kind, acc[i], row[i])


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def reduce(x, out, kind):
    """x (O, R, I) -> out (O, I). Outer rows in parallel; with fewer outer rows than
    SPLIT_JOBS (the batch-axis sums of the backward pass have one), the reduced axis
    is split among jobs and their partial results combined."""
    o_, r_, i_ = x.shape
    if o_ < SPLIT_JOBS and r_ >= 4 * SPLIT_JOBS and r_ * i_ >= SPLIT_MIN_SIZE:
        _reduce_split(x, out, kind)
    else:
        _reduce_outer(x, out, kind)
    if kind == MEAN:
        out /= r_


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _reduce_outer(x, out, kind):
    for o in prange(x.shape[0]):
        _reduce_run(x, o, 0, x.shape[1], out[o], kind)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def _reduce_split(x, out, kind):
    o_, r_, i_ = x.shape
    partial = np.empty((o_, SPLIT_JOBS, i_), np.float32)
    for job in prange(o_ * SPLIT_JOBS):
        o, j = job // SPLIT_JOBS, job % SPLIT_JOBS
        _reduce_run(x, o, j * r_ // SPLIT_JOBS, (j + 1) * r_ // SPLIT_JOBS, partial[o, j], kind)
    for o in range(o_):
        _reduce_run(partial, o, 0, SPLIT_JOBS, out[o], kind)


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def softmax(x, out, log):
    """Softmax (or log-softmax) of x (O, R, I) along R."""
    o_, r_, i_ = x.shape
    for o in prange(o_):
        for i in range(i_):
            top = x[o, 0, i]
            for r in range(1, r_):
                top = max(top, x[o, r, i])
            total = np.float32(0.0)
            for r in range(r_):
                e = math.exp(x[o, r, i] - top)
                total += e
                if not log:
                    out[o, r, i] = e
            if log:
                shift = top + math.log(total)
                for r in range(r_):
                    out[o, r, i] = x[o, r, i] - shift
            else:
                inv = np.float32(1.0) / total
                for r in range(r_):
                    out[o, r, i] *= inv


@njit(cache=True, nogil=True)
def weighted_sum(values, weights):
    """sum(values * weights) of two 1-D arrays, accumulated in float64. A training step's
    loss: NumPy's multiply and sum took 25-55 us each there (their cold code paths after
    the step's kernels), this under 10 (one-off timings, antirectifier's step)."""
    total = 0.0
    for i in range(values.shape[0]):
        total += values[i] * weights[i]
    return total


@njit(cache=True, nogil=True, parallel=True)
def count_nonfinite(x):
    """How many entries of the 1-D array x are NaN or infinite (an integer count, so
    the loop vectorizes without reordering float arithmetic)."""
    n = 0
    for i in prange(x.shape[0]):
        n += not math.isfinite(x[i])
    return n
