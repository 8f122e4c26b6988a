"""Merge layers: elementwise combinations, Concatenate and Dot."""
from __future__ import annotations

import functools

import numpy as np

from ..registry import lowers


def _combined_mask(ctx):
    """Keras's merge mask: a step is kept when every input keeps it."""
    masks = [m for m in ctx.masks if m is not None]
    return functools.reduce(ctx.b.mul, masks) if masks else None


def _merge(combine):
    def lower(ctx, inputs):
        ctx.output_masks = [_combined_mask(ctx)]
        return combine(ctx.b, list(inputs))

    return lower


MERGES = {
    "Add": lambda b, xs: functools.reduce(b.add, xs),
    "Subtract": lambda b, xs: b.sub(xs[0], xs[1]),
    "Multiply": lambda b, xs: functools.reduce(b.mul, xs),
    "Average": lambda b, xs: b.mul(functools.reduce(b.add, xs), b.const(1.0 / len(xs))),
    "Maximum": lambda b, xs: functools.reduce(b.maximum, xs),
    "Minimum": lambda b, xs: functools.reduce(b.minimum, xs),
}

for _name, _combine in MERGES.items():
    lowers(_name, masking="custom")(_merge(_combine))


@lowers("Concatenate", masking="custom")
def concatenate(ctx, inputs):
    b = ctx.b
    inputs = list(inputs)
    axis = ctx.config.get("axis", -1) % inputs[0].rank
    if any(m is not None for m in ctx.masks):
        if axis == inputs[0].rank - 1:
            ctx.output_masks = [_combined_mask(ctx)]
        else:
            masks = [m if m is not None else b.broadcast_to(b.const(np.ones((1,) + x.shape[1:-1], np.float32)), shape=x.shape[:-1])
                     for m, x in zip(ctx.masks, inputs)]
            ctx.output_masks = [b.concat(*masks, axis=axis)]
    return b.concat(*inputs, axis=axis)


def _l2_normalize(b, x, axis):
    sumsq = b.reduce_sum(b.square(x), axes=(axis,), keepdims=True)
    return b.mul(x, b.rsqrt(b.maximum(sumsq, b.const(1e-12))))


@lowers("Dot")
def dot(ctx, inputs):
    b = ctx.b
    x, y = inputs
    axes = ctx.cfg("axes")
    ax, ay = (axes, axes) if isinstance(axes, int) else tuple(axes)
    ax, ay = ax % x.rank, ay % y.rank
    if ctx.config.get("normalize"):
        x, y = _l2_normalize(b, x, ax), _l2_normalize(b, y, ay)
    # Move the contracted axes to matmul position: x (B, X, K) @ y (B, K, Y).
    x_rest = [i for i in range(1, x.rank) if i != ax]
    y_rest = [i for i in range(1, y.rank) if i != ay]
    xt = b.transpose(x, perm=(0, *x_rest, ax)) if x_rest and x_rest[-1] > ax else x
    yt = b.transpose(y, perm=(0, ay, *y_rest)) if y_rest and y_rest[0] < ay else y
    x_dims = [x.shape[i] for i in x_rest]
    y_dims = [y.shape[i] for i in y_rest]
    k = x.shape[ax]
    xm = b.reshape(xt, shape=(None, int(np.prod(x_dims)), k))
    ym = b.reshape(yt, shape=(None, k, int(np.prod(y_dims))))
    out_dims = tuple(x_dims + y_dims) or (1,)
    return b.reshape(b.matmul(xm, ym), shape=(None,) + out_dims)
