"""Reductions over static axes, and the softmax family."""
from __future__ import annotations

import numpy as np

from ...errors import IRError
from ..graph import TensorType
from ..registry import Kind, Primitive, define, primitive
from ..shapes import normalize_axes, normalize_axis


def _reduce_type(x: TensorType, *, axes, keepdims=False) -> TensorType:
    axes = normalize_axes(axes, x.rank)
    if any(x.shape[a] is None for a in axes):
        raise IRError(f"cannot reduce over the dynamic dimension of {x}")
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes)
    return TensorType(shape, x.dtype)


def _reduction(name: str, fn, doc: str) -> Primitive:
    def reference(x, *, axes, keepdims=False):
        return np.asarray(fn(x, axis=tuple(axes), keepdims=keepdims), dtype=x.dtype)

    return define(Primitive(name, Kind.REDUCTION, infer=_reduce_type, reference=reference, doc=doc))


REDUCTIONS = {
    "reduce_sum": (np.sum, "sum over axes"),
    "reduce_mean": (np.mean, "mean over axes"),
    "reduce_max": (np.max, "maximum over axes"),
    "reduce_min": (np.min, "minimum over axes"),
}

for _name, (_fn, _doc) in REDUCTIONS.items():
    _reduction(_name, _fn, _doc)


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
    def decompose(b, x, *, axis):
        shifted = b.sub(x, b.reduce_max(x, axes=(axis,), keepdims=True))
        return b.sub(shifted, b.log(b.reduce_sum(b.exp(shifted), axes=(axis,), keepdims=True)))
