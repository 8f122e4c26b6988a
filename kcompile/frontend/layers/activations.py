"""Keras activation functions and advanced-activation layers, as IR recipes."""
from __future__ import annotations

import math

from ...errors import LayerConfigError
from ..registry import lowers

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _elu(b, x, alpha=1.0):
    negative = b.expm1(x) if alpha == 1.0 else b.mul(b.expm1(x), b.const(alpha))
    return b.where(b.greater(x, b.const(0.0)), x, negative)


def _leaky(b, x, slope):
    return b.where(b.greater_equal(x, b.const(0.0)), x, b.mul(x, b.const(slope)))


def _hard_sigmoid(b, x, slope):
    return b.clip(b.add(b.mul(x, b.const(slope)), b.const(0.5)), low=0.0, high=1.0)


def _gelu(b, x, approximate=False):
    if approximate:
        inner = b.mul(b.add(x, b.mul(b.const(0.044715), b.mul(x, b.square(x)))), b.const(math.sqrt(2 / math.pi)))
        return b.mul(b.mul(b.const(0.5), x), b.add(b.const(1.0), b.tanh(inner)))
    return b.mul(b.mul(b.const(0.5), x), b.add(b.const(1.0), b.erf(b.mul(x, b.const(1 / math.sqrt(2))))))


def _softsign(b, x):
    return b.div(x, b.add(b.const(1.0), b.abs(x)))


def _squareplus(b, x, beta=4.0):
    return b.mul(b.add(x, b.sqrt(b.add(b.square(x), b.const(beta)))), b.const(0.5))


def _celu(b, x, alpha=1.0):
    negative = b.mul(b.const(alpha), b.expm1(b.div(b.minimum(x, b.const(0.0)), b.const(alpha))))
    return b.add(b.maximum(x, b.const(0.0)), negative)


# name -> recipe(b, x, keras_major)
ACTIVATIONS = {
    "linear": lambda b, x, k: x,
    "relu": lambda b, x, k: b.relu(x),
    "relu6": lambda b, x, k: b.clip(x, low=0.0, high=6.0),
    "sigmoid": lambda b, x, k: b.sigmoid(x),
    "tanh": lambda b, x, k: b.tanh(x),
    "exponential": lambda b, x, k: b.exp(x),
    "softplus": lambda b, x, k: b.softplus(x),
    "softsign": lambda b, x, k: _softsign(b, x),
    "elu": lambda b, x, k: _elu(b, x),
    "selu": lambda b, x, k: b.mul(b.const(SELU_SCALE), _elu(b, x, SELU_ALPHA)),
    "gelu": lambda b, x, k: _gelu(b, x, approximate=False),
    "silu": lambda b, x, k: b.mul(x, b.sigmoid(x)),
    "swish": lambda b, x, k: b.mul(x, b.sigmoid(x)),
    "mish": lambda b, x, k: b.mul(x, b.tanh(b.softplus(x))),
    # Keras 3: relu6(x + 3) / 6; tf-keras: clip(0.2 x + 0.5, 0, 1)
    "hard_sigmoid": lambda b, x, k: _hard_sigmoid(b, x, 0.2 if k < 3 else 1 / 6),
    "hard_silu": lambda b, x, k: b.mul(x, _hard_sigmoid(b, x, 1 / 6)),
    "hard_swish": lambda b, x, k: b.mul(x, _hard_sigmoid(b, x, 1 / 6)),
    "leaky_relu": lambda b, x, k: _leaky(b, x, 0.2),
    "softmax": lambda b, x, k: b.softmax(x, axis=-1),
    "log_softmax": lambda b, x, k: b.log_softmax(x, axis=-1),
    "hard_tanh": lambda b, x, k: b.clip(x, low=-1.0, high=1.0),
    "log_sigmoid": lambda b, x, k: b.neg(b.softplus(b.neg(x))),
    "tanh_shrink": lambda b, x, k: b.sub(x, b.tanh(x)),
    "squareplus": lambda b, x, k: _squareplus(b, x),
    "celu": lambda b, x, k: _celu(b, x),
}


def activation_name(spec) -> str:
    """The activation's name from a config entry (a string or a serialized function)."""
    if spec is None:
        return "linear"
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        inner = spec.get("config")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and "name" in inner and spec.get("class_name") == "function":
            return inner["name"]
        return spec.get("class_name", "?")
    raise LayerConfigError(f"cannot read activation {spec!r}")


def apply_activation(ctx, x, spec=None):
    """Apply the Keras activation `spec` (default: the layer's `activation` config)."""
    name = activation_name(ctx.config.get("activation") if spec is None else spec)
    recipe = ACTIVATIONS.get(name)
    if recipe is None:
        raise ctx.error(f"activation {name!r} is not supported (supported: {', '.join(sorted(ACTIVATIONS))})")
    return recipe(ctx.b, x, ctx.keras_major)


@lowers("Activation", masking="propagate")
def activation_layer(ctx, x):
    return apply_activation(ctx, x, ctx.cfg("activation"))


@lowers("ReLU", masking="propagate")
def relu_layer(ctx, x):
    b = ctx.b
    max_value = ctx.config.get("max_value")
    slope = ctx.config.get("negative_slope", 0.0) or 0.0
    threshold = ctx.config.get("threshold", 0.0) or 0.0
    if slope == 0.0 and threshold == 0.0:
        return b.relu(x) if max_value is None else b.clip(x, low=0.0, high=float(max_value))
    # f(x) = x for x >= threshold, slope * (x - threshold) below, capped at max_value.
    below = b.mul(b.sub(x, b.const(threshold)), b.const(slope)) if slope else b.mul(x, b.const(0.0))
    y = b.where(b.greater_equal(x, b.const(threshold)), x, below)
    return y if max_value is None else b.minimum(y, b.const(float(max_value)))


@lowers("LeakyReLU", masking="propagate")
def leaky_relu_layer(ctx, x):
    slope = ctx.config.get("negative_slope", ctx.config.get("alpha", 0.3))
    return _leaky(ctx.b, x, float(slope))


@lowers("ELU", masking="propagate")
def elu_layer(ctx, x):
    return _elu(ctx.b, x, float(ctx.config.get("alpha", 1.0)))


@lowers("ThresholdedReLU", masking="propagate")
def thresholded_relu_layer(ctx, x):
    b = ctx.b
    return b.mul(x, b.greater(x, b.const(float(ctx.config.get("theta", 1.0)))))


@lowers("PReLU", masking="propagate")
def prelu_layer(ctx, x):
    b = ctx.b
    shape = list(x.shape[1:])
    for axis in ctx.config.get("shared_axes") or ():
        shape[axis - 1] = 1
    alpha = ctx.weight(0, "alpha", tuple(shape))
    # max(x, 0) + alpha * min(x, 0)
    return b.add(b.relu(x), b.mul(alpha, b.minimum(x, b.const(0.0))))


@lowers("Softmax", masking="propagate")
def softmax_layer(ctx, x):
    b = ctx.b
    axis = ctx.config.get("axis", -1)
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    mask = ctx.masks[0] if ctx.masks else None
    if mask is not None:
        # Keras adds a large negative number where the mask is 0.
        x = b.add(x, b.mul(b.sub(b.const(1.0), _float(b, mask)), b.const(-1e9)))
    if len(axes) == 1:
        return b.softmax(x, axis=axes[0])
    e = b.exp(b.sub(x, b.reduce_max(x, axes=axes, keepdims=True)))
    return b.div(e, b.reduce_sum(e, axes=axes, keepdims=True))


def _float(b, v):
    return v if v.dtype == "float32" else b.cast(v, dtype="float32")
