"""Convolution layers and their spatial helpers (padding, cropping, upsampling)."""
from __future__ import annotations

from ...ir.shapes import same_padding
from ..registry import lowers
from .activations import apply_activation
from .core import add_bias, in_channels_last


def ntuple(value, n: int) -> tuple:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    return value * n if len(value) == 1 else value


def window_pads(ctx, spatial, window, strides, dilations, padding: str) -> tuple:
    """Explicit (before, after) pads per spatial axis for Keras's padding modes."""
    padding = padding.lower()
    if padding == "valid":
        return tuple((0, 0) for _ in spatial)
    if padding == "same":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(spatial, window, strides, dilations))
    if padding == "causal":
        return tuple(((k - 1) * d, 0) for k, d in zip(window, dilations))
    raise ctx.error(f"padding {padding!r} is not supported")


def _conv_args(ctx, x, n: int, window=None):
    window = window or ntuple(ctx.cfg("kernel_size"), n)
    strides = ntuple(ctx.config.get("strides", 1), n)
    dilations = ntuple(ctx.config.get("dilation_rate", 1), n)
    pads = window_pads(ctx, x.shape[1:-1], window, strides, dilations, ctx.config.get("padding", "valid"))
    return dict(strides=strides, dilations=dilations, pads=pads)


def _conv(n: int):
    def lower(ctx, x):
        def body(v):
            window = ntuple(ctx.cfg("kernel_size"), n)
            groups = ctx.config.get("groups", 1)
            filters = ctx.cfg("filters")
            kernel = ctx.weight(0, "kernel", window + (v.shape[-1] // groups, filters))
            y = ctx.b.conv(v, kernel, groups=groups, **_conv_args(ctx, v, n, window))
            return apply_activation(ctx, add_bias(ctx, y, 1, filters))

        return in_channels_last(ctx, x, body)

    return lower


for _n in (1, 2, 3):
    lowers(f"Conv{_n}D", f"Convolution{_n}D")(_conv(_n))


def _depthwise(ctx, v, n: int, index: int, role: str):
    """The depthwise stage: a grouped conv with one group per input channel."""
    window = ntuple(ctx.cfg("kernel_size"), n)
    channels, multiplier = v.shape[-1], ctx.config.get("depth_multiplier", 1)
    kernel = ctx.weight(index, role, window + (channels, multiplier))
    kernel = ctx.b.reshape(kernel, shape=window + (1, channels * multiplier))
    return ctx.b.conv(v, kernel, groups=channels, **_conv_args(ctx, v, n, window))


def _depthwise_conv(n: int):
    def lower(ctx, x):
        def body(v):
            y = _depthwise(ctx, v, n, 0, "depthwise_kernel")
            return apply_activation(ctx, add_bias(ctx, y, 1, y.shape[-1]))

        return in_channels_last(ctx, x, body)

    return lower


def _separable_conv(n: int):
    def lower(ctx, x):
        def body(v):
            y = _depthwise(ctx, v, n, 0, "depthwise_kernel")
            filters = ctx.cfg("filters")
            pointwise = ctx.weight(1, "pointwise_kernel", (1,) * n + (y.shape[-1], filters))
            ones = (1,) * n
            y = ctx.b.conv(y, pointwise, strides=ones, dilations=ones, pads=((0, 0),) * n, groups=1)
            return apply_activation(ctx, add_bias(ctx, y, 2, filters))

        return in_channels_last(ctx, x, body)

    return lower


for _n in (1, 2):
    lowers(f"DepthwiseConv{_n}D")(_depthwise_conv(_n))
    lowers(f"SeparableConv{_n}D", f"SeparableConvolution{_n}D")(_separable_conv(_n))


def transpose_crop(size, k, s, d, padding, output_padding) -> tuple:
    """(before, after) crop of the full transposed-conv output, as TensorFlow computes it:
    the output length comes from Keras's rules, the crop from 'same'/'valid' padding on it."""
    effective = (k - 1) * d + 1
    full = (size - 1) * s + effective
    if padding == "valid":
        out = full + (max(effective, s) - effective if output_padding is None else output_padding)
        before = 0
    else:
        out = size * s if output_padding is None else (size - 1) * s + effective % 2 + output_padding
        before = max((size - 1) * s + effective - out, 0) // 2
    return (before, full - out - before)


def _conv_transpose(n: int):
    def lower(ctx, x):
        def body(v):
            window = ntuple(ctx.cfg("kernel_size"), n)
            strides = ntuple(ctx.config.get("strides", 1), n)
            dilations = ntuple(ctx.config.get("dilation_rate", 1), n)
            padding = ctx.config.get("padding", "valid").lower()
            output_padding = ctx.config.get("output_padding")
            output_padding = (None,) * n if output_padding is None else ntuple(output_padding, n)
            filters = ctx.cfg("filters")
            pads = tuple(
                transpose_crop(size, k, s, d, padding, op)
                for size, k, s, d, op in zip(v.shape[1:-1], window, strides, dilations, output_padding)
            )
            kernel = ctx.weight(0, "kernel", window + (filters, v.shape[-1]))
            y = ctx.b.conv_transpose(v, kernel, strides=strides, dilations=dilations, pads=pads)
            return apply_activation(ctx, add_bias(ctx, y, 1, filters))

        return in_channels_last(ctx, x, body)

    return lower


for _n in (1, 2, 3):
    lowers(f"Conv{_n}DTranspose", f"Convolution{_n}DTranspose")(_conv_transpose(_n))


def _pairs(value, n: int) -> tuple:
    """Keras padding/cropping specs: int, (sym per axis) or ((before, after) per axis)."""
    if isinstance(value, int):
        return ((value, value),) * n
    value = tuple(value)
    if n == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value,)
    return tuple((v, v) if isinstance(v, int) else tuple(v) for v in value)


def _zero_padding(n: int):
    def lower(ctx, x):
        pads = _pairs(ctx.config.get("padding", 1), n)
        return in_channels_last(ctx, x, lambda v: ctx.b.pad(v, pads=((0, 0),) + pads + ((0, 0),)))

    return lower


def _cropping(n: int):
    def lower(ctx, x):
        crops = _pairs(ctx.config.get("cropping", 1), n)

        def body(v):
            axes = tuple(range(1, n + 1))
            stops = tuple(size - hi for size, (_, hi) in zip(v.shape[1:-1], crops))
            return ctx.b.slice(v, axes=axes, starts=tuple(lo for lo, _ in crops), stops=stops, steps=(1,) * n)

        return in_channels_last(ctx, x, body)

    return lower


def _upsampling(n: int):
    def lower(ctx, x):
        size = ntuple(ctx.config.get("size", 2), n)
        method = ctx.config.get("interpolation", "nearest")

        def body(v):
            if method == "bilinear":
                return ctx.b.resize(v, sizes=tuple(d * s for d, s in zip(v.shape[1:-1], size)), method="bilinear")
            if method != "nearest":
                raise ctx.error(f"interpolation {method!r} is not supported (nearest, bilinear)")
            for axis, repeats in enumerate(size, start=1):
                if repeats != 1:
                    v = ctx.b.repeat(v, axis=axis, repeats=repeats)
            return v

        return in_channels_last(ctx, x, body)

    return lower


for _n in (1, 2, 3):
    lowers(f"ZeroPadding{_n}D")(_zero_padding(_n))
    lowers(f"Cropping{_n}D")(_cropping(_n))
    lowers(f"UpSampling{_n}D")(_upsampling(_n))
