"""Core layers: Dense, shape manipulation, preprocessing, Embedding, Masking, identities."""
from __future__ import annotations

import numpy as np

from ..registry import lowers
from .activations import apply_activation


def channels_first(ctx) -> bool:
    return ctx.config.get("data_format", "channels_last") == "channels_first"


def to_channels_last(b, x):
    return b.transpose(x, perm=(0,) + tuple(range(2, x.rank)) + (1,))


def to_channels_first(b, x):
    return b.transpose(x, perm=(0, x.rank - 1) + tuple(range(1, x.rank - 1)))


def in_channels_last(ctx, x, body):
    """Run body(x) on channels-last data, converting in and out when the layer is channels_first."""
    if not channels_first(ctx):
        return body(x)
    return to_channels_first(ctx.b, body(to_channels_last(ctx.b, x)))


def add_bias(ctx, y, index: int, size: int):
    if not ctx.config.get("use_bias", True):
        return y
    return ctx.b.add(y, ctx.weight(index, "bias", (size,)))


@lowers("Dense", masking="propagate")
def dense(ctx, x):
    units = ctx.cfg("units")
    if ctx.config.get("lora_rank"):
        raise ctx.error("LoRA-enabled Dense layers are not supported; merge the LoRA weights first")
    kernel = ctx.weight(0, "kernel", (x.shape[-1], units))
    return apply_activation(ctx, add_bias(ctx, ctx.b.matmul(x, kernel), 1, units))


@lowers("ActivityRegularization", "Identity", masking="propagate")
def identity(ctx, x):
    """The node keeps the layer visible until the cleanup pass removes it (an activity
    regularizer's loss is added by the training loop)."""
    return ctx.b.identity(x)


def _noise_shape(ctx, x):
    """Dropout's noise shape: SpatialDropout drops whole channels."""
    if ctx.class_name.startswith("SpatialDropout"):
        if channels_first(ctx):
            return (None, x.shape[1]) + (1,) * (x.rank - 2)
        return (None,) + (1,) * (x.rank - 2) + (x.shape[-1],)
    noise = ctx.config.get("noise_shape")
    if noise:
        return (None,) + tuple(1 if d is None else d for d in noise[1:])
    return x.shape


@lowers("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", masking="propagate")
def noise_layer(ctx, x):
    """Identity at inference. In training, each step multiplies (or shifts) by noise the
    runtime draws from a seeded generator, with Keras's formulas."""
    b = ctx.b
    rate = float(ctx.config.get("rate", 0.0) or 0.0)
    stddev = float(ctx.config.get("stddev", 0.0) or 0.0)
    if not ctx.training or (rate == 0.0 and stddev == 0.0):
        return b.identity(x)
    if ctx.class_name == "GaussianNoise":
        return b.add(x, ctx.walker.random_input(ctx, x.shape, kind="normal", mean=0.0, stddev=stddev))
    if ctx.class_name == "GaussianDropout":
        deviation = float(np.sqrt(rate / (1.0 - rate)))
        return b.mul(x, ctx.walker.random_input(ctx, x.shape, kind="normal", mean=1.0, stddev=deviation))
    noise_shape = _noise_shape(ctx, x)
    if ctx.class_name != "AlphaDropout":  # the mask holds 1 / (1 - rate) where it keeps: one multiply
        scale = float(np.float32(1.0 / (1.0 - rate)))
        return b.mul(x, ctx.walker.random_input(ctx, noise_shape, kind="bernoulli", keep=1.0 - rate, value=scale))
    keep = ctx.walker.random_input(ctx, noise_shape, kind="bernoulli", keep=1.0 - rate)
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
    dropped = b.add(b.mul(x, keep), b.mul(b.sub(b.const(1.0), keep), b.const(alpha_p)))
    return b.add(b.mul(dropped, b.const(a)), b.const(-a * alpha_p * rate))


@lowers("Flatten")
def flatten(ctx, x):
    if channels_first(ctx) and x.rank > 2:
        x = to_channels_last(ctx.b, x)
    return ctx.b.reshape(x, shape=(None, int(np.prod(x.shape[1:]))))


@lowers("Reshape")
def reshape(ctx, x):
    target = list(ctx.cfg("target_shape"))
    if -1 in target:  # Keras infers it from the per-sample size
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(x.shape[1:])) // known
    return ctx.b.reshape(x, shape=(None,) + tuple(target))


@lowers("Permute", masking="propagate")
def permute(ctx, x):
    return ctx.b.transpose(x, perm=(0,) + tuple(ctx.cfg("dims")))


@lowers("RepeatVector")
def repeat_vector(ctx, x):
    n = ctx.cfg("n")
    b = ctx.b
    return b.broadcast_to(b.reshape(x, shape=(None, 1, x.shape[1])), shape=(None, n, x.shape[1]))


def _per_channel(ctx, x, value, axis=-1):
    """A scalar or per-channel constant shaped to broadcast against x."""
    array = np.asarray(value, np.float32)
    if array.ndim == 0 or array.size == 1:
        return ctx.const(array.reshape(()))
    shape = [1] * x.rank
    shape[axis] = array.size
    return ctx.const(array.reshape(shape))


@lowers("Rescaling", masking="propagate")
def rescaling(ctx, x):
    b = ctx.b
    axis = 1 if channels_first(ctx) else -1
    y = b.mul(x, _per_channel(ctx, x, ctx.cfg("scale"), axis))
    offset = np.asarray(ctx.config.get("offset", 0.0), np.float32)
    return b.add(y, _per_channel(ctx, x, offset, axis)) if np.any(offset != 0) else y


@lowers("Normalization", masking="propagate")
def normalization(ctx, x):
    b = ctx.b
    axes = ctx.config.get("axis", -1)
    axes = (axes,) if isinstance(axes, int) else tuple(axes or ())
    axes = tuple(a % x.rank for a in axes)
    shape = tuple(x.shape[i] if i in axes else 1 for i in range(x.rank))
    if ctx.config.get("mean") is not None:
        mean = np.broadcast_to(np.asarray(ctx.config["mean"], np.float32), shape)
        variance = np.broadcast_to(np.asarray(ctx.config["variance"], np.float32), shape)
        mean, variance = ctx.const(mean), ctx.const(variance)
    else:
        reduced = tuple(x.shape[i] for i in axes)
        mean = b.reshape(ctx.weight(0, "mean", reduced), shape=shape)
        variance = b.reshape(ctx.weight(1, "variance", reduced), shape=shape)
    std = b.maximum(b.sqrt(variance), b.const(1e-7))
    if ctx.config.get("invert"):
        return b.add(b.mul(x, std), mean)
    return b.div(b.sub(x, mean), std)


def _crop_center(b, x, height, width):
    """Slice the central height x width window of channels-last x."""
    top = (x.shape[1] - height) // 2
    left = (x.shape[2] - width) // 2
    return b.slice(x, axes=(1, 2), starts=(top, left), stops=(top + height, left + width), steps=(1, 1))


@lowers("CenterCrop")
def center_crop(ctx, x):
    height, width = ctx.cfg("height"), ctx.cfg("width")

    def body(v):
        if v.shape[1] < height or v.shape[2] < width:
            raise ctx.error(f"input {v.shape[1:3]} is smaller than the crop ({height}, {width})")
        return _crop_center(ctx.b, v, height, width)

    return in_channels_last(ctx, x, body)


@lowers("Resizing")
def resizing(ctx, x):
    height, width = ctx.cfg("height"), ctx.cfg("width")
    method = ctx.config.get("interpolation", "bilinear")
    if method not in ("nearest", "bilinear"):
        raise ctx.error(f"interpolation {method!r} is not supported (nearest, bilinear)")
    if ctx.config.get("pad_to_aspect_ratio"):
        raise ctx.error("pad_to_aspect_ratio is not supported")

    def body(v):
        if ctx.config.get("crop_to_aspect_ratio"):
            h, w = v.shape[1], v.shape[2]
            crop_h = min(h, int(w * height / width))
            crop_w = min(w, int(h * width / height))
            v = _crop_center(ctx.b, v, crop_h, crop_w)
        return ctx.b.resize(v, sizes=(height, width), method=method)

    return in_channels_last(ctx, x, body)


@lowers("Embedding", masking="custom")
def embedding(ctx, x):
    b = ctx.b
    table = ctx.weight(0, "embeddings", (ctx.cfg("input_dim"), ctx.cfg("output_dim")))
    indices = x if x.dtype in ("int32", "int64") else b.cast(x, dtype="int32")
    if ctx.config.get("mask_zero"):
        ctx.output_masks = [b.not_equal(b.cast(indices, dtype="float32"), b.const(0.0))]
    return b.gather(table, indices)


@lowers("Masking", masking="custom")
def masking(ctx, x):
    b = ctx.b
    value = float(ctx.config.get("mask_value", 0.0))
    keep = b.reduce_max(b.not_equal(x, b.const(value)), axes=(-1,), keepdims=True)
    ctx.output_masks = [b.reshape(keep, shape=x.shape[:-1])]
    return b.mul(x, keep)


@lowers("InputLayer")
def input_layer(ctx, x):
    return x
