"""Matrix products, convolutions and pooling. All spatial ops are channels-last:
x is (N, *spatial, C); conv kernels are (*window, C // groups, F) as Keras stores them."""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...errors import IRError
from ..graph import TensorType
from ..program import program_type, run_program
from ..registry import Kind, primitive
from ..shapes import broadcast_shapes, window_output_size


# Fusion puts an elementwise epilogue (bias, activation, residual add) into matmul and
# conv: the extra inputs follow the two operands and `epilogue` is a program over them
# and ("acc",), the product. Without an epilogue the primitive is the plain product.
def epilogue_infer(base):
    def infer(a, b, *extra, epilogue=(), **attrs):
        acc = base(a, b, **attrs)
        if not epilogue:
            return acc
        out = program_type(epilogue, list(extra), acc)
        if out.shape != acc.shape:
            raise IRError(f"epilogue changes the shape {acc} to {out}")
        return out

    return infer


def epilogue_reference(base):
    def reference(a, b, *extra, epilogue=(), **attrs):
        acc = base(a, b, **attrs)
        return run_program(epilogue, list(extra), acc) if epilogue else acc

    return reference


@primitive("matmul", Kind.OUT_FUSABLE)
class MatMul:
    """NumPy matmul: (..., M, K) @ (..., K, N), leading dims broadcast."""

    @staticmethod
    @epilogue_infer
    def infer(a, b):
        if a.rank < 2 or b.rank < 2:
            raise IRError(f"matmul needs rank >= 2 operands, got {a} and {b}")
        if a.shape[-1] != b.shape[-2]:
            raise IRError(f"matmul contraction mismatch: {a} @ {b}")
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        return TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)

    @staticmethod
    @epilogue_reference
    def reference(a, b):
        return np.matmul(a, b)


def _spatial_windows(x, window, strides, dilations, pads, pad_value=0.0):
    """(N, *S, C) -> (N, *O, C, *window): each output position's input window."""
    n_spatial = len(window)
    pad_width = [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)]
    xp = np.pad(x, pad_width, constant_values=pad_value)
    effective = [(k - 1) * d + 1 for k, d in zip(window, dilations)]
    windows = sliding_window_view(xp, effective, axis=tuple(range(1, n_spatial + 1)))
    index = (slice(None),) + tuple(slice(None, None, s) for s in strides) + (slice(None),)
    index += tuple(slice(None, None, d) for d in dilations)
    return windows[index]


def _window_type(x, window, strides, dilations, pads, channels):
    spatial = x.shape[1:-1]
    if len(spatial) != len(window) or any(d is None for d in spatial):
        raise IRError(f"{len(window)}-D window over input {x}")
    out = tuple(
        window_output_size(n, k, s, d, p) for n, k, s, d, p in zip(spatial, window, strides, dilations, pads)
    )
    return TensorType((x.shape[0],) + out + (channels,), x.dtype)


@primitive("conv", Kind.OUT_FUSABLE)
class Conv:
    """N-D convolution (cross-correlation) with explicit padding, strides, dilation and groups."""

    @staticmethod
    @epilogue_infer
    def infer(x, w, *, strides, dilations, pads, groups=1):
        window, cin_per_group, filters = w.shape[:-2], w.shape[-2], w.shape[-1]
        if x.shape[-1] != cin_per_group * groups or filters % groups:
            raise IRError(f"conv: input {x} does not fit kernel {w} with {groups} groups")
        return _window_type(x, window, strides, dilations, pads, filters)

    @staticmethod
    @epilogue_reference
    def reference(x, w, *, strides, dilations, pads, groups=1):
        window, cg, filters = w.shape[:-2], w.shape[-2], w.shape[-1]
        patches = _spatial_windows(x, window, strides, dilations, pads)  # (N, *O, C, *K)
        n_sp = len(window)
        out_spatial = patches.shape[1 : 1 + n_sp]
        patches = patches.reshape(patches.shape[: 1 + n_sp] + (groups, cg) + tuple(window))
        kernel = w.reshape(tuple(window) + (cg, groups, filters // groups))
        letters = "hijkl"[:n_sp]
        spec = f"n{'OPQ'[:n_sp]}gc{letters},{letters}cgf->n{'OPQ'[:n_sp]}gf"
        out = np.einsum(spec, patches, kernel, optimize=True)
        return out.reshape((x.shape[0],) + tuple(out_spatial) + (filters,)).astype(x.dtype)


@primitive("conv_transpose", Kind.OUT_FUSABLE)
class ConvTranspose:
    """The gradient of conv with respect to its input: kernel (*window, F, C) as Keras stores it.
    The full output ((in - 1) * stride + (k - 1) * dilation + 1 per axis) is cropped by
    pads (lo, hi); a negative hi extends the output with zeros (Keras's output_padding)."""

    @staticmethod
    @epilogue_infer
    def infer(x, w, *, strides, dilations, pads):
        window, filters, cin = w.shape[:-2], w.shape[-2], w.shape[-1]
        if x.shape[-1] != cin:
            raise IRError(f"conv_transpose: input {x} does not fit kernel {w}")
        out = []
        for n, k, s, d, (lo, hi) in zip(x.shape[1:-1], window, strides, dilations, pads):
            size = (n - 1) * s + (k - 1) * d + 1 - lo - hi
            if size <= 0:
                raise IRError(f"conv_transpose output length {size} for input {x}")
            out.append(size)
        return TensorType((x.shape[0],) + tuple(out) + (filters,), x.dtype)

    @staticmethod
    @epilogue_reference
    def reference(x, w, *, strides, dilations, pads):
        window, filters = w.shape[:-2], w.shape[-2]
        spatial = x.shape[1:-1]
        full = [(n - 1) * s + (k - 1) * d + 1 for n, k, s, d in zip(spatial, window, strides, dilations)]
        extra = [max(-hi, 0) for _, hi in pads]
        out = np.zeros((x.shape[0],) + tuple(f + e for f, e in zip(full, extra)) + (filters,), x.dtype)
        for pos in itertools.product(*[range(k) for k in window]):
            contrib = x @ w[pos].T  # (N, *S, F)
            index = (slice(None),)
            for p, n, s, d in zip(pos, spatial, strides, dilations):
                index += (slice(p * d, p * d + (n - 1) * s + 1, s),)
            out[index] += contrib
        crop = tuple(slice(lo, f + e - max(hi, 0)) for (lo, hi), f, e in zip(pads, full, extra))
        crop = (slice(None),) + crop + (slice(None),)
        return np.ascontiguousarray(out[crop])


def _pool_type(x, *, window, strides, pads, **_):
    return _window_type(x, window, strides, (1,) * len(window), pads, x.shape[-1])


@primitive("max_pool", Kind.OPAQUE)
class MaxPool:
    """Maximum over each window; padding never wins."""

    infer = staticmethod(_pool_type)

    @staticmethod
    def reference(x, *, window, strides, pads):
        patches = _spatial_windows(x, window, strides, (1,) * len(window), pads, -np.inf)
        return patches.max(axis=tuple(range(-len(window), 0))).astype(x.dtype)


@primitive("avg_pool", Kind.OPAQUE)
class AvgPool:
    """Mean over each window; padded cells count only when count_include_pad."""

    infer = staticmethod(_pool_type)

    @staticmethod
    def reference(x, *, window, strides, pads, count_include_pad=False):
        ones = (1,) * len(window)
        axes = tuple(range(-len(window), 0))
        total = _spatial_windows(x, window, strides, ones, pads).sum(axis=axes)
        if count_include_pad:
            return (total / np.prod(window)).astype(x.dtype)
        mask = np.ones((1,) + x.shape[1:-1] + (1,), x.dtype)
        count = _spatial_windows(mask, window, strides, ones, pads).sum(axis=axes)
        return (total / count).astype(x.dtype)
