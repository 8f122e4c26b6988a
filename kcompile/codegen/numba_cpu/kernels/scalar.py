"""Scalar semantics of the elementwise primitives, for Numba.

One function a primitive; the epilogue interpreter dispatches on the opcodes below and
generated elementwise kernels call the functions by name, so both agree."""
import math

import numpy as np
from numba import njit

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Unary ops (one operand); the epilogue encodes them by index in this tuple.
UNARY_OPS = (
    "identity", "neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "reciprocal", "tanh",
    "sigmoid", "relu", "erf", "sign", "floor", "softplus", "clip",
)
# Binary ops; opcodes continue after the unary ones.
BINARY_OPS = (
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "greater", "greater_equal", "less", "less_equal",
    "equal", "not_equal", "relu_grad",
)
OPCODES = {name: i for i, name in enumerate(UNARY_OPS + BINARY_OPS)}
FIRST_BINARY = len(UNARY_OPS)

# float32 constants keep float32 arithmetic float32 (a Python 1.0 would widen it).
ZERO, ONE = np.float32(0.0), np.float32(1.0)


@njit(inline="always")
def sigmoid(x):
    if x >= ZERO:
        return ONE / (ONE + math.exp(-x))
    e = math.exp(x)
    return e / (ONE + e)


@njit(inline="always")
def softplus(x):
    return max(x, ZERO) + math.log1p(math.exp(-abs(x)))


@njit(inline="always")
def sign(x):
    return ONE if x > ZERO else (-ONE if x < ZERO else ZERO)


@njit(inline="always")
def unary(code, x, low, high):
    if code == 0:
        return x
    if code == 1:
        return -x
    if code == 2:
        return abs(x)
    if code == 3:
        return math.exp(x)
    if code == 4:
        return math.log(x)
    if code == 5:
        return math.log1p(x)
    if code == 6:
        return math.expm1(x)
    if code == 7:
        return math.sqrt(x)
    if code == 8:
        return ONE / math.sqrt(x)
    if code == 9:
        return x * x
    if code == 10:
        return ONE / x
    if code == 11:
        return math.tanh(x)
    if code == 12:
        return sigmoid(x)
    if code == 13:
        return x if x > ZERO else ZERO
    if code == 14:
        return math.erf(x)
    if code == 15:
        return sign(x)
    if code == 16:
        return math.floor(x)
    if code == 17:
        return softplus(x)
    return min(max(x, low), high)  # clip


@njit(inline="always")
def binary(code, a, b):
    if code == 19:
        return a + b
    if code == 20:
        return a - b
    if code == 21:
        return a * b
    if code == 22:
        return a / b
    if code == 23:
        return a ** b
    if code == 24:
        return max(a, b)
    if code == 25:
        return min(a, b)
    if code == 26:
        return ONE if a > b else ZERO
    if code == 27:
        return ONE if a >= b else ZERO
    if code == 28:
        return ONE if a < b else ZERO
    if code == 29:
        return ONE if a <= b else ZERO
    if code == 30:
        return ONE if a == b else ZERO
    if code == 31:
        return ONE if a != b else ZERO
    return a if b > ZERO else ZERO


assert OPCODES["clip"] == 18 and OPCODES["add"] == 19 and OPCODES["relu_grad"] == 32
