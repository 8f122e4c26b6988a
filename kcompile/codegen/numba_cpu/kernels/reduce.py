"""Reductions and softmax over the middle axis of an (outer, reduced, inner) view: any
reduction over contiguous axes has this form."""
import math

import numpy as np
from numba import njit, prange

from .scalar import FASTMATH

SUM, MEAN, MAX, MIN = 0, 1, 2, 3


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def reduce(x, out, kind):
    """x (O, R, I) -> out (O, I)."""
    o_, r_, i_ = x.shape
    for o in prange(o_):
        acc = x[o, 0].copy()
        for r in range(1, r_):
            row = x[o, r]
            if kind == MAX:
                for i in range(i_):
                    acc[i] = max(acc[i], row[i])
            elif kind == MIN:
                for i in range(i_):
                    acc[i] = min(acc[i], row[i])
            else:
                for i in range(i_):
                    acc[i] += row[i]
        if kind == MEAN:
            for i in range(i_):
                acc[i] /= r_
        out[o] = acc


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
