"""Data-movement primitives: each output element comes from one input element (or a pad)."""
from __future__ import annotations

import numpy as np

from ...errors import IRError
from ..graph import TensorType
from ..registry import Kind, primitive
from ..shapes import normalize_axis, reshape_target
from .grad_ops import unbroadcast


def concrete_reshape(x: np.ndarray, shape: tuple) -> np.ndarray:
    return x.reshape(tuple(-1 if d is None else d for d in shape))


@primitive("reshape", Kind.INJECTIVE)
class Reshape:
    """Row-major reshape; `None` in the target is the dynamic dimension."""

    @staticmethod
    def infer(x, *, shape):
        return TensorType(reshape_target(x.shape, shape), x.dtype)

    @staticmethod
    def reference(x, *, shape):
        return concrete_reshape(x, shape)

    @staticmethod
    def grad(b, node, out_grads):
        return [b.reshape(out_grads[0], shape=node.inputs[0].shape)]


@primitive("transpose", Kind.INJECTIVE)
class Transpose:
    """Permute axes: output axis i is input axis perm[i]."""

    @staticmethod
    def infer(x, *, perm):
        if sorted(perm) != list(range(x.rank)):
            raise IRError(f"transpose perm {perm} for rank {x.rank}")
        return TensorType(tuple(x.shape[p] for p in perm), x.dtype)

    @staticmethod
    def reference(x, *, perm):
        return np.ascontiguousarray(np.transpose(x, perm))

    @staticmethod
    def grad(b, node, out_grads):
        inverse = tuple(int(i) for i in np.argsort(node.attrs["perm"]))
        return [b.transpose(out_grads[0], perm=inverse)]


@primitive("concat", Kind.INJECTIVE)
class Concat:
    """Join any number of inputs along one axis."""

    @staticmethod
    def infer(*xs, axis):
        axis = normalize_axis(axis, xs[0].rank)
        rest = {tuple(d for i, d in enumerate(x.shape) if i != axis) for x in xs}
        if len(rest) != 1 or any(x.shape[axis] is None for x in xs):
            raise IRError(f"concat along axis {axis} of {[str(x) for x in xs]}")
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        return TensorType(tuple(shape), xs[0].dtype)

    @staticmethod
    def reference(*xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def grad(b, node, out_grads):
        g, start, grads = out_grads[0], 0, []
        axis = normalize_axis(node.attrs["axis"], g.rank)
        for x in node.inputs:
            size = x.shape[axis]
            grads.append(b.slice(g, axes=(axis,), starts=(start,), stops=(start + size,), steps=(1,)))
            start += size
        return grads


def slice_length(size: int, start: int, stop: int, step: int) -> int:
    return len(range(*slice(start, stop, step).indices(size)))


@primitive("slice", Kind.INJECTIVE)
class Slice:
    """Python slicing start:stop:step along the given static axes (negative steps reverse)."""

    @staticmethod
    def infer(x, *, axes, starts, stops, steps):
        shape = list(x.shape)
        for axis, start, stop, step in zip(axes, starts, stops, steps):
            if shape[axis] is None:
                raise IRError(f"slice over the dynamic dimension of {x}")
            shape[axis] = slice_length(shape[axis], start, stop, step)
            if shape[axis] == 0:
                raise IRError(f"empty slice {start}:{stop}:{step} on axis {axis} of {x}")
        return TensorType(tuple(shape), x.dtype)

    @staticmethod
    def reference(x, *, axes, starts, stops, steps):
        index = [slice(None)] * x.ndim
        for axis, start, stop, step in zip(axes, starts, stops, steps):
            index[axis] = slice(start, stop, step)
        return np.ascontiguousarray(x[tuple(index)])

    @staticmethod
    def grad(b, node, out_grads):
        """Each sliced axis scattered back in turn: reversed for a negative step, spread
        by the step (a new axis padded to the step, merged), padded to the input size."""
        x, g = node.inputs[0], out_grads[0]
        attrs = node.attrs
        for axis, start, stop, step in zip(attrs["axes"], attrs["starts"], attrs["stops"], attrs["steps"]):
            axis = normalize_axis(axis, x.rank)
            size = x.shape[axis]
            picked = range(*slice(start, stop, step).indices(size))
            n = len(picked)
            if step < 0:
                g = b.slice(g, axes=(axis,), starts=(n - 1,), stops=(-n - 1,), steps=(-1,))
                first, step = picked[-1], -step
            else:
                first = picked[0]
            if step > 1:
                spread = g.shape[: axis + 1] + (1,) + g.shape[axis + 1 :]
                g = b.reshape(g, shape=spread)
                g = b.pad(g, pads=tuple((0, step - 1) if i == axis + 1 else (0, 0) for i in range(g.rank)))
                g = b.reshape(g, shape=g.shape[:axis] + (n * step,) + g.shape[axis + 2 :])
            length = g.shape[axis]
            if first + length > size:  # the spread's tail runs past the input
                g = b.slice(g, axes=(axis,), starts=(0,), stops=(size - first,), steps=(1,))
                length = size - first
            pads = tuple((first, size - first - length) if i == axis else (0, 0) for i in range(g.rank))
            g = b.pad(g, pads=pads)
        return [g]


@primitive("pad", Kind.INJECTIVE)
class Pad:
    """Constant padding: pads holds (before, after) for every axis."""

    @staticmethod
    def infer(x, *, pads, value=0.0):
        if len(pads) != x.rank:
            raise IRError(f"pad needs {x.rank} (before, after) pairs, got {pads}")
        shape = []
        for d, (lo, hi) in zip(x.shape, pads):
            if d is None and (lo or hi):
                raise IRError(f"padding the dynamic dimension of {x}")
            shape.append(None if d is None else d + lo + hi)
        return TensorType(tuple(shape), x.dtype)

    @staticmethod
    def reference(x, *, pads, value=0.0):
        return np.pad(x, [tuple(p) for p in pads], constant_values=value)

    @staticmethod
    def grad(b, node, out_grads):
        x, g = node.inputs[0], out_grads[0]
        axes = tuple(i for i, (lo, hi) in enumerate(node.attrs["pads"]) if lo or hi)
        if not axes:
            return [g]
        starts = tuple(node.attrs["pads"][i][0] for i in axes)
        stops = tuple(s + x.shape[i] for s, i in zip(starts, axes))
        return [b.slice(g, axes=axes, starts=starts, stops=stops, steps=(1,) * len(axes))]


@primitive("broadcast_to", Kind.INJECTIVE)
class BroadcastTo:
    """Expand size-1 axes to a larger static size (RepeatVector, masks)."""

    @staticmethod
    def infer(x, *, shape):
        if len(shape) != x.rank or any(d != s and d != 1 for d, s in zip(x.shape, shape)):
            raise IRError(f"cannot broadcast {x} to {shape}")
        return TensorType(tuple(shape), x.dtype)

    @staticmethod
    def reference(x, *, shape):
        target = tuple(n if s is None else s for n, s in zip(x.shape, shape))
        return np.ascontiguousarray(np.broadcast_to(x, target))

    @staticmethod
    def grad(b, node, out_grads):
        return [unbroadcast(b, out_grads[0], node.inputs[0].type)]


@primitive("repeat", Kind.INJECTIVE)
class Repeat:
    """Repeat each element `repeats` times along a static axis (nearest upsampling)."""

    @staticmethod
    def infer(x, *, axis, repeats):
        if x.shape[axis] is None:
            raise IRError(f"repeat over the dynamic dimension of {x}")
        shape = list(x.shape)
        shape[axis] *= repeats
        return TensorType(tuple(shape), x.dtype)

    @staticmethod
    def reference(x, *, axis, repeats):
        return np.repeat(x, repeats, axis=axis)

    @staticmethod
    def grad(b, node, out_grads):
        x, g = node.inputs[0], out_grads[0]
        axis, repeats = normalize_axis(node.attrs["axis"], x.rank), node.attrs["repeats"]
        split = g.shape[:axis] + (x.shape[axis], repeats) + g.shape[axis + 1 :]
        return [b.reduce_sum(b.reshape(g, shape=split), axes=(axis + 1,), keepdims=False)]


@primitive("gather", Kind.INJECTIVE)
class Gather:
    """Rows of a table by integer index: out = table[indices] (Embedding)."""

    @staticmethod
    def infer(table, indices):
        if indices.dtype not in ("int32", "int64"):
            raise IRError(f"gather indices must be integers, got {indices}")
        return TensorType(indices.shape + table.shape[1:], table.dtype)

    @staticmethod
    def reference(table, indices):
        if indices.size and (indices.min() < 0 or indices.max() >= table.shape[0]):
            raise IndexError(f"gather index out of range [0, {table.shape[0]})")
        return table[indices]

    @staticmethod
    def grad(b, node, out_grads):
        table, indices = node.inputs
        return [b.scatter_add(indices, out_grads[0], rows=table.shape[0]), None]


def resize_source(out_size: int, in_size: int, method: str):
    """TensorFlow's half-pixel source coordinates for each output position."""
    scale = np.float32(in_size) / np.float32(out_size)
    centers = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
    if method == "nearest":
        return np.minimum(np.floor(centers).astype(np.int64), in_size - 1), None
    src = centers - np.float32(0.5)
    lower = np.floor(src)
    frac = (src - lower).astype(np.float32)
    lo = np.clip(lower.astype(np.int64), 0, in_size - 1)
    hi = np.clip(lower.astype(np.int64) + 1, 0, in_size - 1)
    return (lo, hi), frac


@primitive("resize", Kind.INJECTIVE)
class Resize:
    """Resize the spatial axes of a channels-last tensor (nearest or bilinear, half-pixel centers)."""

    @staticmethod
    def infer(x, *, sizes, method):
        if method not in ("nearest", "bilinear"):
            raise IRError(f"resize method {method!r}")
        return TensorType((x.shape[0],) + tuple(sizes) + (x.shape[-1],), x.dtype)

    @staticmethod
    def reference(x, *, sizes, method):
        for axis, size in enumerate(sizes, start=1):
            index, frac = resize_source(size, x.shape[axis], method)
            if method == "nearest":
                x = np.take(x, index, axis=axis)
            else:
                shape = [1] * x.ndim
                shape[axis] = size
                f = frac.reshape(shape)
                x = np.take(x, index[0], axis=axis) * (1 - f) + np.take(x, index[1], axis=axis) * f
        return x.astype(np.float32)

    @staticmethod
    def grad(b, node, out_grads):
        """Resizing one axis is a product with a constant (out, in) matrix; the gradient
        takes the transposed products, last axis first."""
        x, g = node.inputs[0], out_grads[0]
        sizes, method = node.attrs["sizes"], node.attrs["method"]
        for axis in range(len(sizes), 0, -1):
            out_size, in_size = sizes[axis - 1], x.shape[axis]
            matrix = np.zeros((out_size, in_size), np.float32)
            index, frac = resize_source(out_size, in_size, method)
            rows = np.arange(out_size)
            if method == "nearest":
                matrix[rows, index] = 1.0
            else:
                np.add.at(matrix, (rows, index[0]), 1 - frac)
                np.add.at(matrix, (rows, index[1]), frac)
            perm = tuple(i for i in range(g.rank) if i != axis) + (axis,)
            moved = b.matmul(b.transpose(g, perm=perm), b.const(matrix))  # (..., in)
            back = tuple(int(i) for i in np.argsort(perm))
            g = b.transpose(moved, perm=back)
        return [g]
