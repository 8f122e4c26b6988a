"""Elementwise primitives: unary math, broadcast binary arithmetic and comparison, where."""
from __future__ import annotations

import numpy as np
from scipy import special

from ..graph import TensorType
from ..program import program_type, run_program
from ..registry import Kind, Primitive, define, primitive
from ..shapes import broadcast_shapes


def _same_type(x: TensorType, **attrs) -> TensorType:
    return x


def _unary(name: str, reference, doc: str = "") -> Primitive:
    return define(Primitive(name, Kind.ELEMENTWISE, infer=_same_type, reference=reference, doc=doc))


def _typed(fn):
    """Wrap a NumPy function so the result keeps the input's dtype (float32 stays float32)."""
    return lambda x: np.asarray(fn(x), dtype=x.dtype)


def _softplus(x):
    # log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)).
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


UNARY = {
    "identity": (lambda x: x, "x (a removed layer kept visible until cleanup)"),
    "neg": (np.negative, "-x"),
    "abs": (np.abs, "|x|"),
    "exp": (np.exp, "e^x"),
    "log": (np.log, "natural logarithm"),
    "log1p": (np.log1p, "log(1 + x)"),
    "expm1": (np.expm1, "e^x - 1"),
    "sqrt": (np.sqrt, "square root"),
    "rsqrt": (lambda x: 1 / np.sqrt(x), "1 / sqrt(x)"),
    "square": (np.square, "x * x"),
    "reciprocal": (lambda x: 1 / x, "1 / x"),
    "tanh": (np.tanh, "hyperbolic tangent"),
    "sigmoid": (special.expit, "1 / (1 + e^-x)"),
    "relu": (lambda x: np.maximum(x, 0), "max(x, 0)"),
    "erf": (special.erf, "Gauss error function"),
    "sign": (np.sign, "-1, 0 or 1"),
    "floor": (np.floor, "round down"),
    "softplus": (_softplus, "log(1 + e^x)"),
}

for _name, (_fn, _doc) in UNARY.items():
    _unary(_name, _typed(_fn), _doc)


@primitive("clip", Kind.ELEMENTWISE)
class Clip:
    """min(max(x, low), high)."""

    infer = staticmethod(_same_type)

    @staticmethod
    def reference(x, *, low, high):
        return np.clip(x, low, high).astype(x.dtype)


@primitive("cast", Kind.ELEMENTWISE)
class Cast:
    """Convert to another dtype (floats to ints truncate toward zero)."""

    @staticmethod
    def infer(x, *, dtype):
        return TensorType(x.shape, dtype)

    @staticmethod
    def reference(x, *, dtype):
        return x.astype(dtype)


# -- broadcast binary -------------------------------------------------------------


def _binary_type(a: TensorType, b: TensorType, **attrs) -> TensorType:
    if a.dtype != b.dtype:
        raise TypeError(f"binary op on {a.dtype} and {b.dtype}")
    return TensorType(broadcast_shapes(a.shape, b.shape), a.dtype)


def _binary(name: str, reference, doc: str) -> Primitive:
    typed = lambda a, b: np.asarray(reference(a, b), dtype=a.dtype)
    return define(Primitive(name, Kind.BROADCAST, infer=_binary_type, reference=typed, doc=doc))


BINARY = {
    "add": (np.add, "a + b"),
    "sub": (np.subtract, "a - b"),
    "mul": (np.multiply, "a * b"),
    "div": (np.divide, "a / b"),
    "pow": (np.power, "a ** b"),
    "maximum": (np.maximum, "max(a, b)"),
    "minimum": (np.minimum, "min(a, b)"),
    # Comparisons give 1 or 0 in the operands' dtype, so masks stay arithmetic.
    "greater": (np.greater, "1 where a > b else 0"),
    "greater_equal": (np.greater_equal, "1 where a >= b else 0"),
    "less": (np.less, "1 where a < b else 0"),
    "less_equal": (np.less_equal, "1 where a <= b else 0"),
    "equal": (np.equal, "1 where a == b else 0"),
    "not_equal": (np.not_equal, "1 where a != b else 0"),
}

for _name, (_fn, _doc) in BINARY.items():
    _binary(_name, _fn, _doc)


@primitive("where", Kind.BROADCAST)
class Where:
    """a where cond != 0, else b."""

    @staticmethod
    def infer(cond, a, b):
        _binary_type(a, b)
        return TensorType(broadcast_shapes(cond.shape, a.shape, b.shape), a.dtype)

    @staticmethod
    def reference(cond, a, b):
        return np.where(cond != 0, a, b).astype(a.dtype)


@primitive("fused_elementwise", Kind.BROADCAST)
class FusedElementwise:
    """A chain of elementwise/broadcast primitives computed in one pass (see ir.program)."""

    @staticmethod
    def infer(*inputs, program):
        return program_type(program, list(inputs))

    @staticmethod
    def reference(*inputs, program):
        return run_program(program, list(inputs))
