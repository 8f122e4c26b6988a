"""ONNX lowerings of the primitives backward (training) graphs use (kcompile/ir/ops/grad_ops.py):

    reduce_batch      ReduceSum over the dynamic axis
    conv_weight_grad  one Conv with the roles swapped: the input's channels are the batch,
                      the examples are the channels and the output gradient is the kernel
    max_pool_grad     per window position, "is this the window's first maximum" masks the
                      gradient; a grouped ConvTranspose with a one-hot kernel adds each
                      position's share back onto the input grid
    scatter_add       ScatterND(reduction="add") from opset 16, a one-hot MatMul below

All of them work for any batch size: shapes use -1 or Shape, never the example's batch.
"""
from __future__ import annotations

import itertools

import numpy as np
from onnx import helper

from ...ir.shapes import normalize_axis
from ..common import reject_epilogue
from .context import ONNX_DTYPES
from .table import lowering


@lowering("reduce_batch")
def lower_reduce_batch(ctx, node):
    x = node.inputs[0]
    axis = normalize_axis(node.attrs["axis"], x.rank)
    keepdims = bool(node.attrs.get("keepdims", False))
    ctx.bind(node.output, ctx.reduce("ReduceSum", ctx.name(x), [axis], keepdims))


@lowering("conv_weight_grad")
def lower_conv_weight_grad(ctx, node):
    """out[*k, c, f] = sum over n, o of x_padded[n, o * s + k * d, c] * g[n, o, f]: ONNX's
    Conv of x as (C, N, *S) (batch C, channels N) with g as the kernel (F, N, *O), with
    strides and dilations exchanged. Its spatial output can be longer than the window
    (input cells past the last window); those extra positions are sliced off."""
    x, g = node.inputs
    attrs = node.attrs
    window = [int(k) for k in attrs["window"]]
    n_sp = len(window)
    rank = n_sp + 2
    swap = (rank - 1, 0) + tuple(range(1, rank - 1))  # (N, *S, C) -> (C, N, *S)
    xt = ctx.transpose(ctx.name(x), swap)
    gt = ctx.transpose(ctx.name(g), swap)
    pads = [int(lo) for lo, _ in attrs["pads"]] + [int(hi) for _, hi in attrs["pads"]]
    y = ctx.node("Conv", [xt, gt], strides=[int(d) for d in attrs["dilations"]],
                 dilations=[int(s) for s in attrs["strides"]], pads=pads, group=1)  # (C, F, *K')
    longer = []
    for n, o, k, s, d, (lo, hi) in zip(x.shape[1:-1], g.shape[1:-1], window, attrs["strides"], attrs["dilations"],
                                       attrs["pads"]):
        produced = (n + lo + hi - ((o - 1) * s + 1)) // d + 1
        longer.append(produced != k)
    if any(longer):
        y = ctx.slice(y, [0] * n_sp, window, list(range(2, rank)))
    ctx.bind(node.output, ctx.transpose(y, tuple(range(2, rank)) + (0, 1)))


@lowering("max_pool_grad")
def lower_max_pool_grad(ctx, node):
    """For each window position p (row-major): the strided slice of the -inf padded input
    that position p of every window reads, compared with the windows' maximum; only the
    first position equal to it takes the window's gradient. The K per-position shares,
    stacked as channels (C, K), go back onto the input grid through ConvTranspose with
    group=C and a one-hot kernel (share p of window o lands on o * stride + p), which is
    then cropped to the unpadded input."""
    reject_epilogue(node, "ONNX")
    x, g = node.inputs
    attrs = node.attrs
    window = [int(k) for k in attrs["window"]]
    strides = [int(s) for s in attrs["strides"]]
    pads = [(int(lo), int(hi)) for lo, hi in attrs["pads"]]
    n_sp = len(window)
    rank = n_sp + 2
    channels = x.shape[-1]
    out_sp = g.shape[1:-1]
    dtype = x.dtype

    xp = ctx.name(x)
    if any(p != (0, 0) for p in pads):
        full = [0] + [lo for lo, _ in pads] + [0] + [0] + [hi for _, hi in pads] + [0]
        xp = ctx.node("Pad", [xp, ctx.ints(full), ctx.const(-np.inf, dtype)], mode="constant")
    positions = list(itertools.product(*[range(k) for k in window]))
    axes = list(range(1, n_sp + 1))
    cuts = []
    for pos in positions:
        stops = [p + (o - 1) * s + 1 for p, o, s in zip(pos, out_sp, strides)]
        cuts.append(ctx.slice(xp, list(pos), stops, axes, strides))  # (N, *O, C)
    peak = ctx.node("Max", cuts) if len(cuts) > 1 else cuts[0]

    grad = ctx.name(g)
    zero = ctx.const(0.0, dtype)
    taken = None  # true where an earlier position already was the window's maximum
    shares = []
    for cut in cuts:
        is_max = ctx.node("Equal", [cut, peak])
        first = is_max if taken is None else ctx.node("And", [is_max, ctx.node("Not", [taken])])
        taken = is_max if taken is None else ctx.node("Or", [taken, is_max])
        shares.append(ctx.unsqueeze(ctx.node("Where", [first, grad, zero]), [rank]))  # (N, *O, C, 1)
    stacked = ctx.node("Concat", shares, axis=rank) if len(shares) > 1 else shares[0]  # (N, *O, C, K)
    stacked = ctx.reshape(stacked, (None,) + tuple(out_sp) + (channels * len(positions),))
    stacked = ctx.transpose(stacked, (0, rank - 1) + tuple(range(1, rank - 1)))  # (N, C*K, *O)

    # ConvTranspose's kernel is (C_in, C_out / group, *window): input channel (c, p) of
    # group c writes to window cell p only.
    kernel = np.zeros((channels, len(positions), 1) + tuple(window), np.float32)
    for k, pos in enumerate(positions):
        kernel[(slice(None), k, 0) + pos] = 1.0
    kernel = ctx.const(kernel.reshape((channels * len(positions), 1) + tuple(window)), dtype)

    # The full transposed length is (O - 1) * s + K from the padded grid's origin; keep
    # [lo, lo + n): crop lo in front, then the rest, or extend (output_padding) where the
    # last input cells lie past every window.
    crop, extend = [], []
    for n, o, k, s, (lo, _hi) in zip(x.shape[1:-1], out_sp, window, strides, pads):
        rest = (o - 1) * s + k - lo - n
        crop.append((lo, max(rest, 0)))
        extend.append(max(-rest, 0))
    y = ctx.node("ConvTranspose", [stacked, kernel], kernel_shape=window, strides=strides, group=channels,
                 pads=[lo for lo, _ in crop] + [hi for _, hi in crop],
                 output_padding=extend if any(extend) else None)
    ctx.bind(node.output, ctx.transpose(y, (0,) + tuple(range(2, rank)) + (1,)))


SCATTER_ND_REDUCTION = 16  # ScatterND's reduction attribute (add) is new in opset 16


@lowering("scatter_add")
def lower_scatter_add(ctx, node):
    """A zero (rows, *row) table plus updates at the indices' rows. From opset 16 ONNX's
    ScatterND with reduction="add"; below, OneHot(indices)^T @ updates, rows flattened."""
    indices, updates = node.inputs
    rows = int(node.attrs["rows"])
    row_shape = tuple(updates.shape[indices.rank:])
    dtype = updates.dtype
    idx = ctx.name(indices)
    if ctx.opset >= SCATTER_ND_REDUCTION:
        if indices.dtype != "int64":
            idx = ctx.cast(idx, "int64")
        table = ctx.node("ConstantOfShape", [ctx.ints((rows,) + row_shape)],
                         value=_scalar_tensor(0, dtype))
        out = ctx.node("ScatterND", [table, ctx.unsqueeze(idx, [indices.rank]), ctx.name(updates)],
                       reduction="add")
    else:
        width = int(np.prod(row_shape, dtype=np.int64))
        # One-hot as Equal against 0..rows-1 (ONNX Runtime's OneHot lacks some type combinations).
        row_ids = ctx.const(np.arange(rows), indices.dtype)
        hot = ctx.cast(ctx.node("Equal", [ctx.unsqueeze(idx, [indices.rank]), row_ids]), dtype)  # (*I, rows)
        hot = ctx.transpose(ctx.reshape(hot, (None, rows)), (1, 0))  # (rows, M)
        flat = ctx.reshape(ctx.name(updates), (None, width))  # (M, width)
        out = ctx.reshape(ctx.node("MatMul", [hot, flat]), (rows,) + row_shape)
    ctx.bind(node.output, out)


def _scalar_tensor(value, dtype: str):
    return helper.make_tensor("value", ONNX_DTYPES[dtype], [1], [value])
