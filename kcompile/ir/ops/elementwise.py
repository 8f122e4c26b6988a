"""Elementwise primitives: unary math, broadcast binary arithmetic and comparison, where."""
from __future__ import annotations

import numpy as np

from ..graph import TensorType
from ..program import program_type, run_program
from ..registry import Kind, Primitive, define, primitive
from ..shapes import broadcast_shapes
from .grad_ops import emit_program, grad_by_decomposition, unbroadcast


def _same_type(x: TensorType, **attrs) -> TensorType:
    return x


def _unary(name: str, reference, doc: str = "", grad=None) -> Primitive:
    return define(Primitive(name, Kind.ELEMENTWISE, infer=_same_type, reference=reference, grad=grad, doc=doc))


def _unary_grad(local):
    """A unary primitive's gradient rule from `local(b, x, y, g) -> dx` (None: zero)."""

    def grad(b, node, out_grads):
        return [local(b, node.inputs[0], node.outputs[0], out_grads[0])]

    return grad


def _typed(fn):
    """Wrap a NumPy function so the result keeps the input's dtype (float32 stays float32)."""
    return lambda x: np.asarray(fn(x), dtype=x.dtype)


def _sigmoid(x):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _erf(x):
    from scipy import special  # imported on first use: it costs a third of a second

    return special.erf(x)


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
    "sigmoid": (_sigmoid, "1 / (1 + e^-x)"),
    "relu": (lambda x: np.maximum(x, 0), "max(x, 0)"),
    "erf": (_erf, "Gauss error function"),
    "sign": (np.sign, "-1, 0 or 1"),
    "floor": (np.floor, "round down"),
    "softplus": (_softplus, "log(1 + e^x)"),
}

# Gradients (b, x, y = f(x), g = dL/dy) -> dL/dx, as TensorFlow's rules compute them.
UNARY_GRADS = {
    "identity": lambda b, x, y, g: g,
    "neg": lambda b, x, y, g: b.neg(g),
    "abs": lambda b, x, y, g: b.mul(g, b.sign(x)),
    "exp": lambda b, x, y, g: b.mul(g, y),
    "log": lambda b, x, y, g: b.div(g, x),
    "log1p": lambda b, x, y, g: b.div(g, b.add(x, b.const(1.0))),
    "expm1": lambda b, x, y, g: b.mul(g, b.add(y, b.const(1.0))),
    "sqrt": lambda b, x, y, g: b.div(b.mul(g, b.const(0.5)), y),
    "rsqrt": lambda b, x, y, g: b.mul(g, b.mul(b.const(-0.5), b.mul(y, b.square(y)))),
    "square": lambda b, x, y, g: b.mul(g, b.mul(x, b.const(2.0))),
    "reciprocal": lambda b, x, y, g: b.neg(b.mul(g, b.square(y))),
    "tanh": lambda b, x, y, g: b.mul(g, b.sub(b.const(1.0), b.square(y))),
    "sigmoid": lambda b, x, y, g: b.mul(g, b.mul(y, b.sub(b.const(1.0), y))),
    "relu": lambda b, x, y, g: b.relu_grad(g, y),
    "erf": lambda b, x, y, g: b.mul(g, b.mul(b.const(2 / np.sqrt(np.pi)), b.exp(b.neg(b.square(x))))),
    "sign": lambda b, x, y, g: None,
    "floor": lambda b, x, y, g: None,
    "softplus": lambda b, x, y, g: b.mul(g, b.sigmoid(x)),
}

for _name, (_fn, _doc) in UNARY.items():
    _unary(_name, _typed(_fn), _doc, _unary_grad(UNARY_GRADS[_name]))


@primitive("clip", Kind.ELEMENTWISE)
class Clip:
    """min(max(x, low), high)."""

    infer = staticmethod(_same_type)

    @staticmethod
    def reference(x, *, low, high):
        return np.clip(x, low, high).astype(x.dtype)

    @staticmethod
    def grad(b, node, out_grads):
        (x,), (g,) = node.inputs, out_grads
        low, high = node.attrs["low"], node.attrs["high"]
        inside = b.mul(b.greater_equal(x, b.const(low)), b.less_equal(x, b.const(high)))
        return [b.mul(g, inside)]


@primitive("cast", Kind.ELEMENTWISE)
class Cast:
    """Convert to another dtype (floats to ints truncate toward zero)."""

    @staticmethod
    def infer(x, *, dtype):
        return TensorType(x.shape, dtype)

    @staticmethod
    def reference(x, *, dtype):
        return x.astype(dtype)

    @staticmethod
    def grad(b, node, out_grads):
        (x,), (g,) = node.inputs, out_grads
        return [g if x.dtype == node.outputs[0].dtype == "float32" else None]


# -- broadcast binary -------------------------------------------------------------


def _binary_type(a: TensorType, b: TensorType, **attrs) -> TensorType:
    if a.dtype != b.dtype:
        raise TypeError(f"binary op on {a.dtype} and {b.dtype}")
    return TensorType(broadcast_shapes(a.shape, b.shape), a.dtype)


def _binary(name: str, reference, doc: str, grad=None) -> Primitive:
    typed = lambda a, b: np.asarray(reference(a, b), dtype=a.dtype)
    return define(Primitive(name, Kind.BROADCAST, infer=_binary_type, reference=typed, grad=grad, doc=doc))


def _binary_grad(local):
    """A broadcast binary primitive's gradient rule from `local(b, x, y, out, g) -> (dx, dy)`
    on the broadcast shape; each is summed back to its operand's shape."""

    def grad(b, node, out_grads):
        x, y = node.inputs
        dx, dy = local(b, x, y, node.outputs[0], out_grads[0])
        return [None if dx is None else unbroadcast(b, dx, x.type), None if dy is None else unbroadcast(b, dy, y.type)]

    return grad


def _pow_grad(b, x, y, out, g):
    dx = b.mul(g, b.mul(y, b.pow(x, b.sub(y, b.const(1.0)))))
    # d/dy x^y = x^y log(x), taken as 0 where x <= 0 (as TensorFlow does).
    positive = b.greater(x, b.const(0.0))
    log_x = b.where(positive, b.log(b.where(positive, x, b.const(1.0))), b.const(0.0))
    return dx, b.mul(g, b.mul(out, log_x))


def _select_grad(mask_op):
    """maximum/minimum: the gradient goes to x where mask_op(x, y) (x >= y for maximum,
    x <= y for minimum, so ties go to x as in TensorFlow), else to y."""

    def local(b, x, y, out, g):
        mask = b.emit(mask_op, x, y)
        zero = b.const(0.0)
        return b.where(mask, g, zero), b.where(mask, zero, g)

    return local


_NO_GRAD = lambda b, x, y, out, g: (None, None)  # noqa: E731  (comparisons: piecewise constant)

BINARY_GRADS = {
    "add": lambda b, x, y, out, g: (g, g),
    "sub": lambda b, x, y, out, g: (g, b.neg(g)),
    "mul": lambda b, x, y, out, g: (b.mul(g, y), b.mul(g, x)),
    "div": lambda b, x, y, out, g: (b.div(g, y), b.neg(b.mul(g, b.div(out, y)))),
    "pow": _pow_grad,
    "maximum": _select_grad("greater_equal"),
    "minimum": _select_grad("less_equal"),
    **{op: _NO_GRAD for op in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")},
    "relu_grad": lambda b, x, y, out, g: (b.relu_grad(g, y), None),
}


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
    # ReLU's gradient g where y > 0 as one primitive, not g * (y > 0): an epilogue reads y
    # as its residual operand instead of a mask stored for it, and a NaN or inf in g where
    # y <= 0 gives 0, not NaN (TensorFlow's ReluGrad selects as well).
    "relu_grad": (lambda a, b: np.where(b > 0, a, 0), "a where b > 0 else 0 (ReLU's gradient; b its output)"),
}

for _name, (_fn, _doc) in BINARY.items():
    _binary(_name, _fn, _doc, _binary_grad(BINARY_GRADS[_name]))


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

    @staticmethod
    def grad(b, node, out_grads):
        cond, x, y = node.inputs
        g, zero = out_grads[0], b.const(0.0)
        return [None, unbroadcast(b, b.where(cond, g, zero), x.type), unbroadcast(b, b.where(cond, zero, g), y.type)]


@primitive("fused_elementwise", Kind.BROADCAST)
class FusedElementwise:
    """A chain of elementwise/broadcast primitives computed in one pass (see ir.program)."""

    @staticmethod
    def infer(*inputs, program):
        return program_type(program, list(inputs))

    @staticmethod
    def reference(*inputs, program):
        return run_program(program, list(inputs))

    @staticmethod
    def grad(b, node, out_grads):
        """The program's instructions as nodes, differentiated one by one."""
        program = node.attrs["program"]
        return grad_by_decomposition(b, node, out_grads, lambda bb, *inputs: emit_program(bb, program, list(inputs)))
