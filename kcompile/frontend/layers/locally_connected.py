"""LocallyConnected1D/2D (tf-keras): convolutions whose weights differ per output position.

Implementation 1 stores one (window * channels, filters) matrix per output position;
implementation 2 a dense kernel that a fixed mask restricts to each window."""
from __future__ import annotations

import itertools

import numpy as np

from ..registry import lowers
from .activations import apply_activation
from .conv import ntuple


def _output_positions(spatial, window, strides):
    sizes = [(n - k) // s + 1 for n, k, s in zip(spatial, window, strides)]
    return sizes, list(itertools.product(*[range(o) for o in sizes]))


def _patches(b, x, window, strides, positions):
    """(B, *S, C) -> (B, P, 1, prod(window) * C): each output position's window, flattened."""
    n = len(window)
    flat = int(np.prod(window)) * x.shape[-1]
    rows = []
    for pos in positions:
        starts = tuple(p * s for p, s in zip(pos, strides))
        patch = b.slice(x, axes=tuple(range(1, n + 1)), starts=starts,
                        stops=tuple(st + k for st, k in zip(starts, window)), steps=(1,) * n)
        rows.append(b.reshape(patch, shape=(None, 1, 1, flat)))
    return b.concat(*rows, axis=1) if len(rows) > 1 else rows[0]


def _window_mask(spatial, window, strides, sizes, channels, filters):
    """Implementation 2's mask: 1 where input position i lies in output position o's window."""
    mask = np.zeros(tuple(spatial) + (channels,) + tuple(sizes) + (filters,), np.float32)
    for pos in itertools.product(*[range(o) for o in sizes]):
        index = tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, strides, window))
        mask[index + (slice(None),) + pos + (slice(None),)] = 1.0
    return mask


def _locally_connected(n: int):
    def lower(ctx, x):
        b = ctx.b
        if ctx.config.get("data_format", "channels_last") != "channels_last":
            raise ctx.error("only channels_last is supported for locally-connected layers")
        if ctx.config.get("padding", "valid") != "valid":
            raise ctx.error("only 'valid' padding is supported for locally-connected layers")
        window = ntuple(ctx.cfg("kernel_size"), n)
        strides = ntuple(ctx.config.get("strides", 1), n)
        filters, channels = ctx.cfg("filters"), x.shape[-1]
        spatial = x.shape[1:-1]
        sizes, positions = _output_positions(spatial, window, strides)
        implementation = ctx.config.get("implementation", 1)
        if implementation == 1:
            kernel = ctx.weight(0, "kernel", (len(positions), int(np.prod(window)) * channels, filters))
            y = b.matmul(_patches(b, x, window, strides, positions), kernel)  # (B, P, 1, F)
        elif implementation == 2:
            shape = tuple(spatial) + (channels,) + tuple(sizes) + (filters,)
            kernel = ctx.weight(0, "kernel", shape)
            mask = ctx.const(_window_mask(spatial, window, strides, sizes, channels, filters))
            dense = b.reshape(b.mul(kernel, mask), shape=(int(np.prod(spatial)) * channels, int(np.prod(sizes)) * filters))
            y = b.matmul(b.reshape(x, shape=(None, int(np.prod(spatial)) * channels)), dense)
        else:
            raise ctx.error(f"implementation {implementation} is not supported (1 or 2)")
        y = b.reshape(y, shape=(None,) + tuple(sizes) + (filters,))
        if ctx.config.get("use_bias", True):
            y = b.add(y, ctx.weight(1, "bias", tuple(sizes) + (filters,)))
        return apply_activation(ctx, y)

    return lower


lowers("LocallyConnected1D")(_locally_connected(1))
lowers("LocallyConnected2D")(_locally_connected(2))
