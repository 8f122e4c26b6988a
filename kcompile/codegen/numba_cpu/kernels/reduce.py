"""Reductions and softmax over the middle axis of an (outer, reduced, inner) view: any
reduction over contiguous axes has this form."""
import math

import numpy as np
from numba import njit, prange

from .scalar import FASTMATH

SUM, MEAN, MAX, MIN = 0, 1, 2, 3


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _combine(kind, a, b):
    if kind == MAX:
        return max(a, b)
    if kind == MIN:
        return min(a, b)
    return a + b


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def reduce(x, out, kind):
    """x (O, R, I) -> out (O, I), accumulating in out's row (no scratch per row)."""
    o_, r_, i_ = x.shape
    for o in prange(o_):
        if i_ == 1:  # a reduction over the last axis: a scalar over one contiguous run
            acc = x[o, 0, 0]
            for r in range(1, r_):
                acc = _combine(kind, acc, x[o, r, 0])
            out[o, 0] = acc / r_ if kind == MEAN else acc
            continue
        acc_row = out[o]
        acc_row[:] = x[o, 0]
        for r in range(1, r_):
            row = x[o, r]
            for i in range(i_):
                acc_row[i] = _combine(kind, acc_row[i], row[i])
        if kind == MEAN:
            for i in range(i_):
                acc_row[i] /= r_


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


@njit(cache=True, nogil=True, parallel=True)
def count_nonfinite(x):
    """How many entries of the 1-D array x are NaN or infinite (an integer count, so
    the loop vectorizes without reordering float arithmetic)."""
    n = 0
    for i in prange(x.shape[0]):
        n += not math.isfinite(x[i])
    return n
