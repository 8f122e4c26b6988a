"""Pooling layers: windowed max/average and global reductions."""
from __future__ import annotations

from ..registry import lowers
from .conv import ntuple, window_pads
from .core import channels_first, in_channels_last


def _pool(op: str, n: int):
    def lower(ctx, x):
        def body(v):
            window = ntuple(ctx.config.get("pool_size", 2), n)
            strides = ntuple(ctx.config.get("strides") or window, n)
            pads = window_pads(ctx, v.shape[1:-1], window, strides, (1,) * n, ctx.config.get("padding", "valid"))
            return getattr(ctx.b, op)(v, window=window, strides=strides, pads=pads)

        return in_channels_last(ctx, x, body)

    return lower


def _global_pool(reduce_op: str, n: int):
    def lower(ctx, x):
        axes = tuple(range(2, 2 + n)) if channels_first(ctx) else tuple(range(1, 1 + n))
        keepdims = bool(ctx.config.get("keepdims", False))
        mask = ctx.masks[0] if ctx.masks and n == 1 and reduce_op == "reduce_mean" else None
        if mask is not None:
            return _masked_mean(ctx, x, mask, axes[0], keepdims)
        return getattr(ctx.b, reduce_op)(x, axes=axes, keepdims=keepdims)

    return lower


def _masked_mean(ctx, x, mask, axis: int, keepdims: bool):
    """Keras's GlobalAveragePooling1D with a mask: the mean over unmasked steps."""
    b = ctx.b
    shape = (None, mask.shape[1], 1) if axis == 1 else (None, 1, mask.shape[1])
    m = b.reshape(mask, shape=shape)
    total = b.reduce_sum(b.mul(x, m), axes=(axis,), keepdims=keepdims)
    count = b.reduce_sum(m, axes=(axis,), keepdims=keepdims)
    return b.div(total, count)


for _n in (1, 2, 3):
    lowers(f"MaxPooling{_n}D", f"MaxPool{_n}D")(_pool("max_pool", _n))
    lowers(f"AveragePooling{_n}D", f"AvgPool{_n}D")(_pool("avg_pool", _n))
    lowers(f"GlobalMaxPooling{_n}D", f"GlobalMaxPool{_n}D")(_global_pool("reduce_max", _n))
    lowers(f"GlobalAveragePooling{_n}D", f"GlobalAvgPool{_n}D")(_global_pool("reduce_mean", _n))
