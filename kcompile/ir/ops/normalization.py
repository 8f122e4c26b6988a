"""batch_norm_train: BatchNormalization in training mode, as one composite primitive.

Its decomposition (the per-channel mean and biased variance over the batch, then the
normalization) is what runs: the expand_composites pass writes it out before any
backend sees the node. What the primitive adds is its gradient in closed form,

    dx = gamma * r / N * (N * dy - sum(dy) - xhat * sum(dy * xhat)),   r = 1 / sqrt(var + eps)

two per-channel sums (which are also d beta and d gamma) and one elementwise pass. The
gradient of the decomposition's primitives, one by one, took about 20 passes over the
activations per layer.
"""
from __future__ import annotations

import numpy as np

from ...errors import IRError
from ..graph import TensorType
from ..registry import Kind, primitive
from ..shapes import broadcast_shapes, normalize_axes
from .grad_ops import grad_by_decomposition, ones_like, unbroadcast


def _statistics_type(x: TensorType, axes) -> TensorType:
    return TensorType(tuple(1 if i in axes else d for i, d in enumerate(x.shape)), x.dtype)


def batch_total(b, v, axes):
    """(sum of v over `axes`, the dynamic batch axis among them, kept as size 1; how many
    entries that sums per channel). The count is the batch times the static axes'
    product, which only a batch-sized value knows: ones over the per-sample sums."""
    dynamic = v.type.dynamic_axis
    static = tuple(a for a in axes if a != dynamic)
    per_sample = b.reduce_sum(v, axes=static, keepdims=True) if static else v
    total = b.reduce_batch(per_sample, axis=dynamic, keepdims=True)
    static_count = float(np.prod([v.shape[a] for a in static]))
    count = b.mul(b.reduce_batch(ones_like(b, per_sample), axis=dynamic, keepdims=True), b.const(static_count))
    return total, count


@primitive("batch_norm_train", Kind.COMPOSITE)
class BatchNormTrain:
    """(x, gamma, beta) -> (y, mean, variance): mean and biased variance of x over `axes`
    (the batch axis among them; kept as size 1), y = (x - mean) / sqrt(variance +
    epsilon) * gamma + beta. gamma and beta broadcast against the statistics."""

    @staticmethod
    def infer(x, gamma, beta, *, axes, epsilon):
        axes = normalize_axes(axes, x.rank)
        if x.dynamic_axis is None or x.dynamic_axis not in axes:
            raise IRError(f"batch_norm_train over axes {axes} of {x} must reduce its batch axis")
        stats = _statistics_type(x, axes)
        for name, v in (("gamma", gamma), ("beta", beta)):
            if v.dtype != x.dtype or broadcast_shapes(stats.shape, v.shape) != stats.shape:
                raise IRError(f"batch_norm_train: {name} {v} does not broadcast to the statistics {stats}")
        return [x, stats, stats]

    @staticmethod
    def reference(x, gamma, beta, *, axes, epsilon):
        axes = tuple(normalize_axes(axes, x.ndim))
        mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
        variance = np.square(x - mean).mean(axis=axes, keepdims=True)
        y = (x - mean) / np.sqrt(variance + epsilon) * gamma + beta
        return y.astype(x.dtype), mean.astype(x.dtype), variance.astype(x.dtype)

    @staticmethod
    def decompose(b, x, gamma, beta, *, axes, epsilon):
        axes = normalize_axes(axes, x.rank)
        total, count = batch_total(b, x, axes)
        mean = b.div(total, count)
        centered = b.sub(x, mean)
        variance = b.div(batch_total(b, b.square(centered), axes)[0], count)
        y = b.mul(centered, b.rsqrt(b.add(variance, b.const(float(epsilon)))))
        return b.add(b.mul(y, gamma), beta), mean, variance

    @staticmethod
    def grad(b, node, out_grads):
        dy, d_mean, d_variance = out_grads
        if d_mean is not None or d_variance is not None:  # the statistics feed the loss too
            return grad_by_decomposition(b, node, out_grads)
        x, gamma, beta = node.inputs
        _, mean, variance = node.outputs
        axes = normalize_axes(node.attrs["axes"], x.rank)
        r = b.rsqrt(b.add(variance, b.const(float(node.attrs["epsilon"]))))
        xhat = b.mul(b.sub(x, mean), r)
        sum_dy, count = batch_total(b, dy, axes)
        sum_dy_xhat, _ = batch_total(b, b.mul(dy, xhat), axes)
        spread = b.sub(b.sub(b.mul(dy, count), sum_dy), b.mul(xhat, sum_dy_xhat))
        dx = b.mul(spread, b.div(b.mul(gamma, r), count))
        return [dx, unbroadcast(b, sum_dy_xhat, gamma.type), unbroadcast(b, sum_dy, beta.type)]
