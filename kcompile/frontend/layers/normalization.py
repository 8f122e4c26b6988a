"""Normalization layers: BatchNormalization (inference statistics), LayerNormalization,
GroupNormalization, UnitNormalization."""
from __future__ import annotations

from ..registry import lowers


def _axes(ctx, x, default=-1) -> tuple:
    axis = ctx.config.get("axis", default)
    axis = [axis] if isinstance(axis, int) else list(axis)
    return tuple(sorted(a % x.rank for a in axis))


def _broadcastable(ctx, x, value, axes):
    """A per-feature parameter reshaped to broadcast over x's other axes."""
    if axes == (x.rank - 1,):
        return value
    shape = tuple(x.shape[i] if i in axes else 1 for i in range(x.rank))
    return ctx.b.reshape(value, shape=shape)


def _moments(b, x, axes):
    mean = b.reduce_mean(x, axes=axes, keepdims=True)
    centered = b.sub(x, mean)
    return mean, centered, b.reduce_mean(b.square(centered), axes=axes, keepdims=True)


def _scale_and_center(ctx, axes, feature_shape, x_for_shape):
    """gamma and beta as (index-ordered) optional parameters."""
    index, gamma, beta = 0, None, None
    if ctx.config.get("scale", True):
        gamma = _broadcastable(ctx, x_for_shape, ctx.weight(index, "gamma", feature_shape), axes)
        index += 1
    if ctx.config.get("center", True):
        beta = _broadcastable(ctx, x_for_shape, ctx.weight(index, "beta", feature_shape), axes)
        index += 1
    return gamma, beta, index


@lowers("BatchNormalization", masking="propagate")
def batch_normalization(ctx, x):
    b = ctx.b
    if ctx.config.get("renorm"):
        raise ctx.error("batch renormalization is not supported")
    axes = _axes(ctx, x)
    feature_shape = tuple(x.shape[a] for a in axes)
    gamma, beta, index = _scale_and_center(ctx, axes, feature_shape, x)
    moving_mean = ctx.weight(index, "moving_mean", feature_shape)
    moving_variance = ctx.weight(index + 1, "moving_variance", feature_shape)
    if ctx.training and ctx.config.get("trainable", True):
        return _batch_statistics(ctx, x, axes, gamma, beta, moving_mean, moving_variance)
    mean = _broadcastable(ctx, x, moving_mean, axes)
    variance = _broadcastable(ctx, x, moving_variance, axes)
    # x * inv + (beta - mean * inv), inv = gamma / sqrt(var + eps): a per-channel scale
    # and shift over constants, which constant folding and BN folding turn into weights.
    inv = b.rsqrt(b.add(variance, b.const(float(ctx.config.get("epsilon", 1e-3)))))
    if gamma is not None:
        inv = b.mul(inv, gamma)
    shift = b.neg(b.mul(mean, inv))
    if beta is not None:
        shift = b.add(shift, beta)
    return b.add(b.mul(x, inv), shift)


def _batch_statistics(ctx, x, axes, gamma, beta, moving_mean, moving_variance):
    """Training mode: normalize with the batch's mean and (biased) variance over every
    axis but the channels (batch_norm_train, whose gradient is the closed form), and
    move the moving statistics toward them (Keras 3)."""
    b = ctx.b
    reduced = tuple(i for i in range(x.rank) if i not in axes)
    gamma = b.const(1.0) if gamma is None else gamma
    beta = b.const(0.0) if beta is None else beta
    y, mean, variance = b.batch_norm_train(x, gamma, beta, axes=reduced, epsilon=float(ctx.config.get("epsilon", 1e-3)))
    momentum = float(ctx.config.get("momentum", 0.99))
    for moving, batch in ((moving_mean, mean), (moving_variance, variance)):
        batch = b.reshape(batch, shape=moving.shape)
        updated = b.add(b.mul(moving, b.const(momentum)), b.mul(batch, b.const(1.0 - momentum)))
        ctx.walker.state_update(moving, updated)
    return y


@lowers("LayerNormalization", masking="propagate")
def layer_normalization(ctx, x):
    b = ctx.b
    axes = _axes(ctx, x)
    feature_shape = tuple(x.shape[a] for a in axes)
    eps = b.const(float(ctx.config.get("epsilon", 1e-3)))
    if ctx.config.get("rms_scaling"):
        _, _, variance = _moments(b, x, axes)
        y = b.mul(x, b.rsqrt(b.add(variance, eps)))
        gamma = _broadcastable(ctx, x, ctx.weight(0, "gamma", feature_shape), axes)
        return b.mul(y, gamma)
    gamma, beta, _ = _scale_and_center(ctx, axes, feature_shape, x)
    _, centered, variance = _moments(b, x, axes)
    y = b.mul(centered, b.rsqrt(b.add(variance, eps)))
    if gamma is not None:
        y = b.mul(y, gamma)
    return b.add(y, beta) if beta is not None else y


@lowers("GroupNormalization", masking="propagate")
def group_normalization(ctx, x):
    b = ctx.b
    groups = ctx.config.get("groups", 32)
    axis = ctx.config.get("axis", -1) % x.rank
    channels = x.shape[axis]
    if channels % groups:
        raise ctx.error(f"{channels} channels do not split into {groups} groups")
    grouped_shape = x.shape[:axis] + (groups, channels // groups) + x.shape[axis + 1 :]
    g = b.reshape(x, shape=grouped_shape)
    reduce_axes = tuple(i for i in range(1, g.rank) if i != axis)
    _, centered, variance = _moments(b, g, reduce_axes)
    y = b.mul(centered, b.rsqrt(b.add(variance, b.const(float(ctx.config.get("epsilon", 1e-3))))))
    param_shape = tuple(groups if i == axis else channels // groups if i == axis + 1 else 1 for i in range(g.rank))
    index = 0
    if ctx.config.get("scale", True):
        y = b.mul(y, b.reshape(ctx.weight(index, "gamma", (channels,)), shape=param_shape))
        index += 1
    if ctx.config.get("center", True):
        y = b.add(y, b.reshape(ctx.weight(index, "beta", (channels,)), shape=param_shape))
    return b.reshape(y, shape=x.shape)


@lowers("UnitNormalization", masking="propagate")
def unit_normalization(ctx, x):
    b = ctx.b
    axes = _axes(ctx, x)
    inv_norm = b.rsqrt(b.reduce_sum(b.square(x), axes=axes, keepdims=True))
    return b.mul(x, b.minimum(inv_norm, b.const(1e12)))
