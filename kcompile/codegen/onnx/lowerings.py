"""The ONNX lowering table: primitive name -> function(ctx, node) appending ONNX nodes.

kcompile tensors are channels-last; ONNX's Conv, ConvTranspose and pooling are
channels-first, so those lowerings transpose in and out, run a conv's epilogue before
transposing back, and store kernels once in ONNX's (out, in, *window) layout; the
transpose pairs left between layers cancel in cleanup.py. Everything else maps one
primitive to one or a few ONNX nodes. The RNN primitives live in rnn.py, the
elementwise rules (and fused programs) in elementwise.py.
"""
from __future__ import annotations

import numpy as np

from ...ir import TensorType, Value
from ...ir.shapes import normalize_axes, normalize_axis
from ...passes.rewrite import per_channel
from .elementwise import ELEMENTWISE, apply, expand_program
from .table import LOWERINGS, lowering


# -- elementwise ------------------------------------------------------------------------------------
def lower_elementwise(ctx, node):
    args, types = [ctx.name(v) for v in node.inputs], [v.type for v in node.inputs]
    ctx.bind(node.output, apply(ctx, node.op, args, types, node.attrs))


for _op in ELEMENTWISE:
    LOWERINGS[_op] = lower_elementwise


@lowering("fused_elementwise")
def lower_fused_elementwise(ctx, node):
    ctx.bind(node.output, expand_program(ctx, node.attrs["program"], node.inputs))


# -- epilogues ----------------------------------------------------------------------------------------
def epilogue_bias(ctx, node):
    """When the epilogue starts with acc + (per-channel constant), or acc - it: the
    constant as an ONNX (channels,) initializer for Gemm's C or Conv's B; else None."""
    program = node.attrs.get("epilogue", ())
    if not program:
        return None
    op, args, _ = program[0]
    if op == "add" and ("acc",) in args:
        other, sign = args[1 - args.index(("acc",))], 1.0
    elif op == "sub" and args[0] == ("acc",):
        other, sign = args[1], -1.0
    else:
        return None
    if other[0] != "in":
        return None
    value = node.inputs[2 + other[1]]
    channels, rank = node.output.shape[-1], node.output.rank
    if per_channel(ctx.param_array(value), channels, rank) is None:
        return None
    tag = "bias" if sign > 0 else "neg_bias"
    return ctx.derived(value, tag, lambda a: sign * per_channel(a, channels, rank))


def finish_epilogue(ctx, node, acc: str, bias_applied: bool):
    program = node.attrs.get("epilogue", ())
    done = {0: acc} if bias_applied else None
    ctx.bind(node.output, expand_program(ctx, program, node.inputs[2:], acc, node.output.type, done))


# -- matrix products and convolutions -------------------------------------------------------------
@lowering("matmul")
def lower_matmul(ctx, node):
    a, b = node.inputs[:2]
    bias = epilogue_bias(ctx, node)
    if bias is not None and a.rank == 2 and b.rank == 2 and ctx.param_array(b) is not None:
        acc = ctx.node("Gemm", [ctx.name(a), ctx.name(b), bias])
        finish_epilogue(ctx, node, acc, bias_applied=True)
    else:
        finish_epilogue(ctx, node, ctx.node("MatMul", [ctx.name(a), ctx.name(b)]), bias_applied=False)


def to_channels_first(rank: int) -> tuple:
    return (0, rank - 1) + tuple(range(1, rank - 1))


# Convolutions and pooling over one spatial axis run as 2-D ONNX operators over
# (N, C, 1, W): ONNX Runtime has faster (blocked-layout) kernels for 2-D than for 1-D.
# `lift` (for a rank-3 tensor) asks for that layout; the Squeeze/Unsqueeze pairs it
# leaves between layers cancel in cleanup.py.
def channels_first(ctx, name: str, rank: int, lift: bool = False) -> str:
    if lift:
        name, rank = ctx.unsqueeze(name, [1]), 4
    return ctx.transpose(name, to_channels_first(rank))


def channels_last(ctx, name: str, rank: int, lift: bool = False) -> str:
    if lift:
        return ctx.squeeze(ctx.transpose(name, (0, 2, 3, 1)), [1])
    return ctx.transpose(name, (0,) + tuple(range(2, rank)) + (1,))


def channels_first_value(ctx, value: Value, rank: int, lift: bool = False) -> Value:
    """A stand-in for `value` in channels-first layout (broadcast to `rank` axes first,
    lifted to 2-D with `lift`): a parameter is stored permuted, anything else is
    transposed where it is read."""
    full = (1,) * (rank - value.rank) + tuple(value.shape)
    if lift:
        full = full[:1] + (1,) + full[1:]
    perm = to_channels_first(len(full))
    proxy = Value(f"{value.name}.channels_first", TensorType(tuple(full[p] for p in perm), value.dtype))
    if ctx.param_array(value) is not None:
        permute = lambda a: np.ascontiguousarray(a.reshape(full).transpose(perm))  # noqa: E731
        ctx.bind_lazy(proxy, lambda: ctx.derived(value, f"channels_first{len(full)}", permute))
    else:
        def expand(name):
            if value.rank < rank:
                name = ctx.unsqueeze(name, range(rank - value.rank))
            return ctx.unsqueeze(name, [1]) if lift else name

        ctx.bind_lazy(proxy, lambda: ctx.transpose(expand(ctx.name(value)), perm))
    return proxy


def finish_channels_first(ctx, node, acc: str, bias_applied: bool, lift: bool = False):
    """The epilogue of a conv computed while its result is still channels-first, then one
    transpose back: a conv -> relu -> conv chain has only transpose pairs between the
    convs, which cleanup cancels."""
    rank = node.output.rank
    extra = node.inputs[2:]
    if any(v.rank > rank for v in extra):
        finish_epilogue(ctx, node, channels_last(ctx, acc, rank, lift), bias_applied)
        return
    shape = tuple(node.output.shape)
    if lift:
        shape = shape[:1] + (1,) + shape[1:]
    acc_type = TensorType(tuple(shape[p] for p in to_channels_first(len(shape))), node.output.dtype)
    proxies = [channels_first_value(ctx, v, rank, lift) for v in extra]
    done = {0: acc} if bias_applied else None
    out = expand_program(ctx, node.attrs.get("epilogue", ()), proxies, acc, acc_type, done)
    ctx.bind(node.output, channels_last(ctx, out, rank, lift))


def onnx_kernel(ctx, w, lift: bool = False) -> str:
    """A (*window, A, B) kernel as ONNX's (B, A, *window): conv (F, C/groups, *window),
    conv_transpose (C, F, *window); lifted, a 1-D window is (1, k)."""
    n = w.rank - 2
    perm = (n + 1, n) + tuple(range(n))
    def layout(a):
        a = a.transpose(perm)
        return np.ascontiguousarray(a[:, :, None] if lift else a)

    stored = ctx.derived(w, "onnx_kernel_2d" if lift else "onnx_kernel", layout)
    if stored is not None:
        return stored
    moved = ctx.transpose(ctx.name(w), perm)
    return ctx.unsqueeze(moved, [2]) if lift else moved


def _pads(pads, lift: bool = False) -> list:
    """IR (lo, hi) per spatial axis -> ONNX [lo..., hi...] (lifted: the unit axis first)."""
    pads = (((0, 0),) if lift else ()) + tuple(pads)
    return [int(lo) for lo, _ in pads] + [int(hi) for _, hi in pads]


def _axes(values, lift: bool = False) -> list:
    """IR per-spatial-axis sizes -> an ONNX attribute (lifted: 1 for the unit axis first)."""
    return ([1] if lift else []) + [int(v) for v in values]


@lowering("conv")
def lower_conv(ctx, node):
    x, w = node.inputs[:2]
    attrs = node.attrs
    bias = epilogue_bias(ctx, node)
    lift = x.rank == 3  # one spatial axis
    inputs = [channels_first(ctx, ctx.name(x), x.rank, lift), onnx_kernel(ctx, w, lift)] + ([bias] if bias else [])
    y = ctx.node("Conv", inputs, kernel_shape=_axes(w.shape[:-2], lift), strides=_axes(attrs["strides"], lift),
                 dilations=_axes(attrs["dilations"], lift), pads=_pads(attrs["pads"], lift),
                 group=int(attrs.get("groups", 1)))
    finish_channels_first(ctx, node, y, bias_applied=bias is not None, lift=lift)


@lowering("conv_transpose")
def lower_conv_transpose(ctx, node):
    x, w = node.inputs[:2]
    attrs = node.attrs
    bias = epilogue_bias(ctx, node)
    inputs = [channels_first(ctx, ctx.name(x), x.rank), onnx_kernel(ctx, w)] + ([bias] if bias else [])
    # The IR crops the full output by (lo, hi); a negative hi appends zeros instead,
    # which is ONNX's output_padding.
    crop = [(lo, max(hi, 0)) for lo, hi in attrs["pads"]]
    extend = [max(-hi, 0) for _, hi in attrs["pads"]]
    y = ctx.node("ConvTranspose", inputs, kernel_shape=list(w.shape[:-2]), strides=list(attrs["strides"]),
                 dilations=list(attrs["dilations"]), pads=_pads(crop),
                 output_padding=extend if any(extend) else None)
    finish_channels_first(ctx, node, y, bias_applied=bias is not None)


@lowering("max_pool", "avg_pool")
def lower_pool(ctx, node):
    x = node.inputs[0]
    attrs = node.attrs
    lift = x.rank == 3  # one spatial axis
    geometry = dict(kernel_shape=_axes(attrs["window"], lift), strides=_axes(attrs["strides"], lift),
                    pads=_pads(attrs["pads"], lift))
    source = channels_first(ctx, ctx.name(x), x.rank, lift)
    if node.op == "max_pool":
        y = ctx.node("MaxPool", [source], **geometry)
    else:
        include = int(bool(attrs.get("count_include_pad", False)))
        y = ctx.node("AveragePool", [source], count_include_pad=include, **geometry)
    ctx.bind(node.output, channels_last(ctx, y, x.rank, lift))


# -- reductions and softmax ------------------------------------------------------------------------------
REDUCTIONS = {"reduce_sum": "ReduceSum", "reduce_mean": "ReduceMean", "reduce_max": "ReduceMax",
              "reduce_min": "ReduceMin"}


@lowering(*REDUCTIONS)
def lower_reduce(ctx, node):
    x = node.inputs[0]
    axes = normalize_axes(node.attrs["axes"], x.rank)
    keepdims = bool(node.attrs.get("keepdims", False))
    ctx.bind(node.output, ctx.reduce(REDUCTIONS[node.op], ctx.name(x), axes, keepdims))


@lowering("softmax", "log_softmax")
def lower_softmax(ctx, node):
    x = node.inputs[0]
    op_type = "Softmax" if node.op == "softmax" else "LogSoftmax"
    ctx.bind(node.output, ctx.node(op_type, [ctx.name(x)], axis=normalize_axis(node.attrs["axis"], x.rank)))


# -- data movement ----------------------------------------------------------------------------------------
@lowering("reshape")
def lower_reshape(ctx, node):
    ctx.bind(node.output, ctx.reshape(ctx.name(node.inputs[0]), node.output.shape))


@lowering("transpose")
def lower_transpose(ctx, node):
    ctx.bind(node.output, ctx.transpose(ctx.name(node.inputs[0]), node.attrs["perm"]))


@lowering("concat")
def lower_concat(ctx, node):
    axis = normalize_axis(node.attrs["axis"], node.output.rank)
    ctx.bind(node.output, ctx.node("Concat", [ctx.name(v) for v in node.inputs], axis=axis))


INT64_MIN = int(np.iinfo(np.int64).min)


@lowering("slice")
def lower_slice(ctx, node):
    x = node.inputs[0]
    starts, ends, axes, steps = [], [], [], []
    for axis, start, stop, step in zip(*(node.attrs[k] for k in ("axes", "starts", "stops", "steps"))):
        axis = normalize_axis(axis, x.rank)
        # Python's slice rules first; then ONNX's: an end of -1 would count from the back,
        # so "through index 0" on a reversed slice is INT64_MIN.
        begin, end, stride = slice(start, stop, step).indices(x.shape[axis])
        starts.append(begin)
        ends.append(INT64_MIN if stride < 0 and end < 0 else end)
        axes.append(axis)
        steps.append(stride)
    ctx.bind(node.output, ctx.slice(ctx.name(x), starts, ends, axes, steps))


@lowering("pad")
def lower_pad(ctx, node):
    x = node.inputs[0]
    pads = [int(lo) for lo, _ in node.attrs["pads"]] + [int(hi) for _, hi in node.attrs["pads"]]
    value = ctx.const(node.attrs.get("value", 0.0), x.dtype)
    ctx.bind(node.output, ctx.node("Pad", [ctx.name(x), ctx.ints(pads), value], mode="constant"))


@lowering("broadcast_to")
def lower_broadcast_to(ctx, node):
    shape = [1 if d is None else d for d in node.attrs["shape"]]  # 1 keeps the batch size
    ctx.bind(node.output, ctx.node("Expand", [ctx.name(node.inputs[0]), ctx.ints(shape)]))


@lowering("repeat")
def lower_repeat(ctx, node):
    x = node.inputs[0]
    axis = normalize_axis(node.attrs["axis"], x.rank)
    index = np.repeat(np.arange(x.shape[axis], dtype=np.int64), node.attrs["repeats"])
    ctx.bind(node.output, ctx.node("Gather", [ctx.name(x), ctx.const(index, "int64")], axis=axis))


@lowering("gather")
def lower_gather(ctx, node):
    table, indices = node.inputs
    ctx.bind(node.output, ctx.node("Gather", [ctx.name(table), ctx.name(indices)], axis=0))


@lowering("resize")
def lower_resize(ctx, node):
    """TensorFlow's half-pixel resize: ONNX half_pixel coordinates; nearest picks
    floor((o + 0.5) * in / out) = round_prefer_ceil((o + 0.5) * in / out - 0.5)."""
    x = node.inputs[0]
    sizes = [int(s) for s in node.attrs["sizes"]]
    nearest = node.attrs["method"] == "nearest"
    mode = dict(mode="nearest" if nearest else "linear", coordinate_transformation_mode="half_pixel",
                nearest_mode="round_prefer_ceil" if nearest else None)
    if ctx.opset >= 18:
        axes = list(range(1, len(sizes) + 1))
        y = ctx.node("Resize", [ctx.name(x), "", "", ctx.ints(sizes)], axes=axes, **mode)
    else:
        batch = ctx.slice(ctx.node("Shape", [ctx.name(x)]), [0], [1], [0])
        full = ctx.node("Concat", [batch, ctx.ints(sizes + [x.shape[-1]])], axis=0)
        y = ctx.node("Resize", [ctx.name(x), "", "", full], **mode)
    ctx.bind(node.output, y)
