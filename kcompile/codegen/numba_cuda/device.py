"""Device functions the generated kernels call: the scalar semantics of the elementwise
primitives that are more than one expression, and the RNN activations. float32 constants
keep the arithmetic in float32 (a Python float would widen it to float64 on the GPU)."""
import math

import numpy as np
from numba import cuda

ZERO = np.float32(0.0)
ONE = np.float32(1.0)
HALF = np.float32(0.5)


@cuda.jit(device=True)
def sigmoid(x):
    if x >= ZERO:
        return ONE / (ONE + math.exp(-x))
    e = math.exp(x)
    return e / (ONE + e)


@cuda.jit(device=True)
def softplus(x):
    return max(x, ZERO) + math.log1p(math.exp(-abs(x)))


@cuda.jit(device=True)
def sign(x):
    if x > ZERO:
        return ONE
    if x < ZERO:
        return -ONE
    return ZERO


@cuda.jit(device=True)
def hard_sigmoid(x, slope):
    return min(max(x * slope + HALF, ZERO), ONE)
