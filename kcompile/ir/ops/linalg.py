"""Matrix products, convolutions and pooling. All spatial ops are channels-last:
x is (N, *spatial, C); conv kernels are (*window, C // groups, F) as Keras stores them."""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...errors import IRError
from ..graph import TensorType
from ..registry import Kind, primitive
from ..shapes import broadcast_shapes, window_output_size
from .grad_ops import (epilogue_grad, epilogue_infer, epilogue_reference, grad_by_decomposition,
                       transpose_pads, unbroadcast)


def _swap_last(b, v):
    perm = tuple(range(v.rank - 2)) + (v.rank - 1, v.rank - 2)
    return b.transpose(v, perm=perm)


def _rows(b, v):
    """Collapse the leading axes: (..., K) -> (rows, K), the dynamic axis absorbing them."""
    return b.reshape(v, shape=(None if v.type.dynamic_axis is not None else -1, v.shape[-1]))


def _matmul_grad(b, node, g):
    a, w = node.inputs
    da = unbroadcast(b, b.matmul(g, _swap_last(b, w)), a.type)
    if w.rank == 2 and a.rank > 2:  # a dense layer over a sequence: one GEMM over all rows
        dw = b.matmul(b.transpose(_rows(b, a), perm=(1, 0)), _rows(b, g))
    else:
        dw = unbroadcast(b, b.matmul(_swap_last(b, a), g), w.type)
    return [da, dw]


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

    grad = staticmethod(epilogue_grad(_matmul_grad))


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


def _dense_kernel(b, w, groups):
    """A grouped kernel (*K, C/groups, F) as the equivalent dense (*K, C, F) one:
    tiled along the input channels and masked to its block diagonal."""
    cg, filters = w.shape[-2], w.shape[-1]
    mask = np.zeros((cg * groups, filters), np.float32)
    fg = filters // groups
    for group in range(groups):
        mask[group * cg : (group + 1) * cg, group * fg : (group + 1) * fg] = 1.0
    return b.mul(b.concat(*[w] * groups, axis=w.rank - 2), b.const(mask))


def _conv_grad(b, node, g):
    x, w = node.inputs
    attrs = node.attrs
    window, strides, dilations, pads = w.shape[:-2], attrs["strides"], attrs["dilations"], attrs["pads"]
    if attrs.get("groups", 1) != 1:  # through the dense kernel: conv_transpose has no groups

        def build(bb, xx, ww):
            dense = _dense_kernel(bb, ww, attrs["groups"])
            return bb.conv(xx, dense, strides=strides, dilations=dilations, pads=pads, groups=1)

        return grad_by_decomposition(b, node, [g], build)
    crops = transpose_pads(x.shape[1:-1], g.shape[1:-1], window, strides, dilations, pads)
    dx = b.conv_transpose(g, w, strides=strides, dilations=dilations, pads=crops)
    dw = b.conv_weight_grad(x, g, window=window, strides=strides, dilations=dilations, pads=pads)
    return [dx, dw]


def _uncrop(b, g, pads):
    """conv_transpose's gradient sees its output uncropped at the end: drop the cells a
    negative hi added (zeros, no gradient); returns g and the remaining (lo, hi >= 0)."""
    axes = tuple(1 + i for i, (_, hi) in enumerate(pads) if hi < 0)
    if axes:
        stops = tuple(g.shape[a] + pads[a - 1][1] for a in axes)
        g = b.slice(g, axes=axes, starts=(0,) * len(axes), stops=stops, steps=(1,) * len(axes))
    return g, tuple((lo, max(hi, 0)) for lo, hi in pads)


def _conv_transpose_grad(b, node, g):
    """conv_transpose is the adjoint of conv with the same kernel, so its input gradient
    is a conv of g and its kernel gradient a conv_weight_grad with the roles swapped."""
    x, w = node.inputs
    attrs = node.attrs
    window, strides, dilations = w.shape[:-2], attrs["strides"], attrs["dilations"]
    if any(lo < 0 for lo, _ in attrs["pads"]):
        raise IRError("conv_transpose gradient: negative leading crop")
    g, pads = _uncrop(b, g, attrs["pads"])
    dx = b.conv(g, w, strides=strides, dilations=dilations, pads=pads, groups=1)
    dw = b.conv_weight_grad(g, x, window=window, strides=strides, dilations=dilations, pads=pads)
    return [dx, dw]


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

    grad = staticmethod(epilogue_grad(_conv_grad))


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

    grad = staticmethod(epilogue_grad(_conv_transpose_grad))


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

    @staticmethod
    def grad(b, node, out_grads):
        x, attrs = node.inputs[0], node.attrs
        return [b.max_pool_grad(x, out_grads[0], window=attrs["window"], strides=attrs["strides"], pads=attrs["pads"])]


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

    @staticmethod
    def grad(b, node, out_grads):
        """g divided by each window's cell count, spread over the window: a
        conv_transpose with a per-channel identity kernel."""
        x, g, attrs = node.inputs[0], out_grads[0], node.attrs
        window, strides, pads = attrs["window"], attrs["strides"], attrs["pads"]
        n_sp, channels = len(window), x.shape[-1]
        if attrs.get("count_include_pad", False):
            count = np.full((1,) * (n_sp + 2), float(np.prod(window)), np.float32)
        else:
            ones = np.ones((1,) + x.shape[1:-1] + (1,), np.float32)
            count = _spatial_windows(ones, window, strides, (1,) * n_sp, pads).sum(axis=tuple(range(-n_sp, 0)))
        scaled = b.div(g, b.const(count.astype(np.float32)))
        eye = np.broadcast_to(np.eye(channels, dtype=np.float32), tuple(window) + (channels, channels))
        crops = transpose_pads(x.shape[1:-1], g.shape[1:-1], window, strides, (1,) * n_sp, pads)
        return [b.conv_transpose(scaled, b.const(np.ascontiguousarray(eye)), strides=strides, dilations=(1,) * n_sp,
                                 pads=crops)]
