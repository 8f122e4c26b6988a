"""Reductions over static axes, and the softmax family."""
from __future__ import annotations

import numpy as np

from ...errors import IRError
from ..graph import TensorType
from ..program import program_type, run_program
from ..registry import Kind, Primitive, define, primitive
from ..shapes import normalize_axes, normalize_axis
from .grad_ops import grad_by_decomposition


def _reduce_type(x: TensorType, *, axes, keepdims=False) -> TensorType:
    axes = normalize_axes(axes, x.rank)
    if any(x.shape[a] is None for a in axes):
        raise IRError(f"cannot reduce over the dynamic dimension of {x}")
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes)
    return TensorType(shape, x.dtype)


def _reduction(name: str, fn, doc: str, grad=None) -> Primitive:
    def reference(x, *, axes, keepdims=False):
        return np.asarray(fn(x, axis=tuple(axes), keepdims=keepdims), dtype=x.dtype)

    return define(Primitive(name, Kind.REDUCTION, infer=_reduce_type, reference=reference, grad=grad, doc=doc))


def _kept(b, v, x, axes):
    """A reduction's result (or its gradient) with the reduced axes back as size 1."""
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return v if v.shape == shape else b.reshape(v, shape=shape)


def _sum_grad(b, node, out_grads):
    x = node.inputs[0]
    axes = normalize_axes(node.attrs["axes"], x.rank)
    return [b.broadcast_to(_kept(b, out_grads[0], x, axes), shape=x.shape)]


def _mean_grad(b, node, out_grads):
    x = node.inputs[0]
    axes = normalize_axes(node.attrs["axes"], x.rank)
    count = float(np.prod([x.shape[a] for a in axes]))
    g = b.div(_kept(b, out_grads[0], x, axes), b.const(count))
    return [b.broadcast_to(g, shape=x.shape)]


def _extremum_grad(b, node, out_grads):
    """As TensorFlow: the gradient is shared equally by the elements equal to the result."""
    x, y = node.inputs[0], node.outputs[0]
    axes = normalize_axes(node.attrs["axes"], x.rank)
    hit = b.equal(x, _kept(b, y, x, axes))
    count = b.reduce_sum(hit, axes=axes, keepdims=True)
    return [b.mul(hit, b.div(_kept(b, out_grads[0], x, axes), count))]


REDUCTION_GRADS = {
    "reduce_sum": _sum_grad,
    "reduce_mean": _mean_grad,
    "reduce_max": _extremum_grad,
    "reduce_min": _extremum_grad,
}


REDUCTIONS = {
    "reduce_sum": (np.sum, "sum over axes"),
    "reduce_mean": (np.mean, "mean over axes"),
    "reduce_max": (np.max, "maximum over axes"),
    "reduce_min": (np.min, "minimum over axes"),
}

for _name, (_fn, _doc) in REDUCTIONS.items():
    _reduction(_name, _fn, _doc, REDUCTION_GRADS[_name])


def _axis_type(x: TensorType, *, axis) -> TensorType:
    if x.shape[normalize_axis(axis, x.rank)] is None:
        raise IRError(f"softmax over the dynamic dimension of {x}")
    return x


def _softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


def _log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))).astype(x.dtype)


@primitive("softmax", Kind.REDUCTION)
class Softmax:
    """exp(x - max) / sum(exp(x - max)) along one axis."""

    infer = staticmethod(_axis_type)

    @staticmethod
    def reference(x, *, axis):
        return _softmax(x, axis)

    @staticmethod
    def grad(b, node, out_grads):
        """dx = y * (g - sum(g * y)) along the axis."""
        y, g, axis = node.outputs[0], out_grads[0], node.attrs["axis"]
        dot = b.reduce_sum(b.mul(g, y), axes=(axis,), keepdims=True)
        return [b.mul(y, b.sub(g, dot))]

    @staticmethod
    def decompose(b, x, *, axis):
        e = b.exp(b.sub(x, b.reduce_max(x, axes=(axis,), keepdims=True)))
        return b.div(e, b.reduce_sum(e, axes=(axis,), keepdims=True))


@primitive("log_softmax", Kind.REDUCTION)
class LogSoftmax:
    """x - max - log(sum(exp(x - max))) along one axis."""

    infer = staticmethod(_axis_type)

    @staticmethod
    def reference(x, *, axis):
        return _log_softmax(x, axis)

    @staticmethod
    def grad(b, node, out_grads):
        """dx = g - softmax(x) * sum(g) along the axis; softmax(x) = exp(y)."""
        y, g, axis = node.outputs[0], out_grads[0], node.attrs["axis"]
        total = b.reduce_sum(g, axes=(axis,), keepdims=True)
        return [b.sub(g, b.mul(b.exp(y), total))]

    @staticmethod
    def decompose(b, x, *, axis):
        shifted = b.sub(x, b.reduce_max(x, axes=(axis,), keepdims=True))
        return b.sub(shifted, b.log(b.reduce_sum(b.exp(shifted), axes=(axis,), keepdims=True)))


@primitive("fused_reduce_sum", Kind.COMPOSITE)
class FusedReduceSum:
    """sum over `axes` of an elementwise program of the inputs (ir.program), in one pass:
    the program's full-size result is never stored. Made by the training pipeline's
    fuse_reduction_prologues (a batch-normalization layer's sum of squares and its
    gradient's sum of dy * xhat); a backend without a lowering gets its decomposition,
    the program as a fused_elementwise node and then reduce_sum."""

    @staticmethod
    def infer(*inputs, program, axes, keepdims=False):
        return _reduce_type(program_type(program, list(inputs)), axes=axes, keepdims=keepdims)

    @staticmethod
    def reference(*inputs, program, axes, keepdims=False):
        values = run_program(program, list(inputs))
        return np.asarray(np.sum(values, axis=tuple(axes), keepdims=keepdims), dtype=values.dtype)

    @staticmethod
    def decompose(b, *inputs, program, axes, keepdims=False):
        return b.reduce_sum(b.emit("fused_elementwise", *inputs, program=program), axes=axes, keepdims=keepdims)

    @staticmethod
    def grad(b, node, out_grads):
        return grad_by_decomposition(b, node, out_grads)
