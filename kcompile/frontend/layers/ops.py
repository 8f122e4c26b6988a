"""Keras operations recorded in functional configs (`keras.ops.add(x, 1)`, `x[:, 0]`,
`x > 0`, ...). Keras 3 stores them as nodes whose module is `keras.src.ops.*`; tf-keras
stores TensorFlow calls as TFOpLambda / SlicingOpLambda layers."""
from __future__ import annotations

import numpy as np

from ..registry import OP_LOWERINGS, lowers, lowers_op
from .activations import ACTIVATIONS


def value_of(ctx, v, like=None):
    """A tensor argument as a Value; Python scalars become constants of like's dtype."""
    if hasattr(v, "type"):
        return v
    dtype = like.dtype if like is not None and hasattr(like, "dtype") else "float32"
    if isinstance(v, bool):
        v = int(v)
    return ctx.b.const(np.asarray(v, dtype=dtype))


def _operands(ctx, a, c):
    a = value_of(ctx, a, c if hasattr(c, "type") else None)
    c = value_of(ctx, c, a)
    if a.dtype != c.dtype:  # Keras promotes ints against floats
        a = a if a.dtype == "float32" else ctx.b.cast(a, dtype="float32")
        c = c if c.dtype == "float32" else ctx.b.cast(c, dtype="float32")
    return a, c


def _binary(prim):
    def lower(ctx, a, c, **_):
        return getattr(ctx.b, prim)(*_operands(ctx, a, c))

    return lower


BINARY_OPS = {
    "Add": "add", "Subtract": "sub", "Multiply": "mul", "Divide": "div", "TrueDivide": "div", "Power": "pow",
    "Maximum": "maximum", "Minimum": "minimum", "Greater": "greater", "GreaterEqual": "greater_equal",
    "Less": "less", "LessEqual": "less_equal", "Equal": "equal", "NotEqual": "not_equal",
    "LogicalAnd": "mul", "LogicalOr": "maximum",
}
for _name, _prim in BINARY_OPS.items():
    lowers_op(_name)(_binary(_prim))

UNARY_OPS = {
    "Negative": "neg", "Abs": "abs", "Absolute": "abs", "Exp": "exp", "Log": "log", "Log1p": "log1p",
    "Expm1": "expm1", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Square": "square", "Tanh": "tanh", "Sign": "sign",
    "Floor": "floor", "Erf": "erf", "Reciprocal": "reciprocal",
}
for _name, _prim in UNARY_OPS.items():
    lowers_op(_name)(lambda ctx, x, _prim=_prim, **_: getattr(ctx.b, _prim)(value_of(ctx, x)))

ACTIVATION_OPS = {
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Softplus": "softplus", "Softsign": "softsign",
    "Silu": "silu", "Swish": "silu", "Elu": "elu", "Selu": "selu", "Mish": "mish", "HardSigmoid": "hard_sigmoid",
    "HardSilu": "hard_silu", "LogSigmoid": "log_sigmoid", "HardTanh": "hard_tanh",
}
for _name, _act in ACTIVATION_OPS.items():
    lowers_op(_name)(lambda ctx, x, _act=_act, **_: ACTIVATIONS[_act](ctx.b, x, 3))


@lowers_op("Gelu")
def gelu_op(ctx, x, **_):
    from .activations import _gelu

    return _gelu(ctx.b, x, approximate=ctx.config.get("approximate", True))


@lowers_op("LeakyRelu")
def leaky_relu_op(ctx, x, **_):
    b = ctx.b
    slope = ctx.config.get("negative_slope", 0.2)
    return b.where(b.greater_equal(x, b.const(0.0)), x, b.mul(x, b.const(slope)))


@lowers_op("Softmax", "LogSoftmax")
def softmax_op(ctx, x, **_):
    axis = ctx.config.get("axis", -1)
    return (ctx.b.softmax if ctx.class_name == "Softmax" else ctx.b.log_softmax)(x, axis=axis)


@lowers_op("LogicalNot")
def logical_not(ctx, x, **_):
    return ctx.b.equal(x, value_of(ctx, 0, x))


def _reduce(prim):
    def lower(ctx, x, **_):
        axis = ctx.config.get("axis")
        axes = tuple(range(1, x.rank)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        if axis is None:
            raise ctx.error("reductions over the batch axis are not supported")
        return getattr(ctx.b, prim)(x, axes=axes, keepdims=bool(ctx.config.get("keepdims", False)))

    return lower


for _name, _prim in {"Sum": "reduce_sum", "Mean": "reduce_mean", "Max": "reduce_max", "Amax": "reduce_max",
                     "Min": "reduce_min", "Amin": "reduce_min", "Any": "reduce_max", "All": "reduce_min"}.items():
    lowers_op(_name)(_reduce(_prim))


@lowers_op("Matmul")
def matmul_op(ctx, a, c, **_):
    return ctx.b.matmul(*_operands(ctx, a, c))


@lowers_op("Reshape")
def reshape_op(ctx, x, **_):
    shape = list(ctx.config.get("newshape") or ctx.config.get("new_shape") or ctx.cfg("shape"))
    if None in x.shape and None not in shape:
        if -1 not in shape:
            raise ctx.error(f"reshape to {shape} drops the batch dimension")
        shape[shape.index(-1)] = None
    return ctx.b.reshape(x, shape=tuple(shape))


@lowers_op("Transpose")
def transpose_op(ctx, x, **_):
    axes = ctx.config.get("axes")
    return ctx.b.transpose(x, perm=tuple(axes) if axes is not None else tuple(reversed(range(x.rank))))


@lowers_op("ExpandDims")
def expand_dims_op(ctx, x, **_):
    axis = ctx.cfg("axis")
    axes = sorted(a % (x.rank + 1) for a in ((axis,) if isinstance(axis, int) else axis))
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return ctx.b.reshape(x, shape=tuple(shape))


@lowers_op("Squeeze")
def squeeze_op(ctx, x, **_):
    axis = ctx.config.get("axis")
    axes = {i for i, d in enumerate(x.shape) if d == 1} if axis is None else {
        a % x.rank for a in ((axis,) if isinstance(axis, int) else axis)}
    return ctx.b.reshape(x, shape=tuple(d for i, d in enumerate(x.shape) if i not in axes))


@lowers_op("Concatenate")
def concatenate_op(ctx, xs, **_):
    return ctx.b.concat(*xs, axis=ctx.config.get("axis", 0))


@lowers_op("Stack")
def stack_op(ctx, xs, **_):
    axis = ctx.config.get("axis", 0) % (xs[0].rank + 1)
    shape = xs[0].shape[:axis] + (1,) + xs[0].shape[axis:]
    return ctx.b.concat(*[ctx.b.reshape(x, shape=shape) for x in xs], axis=axis)


@lowers_op("Cast")
def cast_op(ctx, x, **_):
    dtype = ctx.cfg("dtype")
    dtype = {"bool": "float32", "float64": "float32", "float16": "float32"}.get(dtype, dtype)
    return x if x.dtype == dtype else ctx.b.cast(x, dtype=dtype)


@lowers_op("Clip")
def clip_op(ctx, x, low=None, high=None, **_):
    low = ctx.config.get("x_min", low)
    high = ctx.config.get("x_max", high)
    return ctx.b.clip(x, low=float(low), high=float(high))


@lowers_op("Where")
def where_op(ctx, cond, a, c, **_):
    a, c = _operands(ctx, a, c)
    return ctx.b.where(cond, a, c)


def _decode_key(item):
    if isinstance(item, dict) and item.get("class_name") == "__slice__":
        cfg = item["config"]
        return slice(cfg.get("start"), cfg.get("stop"), cfg.get("step"))
    if isinstance(item, dict) and item.get("class_name") == "__ellipsis__":
        return Ellipsis
    if isinstance(item, dict) and set(item) == {"start", "stop", "step"}:  # tf-keras
        return slice(item["start"], item["stop"], item["step"])
    if item == "...":
        return Ellipsis
    return item


def get_item(ctx, x, key):
    """NumPy basic indexing: slices, integers, None (new axis) and one Ellipsis."""
    b = ctx.b
    key = [_decode_key(k) for k in (key if isinstance(key, (list, tuple)) else [key])]
    if Ellipsis in key:
        i = key.index(Ellipsis)
        consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:i] + [slice(None)] * (x.rank - consumed) + key[i + 1 :]
    key += [slice(None)] * (x.rank - sum(1 for k in key if k is not None))
    axes, starts, stops, steps, shape = [], [], [], [], []
    axis = 0
    for k in key:
        if k is None:
            shape.append(1)
            continue
        size = x.shape[axis]
        if isinstance(k, int):
            if size is None:
                raise ctx.error("indexing into the batch dimension is not supported")
            k = k % size
            axes.append(axis), starts.append(k), stops.append(k + 1), steps.append(1)
        else:
            if size is None:
                if k != slice(None):
                    raise ctx.error("slicing the batch dimension is not supported")
                shape.append(None)
            else:
                start, stop, step = k.indices(size)
                if (start, stop, step) != (0, size, 1):
                    axes.append(axis), starts.append(start), stops.append(stop if stop >= 0 else -size - 1), steps.append(step)
                shape.append(len(range(start, stop, step)))
        axis += 1
    y = b.slice(x, axes=tuple(axes), starts=tuple(starts), stops=tuple(stops), steps=tuple(steps)) if axes else x
    return b.reshape(y, shape=tuple(shape)) if tuple(shape) != y.shape else y


lowers_op("GetItem")(lambda ctx, x, key, **_: get_item(ctx, x, key))


# -- tf-keras: TensorFlow functions recorded as TFOpLambda layers ----------------------------------
TF_FUNCTIONS = {
    "__operators__.add": "Add", "math.add": "Add", "math.subtract": "Subtract", "math.multiply": "Multiply",
    "math.truediv": "Divide", "math.divide": "Divide", "math.pow": "Power", "math.maximum": "Maximum",
    "math.minimum": "Minimum", "math.negative": "Negative", "math.abs": "Abs", "math.exp": "Exp",
    "math.log": "Log", "math.sqrt": "Sqrt", "math.square": "Square", "math.tanh": "Tanh", "math.sigmoid": "Sigmoid",
    "nn.relu": "Relu", "nn.relu6": "Relu6", "nn.softmax": "Softmax", "nn.sigmoid": "Sigmoid",
    "math.greater": "Greater", "math.less": "Less", "math.equal": "Equal", "math.not_equal": "NotEqual",
    "math.reduce_sum": "Sum", "math.reduce_mean": "Mean", "math.reduce_max": "Max", "math.reduce_min": "Min",
    "reshape": "Reshape", "transpose": "Transpose", "expand_dims": "ExpandDims", "squeeze": "Squeeze",
    "concat": "Concatenate", "linalg.matmul": "Matmul", "cast": "Cast",
}
TF_ARGUMENT_NAMES = {"axis": "axis", "keepdims": "keepdims", "shape": "newshape", "perm": "axes", "dtype": "dtype"}


def tf_op_lambda(ctx, *args, **kwargs):
    function = ctx.cfg("function")
    if function == "__operators__.getitem":
        return get_item(ctx, args[0], kwargs.get("slice_spec", args[1] if len(args) > 1 else None))
    name = TF_FUNCTIONS.get(function)
    if name is None:
        raise ctx.error(f"TensorFlow function tf.{function} is not supported")
    attrs = {TF_ARGUMENT_NAMES[k]: v for k, v in kwargs.items() if k in TF_ARGUMENT_NAMES}
    tensors = [v for k, v in kwargs.items() if k not in TF_ARGUMENT_NAMES and k != "name"]
    saved = ctx.config
    ctx.config = {**saved, **attrs}
    try:
        return OP_LOWERINGS[name].fn(ctx, *args, *tensors)
    finally:
        ctx.config = saved


lowers("TFOpLambda", "SlicingOpLambda")(tf_op_lambda)