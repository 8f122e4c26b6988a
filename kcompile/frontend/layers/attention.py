"""Attention layers: MultiHeadAttention, Attention (Luong), AdditiveAttention (Bahdanau)."""
from __future__ import annotations

import math

import numpy as np

from ..registry import lowers

MASKED = -1e9  # what Keras adds to masked attention logits


def _bool_to_float(b, v):
    return v if v.dtype == "float32" else b.cast(v, dtype="float32")


def _masked_softmax(b, scores, keep):
    """softmax over the last axis where keep == 1; keep broadcasts against scores."""
    if keep is not None:
        scores = b.where(keep, scores, b.const(MASKED))
    return b.softmax(scores, axis=-1)


def _causal(b, t: int, s: int):
    return b.const(np.tril(np.ones((t, s), np.float32)).reshape(1, t, s))


def _and(b, a, c):
    return c if a is None else b.mul(a, c)


def _project(ctx, b, x, child: int, heads: int, size: int, use_bias: bool):
    """EinsumDense 'abc,cde->abde': (B, T, D) -> (B, T, heads, size)."""
    index = child * (2 if use_bias else 1)
    kernel = ctx.weight(index, ("query", "key", "value")[child] + "/kernel", (x.shape[-1], heads, size))
    y = b.matmul(x, b.reshape(kernel, shape=(x.shape[-1], heads * size)))
    if use_bias:
        y = b.add(y, b.reshape(ctx.weight(index + 1, ("query", "key", "value")[child] + "/bias", (heads, size)), shape=(heads * size,)))
    return b.reshape(y, shape=(None, x.shape[1], heads, size))


@lowers("MultiHeadAttention", masking="propagate")
def multi_head_attention(ctx, query, value, key=None, attention_mask=None, query_mask=None, value_mask=None,
                         key_mask=None, use_causal_mask=False, return_attention_scores=False):
    b = ctx.b
    cfg = ctx.config
    if cfg.get("use_gate") or cfg.get("sliding_window"):
        raise ctx.error("use_gate and sliding_window are not supported")
    axes = cfg.get("attention_axes")
    if query.rank != 3 or (axes is not None and list(axes) not in ([1], [-2])):
        raise ctx.error("only (batch, time, features) inputs attending over time are supported")
    heads, key_dim = cfg["num_heads"], cfg["key_dim"]
    value_dim = cfg.get("value_dim") or key_dim
    use_bias = cfg.get("use_bias", True)
    key_given = key is not None
    key = value if key is None else key
    t, s = query.shape[1], value.shape[1]

    q = _project(ctx, b, query, 0, heads, key_dim, use_bias)
    k = _project(ctx, b, key, 1, heads, key_dim, use_bias)
    v = _project(ctx, b, value, 2, heads, value_dim, use_bias)
    q = b.transpose(q, perm=(0, 2, 1, 3))  # (B, N, T, H)
    k = b.transpose(k, perm=(0, 2, 3, 1))  # (B, N, H, S)
    v = b.transpose(v, perm=(0, 2, 1, 3))  # (B, N, S, Hv)
    scores = b.mul(b.matmul(q, k), b.const(1.0 / math.sqrt(key_dim)))

    # Keras's mask: query mask [B, T, 1] & value/key masks [B, 1, S] & causal & explicit.
    keep = None
    query_mask = query_mask if query_mask is not None else ctx.mask_of(query)
    value_mask = value_mask if value_mask is not None else ctx.mask_of(value)
    key_mask = key_mask if key_mask is not None else (ctx.mask_of(key) if key_given else None)
    if query_mask is not None:
        keep = b.reshape(_bool_to_float(b, query_mask), shape=(None, t, 1))
    for m in (value_mask, key_mask):
        if m is not None:
            keep = _and(b, keep, b.reshape(_bool_to_float(b, m), shape=(None, 1, s)))
    if use_causal_mask:
        keep = _and(b, keep, _causal(b, t, s))
    if attention_mask is not None:
        keep = _and(b, keep, _bool_to_float(b, attention_mask))
    if keep is not None:
        keep = b.reshape(keep, shape=(keep.shape[0], 1) + keep.shape[1:])
    probs = _masked_softmax(b, scores, keep)
    if keep is not None and return_attention_scores:
        probs = b.mul(probs, keep)  # the Softmax layer path zeroes masked weights
    attended = b.transpose(b.matmul(probs, v), perm=(0, 2, 1, 3))  # (B, T, N, Hv)
    attended = b.reshape(attended, shape=(None, t, heads * value_dim))
    out_index = 3 * (2 if use_bias else 1)
    out_dim = query.shape[-1] if cfg.get("output_shape") is None else _output_dim(cfg["output_shape"])
    kernel = ctx.weight(out_index, "output/kernel", (heads, value_dim, out_dim))
    y = b.matmul(attended, b.reshape(kernel, shape=(heads * value_dim, out_dim)))
    if use_bias:
        y = b.add(y, ctx.weight(out_index + 1, "output/bias", (out_dim,)))
    return (y, probs) if return_attention_scores else y


def _output_dim(output_shape):
    if isinstance(output_shape, int):
        return output_shape
    if len(output_shape) != 1:
        raise ValueError("MultiHeadAttention output_shape must be one dimension")
    return output_shape[0]


def _luong_scores(ctx, q, k):
    b = ctx.b
    index = 0
    scale = None
    if ctx.config.get("use_scale"):
        scale = ctx.weight(0, "scale", ())
        index = 1
    if ctx.config.get("score_mode", "dot") == "dot":
        scores = b.matmul(q, b.transpose(k, perm=(0, 2, 1)))
        return b.mul(scores, scale) if scale is not None else scores
    summed = b.add(b.reshape(q, shape=(None, q.shape[1], 1, q.shape[2])), b.reshape(k, shape=(None, 1) + k.shape[1:]))
    if scale is not None:
        summed = b.mul(scale, summed)
    weight = ctx.weight(index, "concat_score_weight", ())
    return b.mul(weight, b.reduce_sum(b.tanh(summed), axes=(-1,)))


def _bahdanau_scores(ctx, q, k):
    b = ctx.b
    summed = b.tanh(b.add(b.reshape(q, shape=(None, q.shape[1], 1, q.shape[2])), b.reshape(k, shape=(None, 1) + k.shape[1:])))
    if ctx.config.get("use_scale", True):
        summed = b.mul(ctx.weight(0, "scale", (q.shape[-1],)), summed)
    return b.reduce_sum(summed, axes=(-1,))


def _attention(score_fn):
    def lower(ctx, inputs, use_causal_mask=False, return_attention_scores=False):
        b = ctx.b
        inputs = list(inputs)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        masks = list(ctx.masks) + [None, None]
        q_mask, v_mask = masks[0], masks[1]
        scores = score_fn(ctx, q, k)
        keep = None
        if v_mask is not None:
            keep = b.reshape(_bool_to_float(b, v_mask), shape=(None, 1, v.shape[1]))
        if use_causal_mask:
            keep = _and(b, keep, _causal(b, q.shape[1], v.shape[1]))
        if keep is not None:
            # Keras subtracts 1e9 from masked scores.
            scores = b.sub(scores, b.mul(b.sub(b.const(1.0), keep), b.const(1e9)))
        probs = b.softmax(scores, axis=-1)
        y = b.matmul(probs, v)
        if q_mask is not None:
            y = b.mul(y, b.reshape(_bool_to_float(b, q_mask), shape=(None, q.shape[1], 1)))
        ctx.output_masks = [q_mask] + ([None] if return_attention_scores else [])
        return (y, probs) if return_attention_scores else y

    return lower


lowers("Attention", masking="custom")(_attention(_luong_scores))
lowers("AdditiveAttention", masking="custom")(_attention(_bahdanau_scores))
