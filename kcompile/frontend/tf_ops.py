"""TensorFlow graph operations as IR primitives: the table the layer tracer reads.

`TF_OPS` maps a TensorFlow op type (`op.type` in a traced graph: "AddV2", "MatMul",
"StridedSlice", ...) to `fn(tr, op, *inputs) -> output | list of outputs`, where `tr` is the
`Tracer` (tracing.py) and each input is either

  - an IR `Value` (a tensor that depends on the layer's inputs or weights), or
  - a NumPy array known at compile time (constants, shapes, axes). A shape vector read
    from a tensor with a batch dimension is an object array holding `None` there.

An op on compile-time arrays is evaluated with NumPy and stays an array; as soon as a
Value takes part, the op is emitted as IR. TensorFlow booleans become float32 0/1 Values,
matching the IR's comparisons. Nothing here imports TensorFlow: `op` is only read
through `op.type`, `op.name`, `op.get_attr(name)` and `op.outputs`.
"""
from __future__ import annotations

import string

import numpy as np

from ..errors import UnsupportedLayerError
from ..ir import Value
from ..ir.shapes import same_padding
from .layers.ops import get_item

TF_OPS: dict = {}


def tf_op(*op_types: str):
    """Decorator registering a lowering for one or more TensorFlow op types."""

    def register(fn):
        for name in op_types:
            TF_OPS[name] = fn
        return fn

    return register


class OpError(UnsupportedLayerError):
    """An op the tracer cannot lower with these inputs (the tracer adds op and layer)."""


def is_value(x) -> bool:
    return isinstance(x, Value)


def attr(op, name, default=None):
    try:
        value = op.get_attr(name)
    except (ValueError, KeyError):
        return default
    return value.decode() if isinstance(value, bytes) else value


# -- compile-time arrays ------------------------------------------------------------------


def clean(x) -> np.ndarray:
    """A static result as an array; object arrays without None become integers."""
    array = np.asarray(x)
    if array.dtype == object and not any(v is None for v in array.ravel()):
        array = array.astype(np.int64)
    return array


def _none_aware(fn):
    """Apply fn elementwise; any None operand (the batch size) gives None."""
    return np.frompyfunc(lambda *xs: None if any(x is None for x in xs) else fn(*xs), 2, 1)


def static_binary(fn, a, c):
    if a.dtype == object or c.dtype == object:
        return clean(_none_aware(fn)(a, c))
    return clean(fn(a, c))


def static_ints(x, what: str) -> list:
    if is_value(x):
        raise OpError(f"its {what} must be known at compile time, but depends on the input")
    return [int(v) for v in np.asarray(x).ravel()]


def normalize(axis: int, rank: int) -> int:
    return axis % rank if rank else 0


# -- binary and unary math ----------------------------------------------------------------

BINARY = {
    "Add": ("add", np.add), "AddV2": ("add", np.add), "Sub": ("sub", np.subtract),
    "Mul": ("mul", np.multiply), "RealDiv": ("div", np.divide), "Maximum": ("maximum", np.maximum),
    "Minimum": ("minimum", np.minimum), "Pow": ("pow", np.power),
    "Greater": ("greater", np.greater), "GreaterEqual": ("greater_equal", np.greater_equal),
    "Less": ("less", np.less), "LessEqual": ("less_equal", np.less_equal),
    "Equal": ("equal", np.equal), "NotEqual": ("not_equal", np.not_equal),
    "LogicalAnd": ("mul", np.logical_and), "LogicalOr": ("maximum", np.logical_or),
}
COMPARISONS = {"Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"}


def _binary(op_type, prim, numpy_fn):
    def lower(tr, op, a, c, *_):
        if not is_value(a) and not is_value(c):
            return static_binary(numpy_fn, a, c)
        a, c = tr.operands(a, c)
        result = getattr(tr.b, prim)(a, c)
        if op_type in COMPARISONS and result.dtype != "float32":
            result = tr.b.cast(result, dtype="float32")  # TF booleans are float 0/1 here
        return result

    return lower


for _type, (_prim, _fn) in BINARY.items():
    tf_op(_type)(_binary(_type, _prim, _fn))


@tf_op("Div", "FloorDiv")
def floor_div(tr, op, a, c):
    integer = np.dtype(tr.numpy_dtype(op.outputs[0])).kind in "iu"
    if not is_value(a) and not is_value(c):
        return static_binary(np.floor_divide if integer or op.type == "FloorDiv" else np.divide, a, c)
    if integer:
        raise OpError("integer division of tensors is not supported")
    a, c = tr.operands(a, c)
    quotient = tr.b.div(a, c)
    return tr.b.floor(quotient) if op.type == "FloorDiv" else quotient


@tf_op("FloorMod")
def floor_mod(tr, op, a, c):
    if not is_value(a) and not is_value(c):
        return static_binary(np.mod, a, c)
    a, c = tr.operands(a, c)
    if a.dtype != "float32":
        raise OpError("integer modulo of tensors is not supported")
    return tr.b.sub(a, tr.b.mul(tr.b.floor(tr.b.div(a, c)), c))


@tf_op("SquaredDifference")
def squared_difference(tr, op, a, c):
    if not is_value(a) and not is_value(c):
        return static_binary(lambda x, y: (x - y) ** 2, a, c)
    return tr.b.square(tr.b.sub(*tr.operands(a, c)))


@tf_op("DivNoNan")
def div_no_nan(tr, op, a, c):
    a, c = tr.operands(tr.value(a), tr.value(c))
    zero = tr.b.const(np.zeros((), np.float32))
    is_zero = tr.b.equal(c, zero)
    safe = tr.b.where(is_zero, tr.b.const(np.ones((), np.float32)), c)
    return tr.b.where(is_zero, zero, tr.b.div(a, safe))


@tf_op("AddN")
def add_n(tr, op, *xs):
    total = xs[0]
    for x in xs[1:]:
        total = TF_OPS["AddV2"](tr, op, total, x)
    return total


@tf_op("BiasAdd", "BiasAddV1")
def bias_add(tr, op, x, bias):
    x, bias = tr.operands(x, bias)
    if attr(op, "data_format", "NHWC") == "NCHW" and x.rank > 2:
        bias = tr.b.reshape(bias, shape=(bias.shape[0],) + (1,) * (x.rank - 2))
    return tr.b.add(x, bias)


UNARY = {
    "Neg": ("neg", np.negative), "Abs": ("abs", np.abs), "Exp": ("exp", np.exp), "Log": ("log", np.log),
    "Log1p": ("log1p", np.log1p), "Expm1": ("expm1", np.expm1), "Sqrt": ("sqrt", np.sqrt),
    "Rsqrt": ("rsqrt", lambda x: 1 / np.sqrt(x)), "Square": ("square", np.square),
    "Reciprocal": ("reciprocal", lambda x: 1 / x), "Inv": ("reciprocal", lambda x: 1 / x),
    "Tanh": ("tanh", np.tanh), "Sigmoid": ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    "Relu": ("relu", lambda x: np.maximum(x, 0)), "Erf": ("erf", None), "Sign": ("sign", np.sign),
    "Floor": ("floor", np.floor), "Softplus": ("softplus", None),
}


def _unary(prim, numpy_fn):
    def lower(tr, op, x):
        if not is_value(x) and numpy_fn is not None:
            return clean(numpy_fn(x))
        return getattr(tr.b, prim)(tr.value(x))

    return lower


for _type, (_prim, _fn) in UNARY.items():
    tf_op(_type)(_unary(_prim, _fn))


@tf_op("Ceil")
def ceil(tr, op, x):
    if not is_value(x):
        return np.ceil(x)
    return tr.b.neg(tr.b.floor(tr.b.neg(x)))


@tf_op("Relu6")
def relu6(tr, op, x):
    return tr.b.clip(tr.value(x), low=0.0, high=6.0)


@tf_op("LeakyRelu")
def leaky_relu(tr, op, x):
    b, x = tr.b, tr.value(x)
    slope = float(attr(op, "alpha", 0.2))
    return b.where(b.greater_equal(x, b.const(0.0)), x, b.mul(x, b.const(slope)))


@tf_op("Elu", "Selu")
def elu(tr, op, x):
    from .layers.activations import SELU_ALPHA, SELU_SCALE

    b, x = tr.b, tr.value(x)
    alpha = SELU_ALPHA if op.type == "Selu" else 1.0
    negative = b.mul(b.expm1(x), b.const(alpha)) if alpha != 1.0 else b.expm1(x)
    y = b.where(b.greater(x, b.const(0.0)), x, negative)
    return b.mul(y, b.const(SELU_SCALE)) if op.type == "Selu" else y


@tf_op("Softsign")
def softsign(tr, op, x):
    b, x = tr.b, tr.value(x)
    return b.div(x, b.add(b.const(1.0), b.abs(x)))


@tf_op("LogicalNot")
def logical_not(tr, op, x):
    if not is_value(x):
        return np.logical_not(x)
    return tr.b.sub(tr.b.const(1.0), tr.as_float(x))


@tf_op("ClipByValue")
def clip_by_value(tr, op, x, low, high):
    if not is_value(low) and not is_value(high) and np.ndim(low) == 0 and np.ndim(high) == 0 and is_value(x):
        if x.dtype == "float32":
            return tr.b.clip(x, low=float(low), high=float(high))
    return TF_OPS["Minimum"](tr, op, TF_OPS["Maximum"](tr, op, x, low), high)


@tf_op("Select", "SelectV2")
def select(tr, op, cond, a, c):
    if not is_value(cond) and not is_value(a) and not is_value(c):
        return clean(np.where(cond, a, c))
    a, c = tr.operands(tr.value(a), c)
    cond = tr.as_float(tr.value(cond, "float32"))
    if op.type == "Select" and cond.rank == 1 and a.rank > 1:  # v1: one condition per row
        cond = tr.b.reshape(cond, shape=cond.shape + (1,) * (a.rank - 1))
    return tr.b.where(cond, a, c)


@tf_op("Cast")
def cast(tr, op, x):
    target = tr.numpy_dtype(op.outputs[0])
    if not is_value(x):
        return np.asarray(x).astype(target)
    if target == np.bool_:
        return tr.as_float(tr.b.not_equal(x, tr.const_like(0, x)))
    dtype = tr.ir_dtype(target)
    return x if x.dtype == dtype else tr.b.cast(x, dtype=dtype)


# -- activations and reductions -----------------------------------------------------------------


@tf_op("Softmax", "LogSoftmax")
def softmax(tr, op, x):
    fn = tr.b.softmax if op.type == "Softmax" else tr.b.log_softmax
    return fn(tr.value(x), axis=-1)


REDUCTIONS = {"Sum": ("reduce_sum", np.sum), "Mean": ("reduce_mean", np.mean), "Max": ("reduce_max", np.max),
              "Min": ("reduce_min", np.min), "Prod": (None, np.prod), "Any": ("reduce_max", np.any),
              "All": ("reduce_min", np.all)}


def _reduction(prim, numpy_fn):
    def lower(tr, op, x, axis):
        keepdims = bool(attr(op, "keep_dims", False))
        axes = tuple(static_ints(axis, "reduction axis"))
        if not is_value(x):
            if x.dtype == object:
                raise OpError("reduces a shape that holds the batch size")
            return clean(numpy_fn(x, axis=axes, keepdims=keepdims))
        if prim is None:
            raise OpError("products of tensors are not supported")
        if not axes:
            return x
        x = tr.as_float(x) if op.type in ("Any", "All") else x
        return getattr(tr.b, prim)(x, axes=tuple(normalize(a, x.rank) for a in axes), keepdims=keepdims)

    return lower


for _type, (_prim, _fn) in REDUCTIONS.items():
    tf_op(_type)(_reduction(_prim, _fn))


# -- products -----------------------------------------------------------------------------------


def _swap_last(tr, x):
    perm = tuple(range(x.rank - 2)) + (x.rank - 1, x.rank - 2)
    return tr.b.transpose(x, perm=perm)


def _matmul(tr, a, c, transpose_a, transpose_c):
    if not is_value(a) and not is_value(c):
        a = np.swapaxes(a, -1, -2) if transpose_a else a
        c = np.swapaxes(c, -1, -2) if transpose_c else c
        return np.matmul(a, c)
    a, c = tr.operands(tr.value(a), c)
    a = _swap_last(tr, a) if transpose_a else a
    c = _swap_last(tr, c) if transpose_c else c
    return tr.b.matmul(a, c)


@tf_op("MatMul")
def matmul(tr, op, a, c):
    return _matmul(tr, a, c, attr(op, "transpose_a", False), attr(op, "transpose_b", False))


@tf_op("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def batch_matmul(tr, op, a, c):
    return _matmul(tr, a, c, attr(op, "adj_x", False), attr(op, "adj_y", False))


@tf_op("Einsum")
def einsum_op(tr, op, *operands):
    return einsum(tr, attr(op, "equation"), *[tr.value(x) for x in operands])


def _expand_ellipsis(equation: str, ranks: list) -> tuple:
    """Labels per operand and for the output, with '...' spelled out as capital letters."""
    inputs, _, output = equation.replace(" ", "").partition("->")
    terms = inputs.split(",")
    if len(terms) != len(ranks):
        raise OpError(f"einsum {equation!r} for {len(ranks)} operands")
    spare = [c for c in string.ascii_uppercase if c not in equation]
    widest = max((rank - (len(t) - 3) for t, rank in zip(terms, ranks) if "..." in t), default=0)
    ellipsis = "".join(spare[:widest])
    expanded = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            width = rank - (len(term) - 3)
            term = term.replace("...", ellipsis[widest - width:] if width else "")
        if len(term) != rank:
            raise OpError(f"einsum term {term!r} for an operand of rank {rank}")
        expanded.append(term)
    if not _:
        # Implicit output: the ellipsis, then labels used once, in alphabetical order.
        counts = {c: "".join(expanded).count(c) for c in set("".join(expanded))}
        output = ellipsis + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ellipsis))
    output = output.replace("...", ellipsis)
    return expanded, output


def _product(dims):
    return None if None in dims else int(np.prod(dims, dtype=np.int64))


def einsum(tr, equation: str, *operands):
    """einsum on Values as transposes, reshapes, sums and one matmul."""
    b = tr.b
    terms, output = _expand_ellipsis(equation, [x.rank for x in operands])
    for term in terms:
        if len(set(term)) != len(term):
            raise OpError(f"einsum {equation!r} takes a diagonal (a label repeated in one operand)")
    # Labels that appear in one operand only and not in the output are summed first.
    reduced = []
    for i, (term, x) in enumerate(zip(terms, operands)):
        others = "".join(t for j, t in enumerate(terms) if j != i) + output
        lonely = [k for k, c in enumerate(term) if c not in others]
        if lonely:
            x = b.reduce_sum(x, axes=tuple(lonely), keepdims=False)
            term = "".join(c for k, c in enumerate(term) if k not in lonely)
        reduced.append((term, x))
    if len(reduced) == 1:
        (term, x), = reduced
        return _permute(b, x, term, output)
    if len(reduced) != 2:
        raise OpError(f"einsum with {len(reduced)} operands is not supported")
    (ta, a), (tc, c) = reduced
    a, c = tr.operands(a, c)
    batch = [l for l in output if l in ta and l in tc]
    contract = [l for l in ta if l in tc and l not in output]
    free_a = [l for l in ta if l not in tc]
    free_c = [l for l in tc if l not in ta]
    if any(a.shape[ta.index(l)] is None or c.shape[tc.index(l)] is None for l in contract):
        raise OpError(f"einsum {equation!r} sums over the batch dimension")
    # a -> batch + (M, K), c -> batch + (K, N), then matmul broadcasts the batch labels.
    k = _product([c.shape[tc.index(l)] for l in contract])
    a = _permute(b, a, ta, "".join(batch + free_a + contract))
    c = _permute(b, c, tc, "".join(batch + contract + free_c))
    a_batch, c_batch = a.shape[: len(batch)], c.shape[: len(batch)]
    a_free_dims = a.shape[len(batch): len(batch) + len(free_a)]
    c_free_dims = c.shape[len(batch) + len(contract):]
    if not batch and free_a:  # (..., M, K) @ (K, N): a's free labels stay leading axes
        a = _reshape(b, a, tuple(a_free_dims) + (k,))
    else:
        a = _reshape(b, a, a_batch + (_product(a_free_dims), k))
    c = _reshape(b, c, c_batch + (k, _product(c_free_dims)))
    result = b.matmul(a, c)
    result_batch = result.shape[: len(batch)]
    result = _reshape(b, result, result_batch + tuple(a_free_dims) + tuple(c_free_dims))
    return _permute(b, result, "".join(batch + free_a + free_c), output)


def _permute(b, x, term: str, target: str):
    if sorted(term) != sorted(target):
        raise OpError(f"einsum output {target!r} does not match the labels {term!r}")
    perm = tuple(term.index(c) for c in target)
    return x if perm == tuple(range(len(perm))) else b.transpose(x, perm=perm)


def _reshape(b, x, shape: tuple):
    shape = tuple(shape)
    return x if shape == x.shape else b.reshape(x, shape=shape)


# -- shapes and data movement --------------------------------------------------------------------


@tf_op("Shape", "ShapeN")
def shape_op(tr, op, *xs):
    shapes = [np.array(x.shape, dtype=object) if is_value(x) else np.array(np.shape(x), np.int64) for x in xs]
    return [clean(s) for s in shapes] if op.type == "ShapeN" else clean(shapes[0])


@tf_op("Size")
def size_op(tr, op, x):
    shape = x.shape if is_value(x) else np.shape(x)
    if None in shape:
        raise OpError("the size of a tensor with a batch dimension is not known at compile time")
    return np.asarray(int(np.prod(shape)), np.int64)


@tf_op("Rank")
def rank_op(tr, op, x):
    return np.asarray(x.rank if is_value(x) else np.ndim(x), np.int32)


@tf_op("Reshape")
def reshape(tr, op, x, shape):
    target = [None if d is None else int(d) for d in np.asarray(tr.static(shape, "target shape")).ravel()]
    if not is_value(x):
        if None in target:
            raise OpError("reshapes a constant to a shape holding the batch size")
        return np.reshape(x, target)
    if x.type.dynamic_axis is not None:
        if None in target and -1 in target:
            known = int(np.prod([d for d in target if d not in (None, -1)], dtype=np.int64))
            target[target.index(-1)] = x.type.static_size() // max(known, 1)
        elif -1 in target:
            target[target.index(-1)] = None
        elif None not in target:
            raise OpError(f"reshapes {x.type} to the fixed shape {tuple(target)}")
    return _reshape(tr.b, x, tuple(target))


@tf_op("Transpose", "ConjugateTranspose")
def transpose(tr, op, x, perm):
    perm = tuple(static_ints(perm, "permutation"))
    if not is_value(x):
        return np.transpose(x, perm)
    return x if perm == tuple(range(x.rank)) else tr.b.transpose(x, perm=perm)


@tf_op("ExpandDims")
def expand_dims(tr, op, x, axis):
    (axis,) = static_ints(axis, "axis")
    if not is_value(x):
        return np.expand_dims(x, axis)
    shape = list(x.shape)
    shape.insert(axis % (x.rank + 1), 1)
    return tr.b.reshape(x, shape=tuple(shape))


@tf_op("Squeeze")
def squeeze(tr, op, x):
    dims = list(attr(op, "squeeze_dims", []) or [])
    shape = x.shape if is_value(x) else np.shape(x)
    axes = {d % len(shape) for d in dims} if dims else {i for i, d in enumerate(shape) if d == 1}
    if not is_value(x):
        return np.squeeze(x, axis=tuple(sorted(axes)))
    return _reshape(tr.b, x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


@tf_op("ConcatV2")
def concat(tr, op, *args):
    *xs, axis = args
    (axis,) = static_ints(axis, "axis")
    if not any(is_value(x) for x in xs):
        return clean(np.concatenate([np.asarray(x, dtype=object) if x.dtype == object else x for x in xs], axis=axis))
    values = list(tr.operands(*[tr.value(x) if is_value(x) else x for x in xs]))
    values = [v for v in values if 0 not in v.shape]
    return values[0] if len(values) == 1 else tr.b.concat(*values, axis=normalize(axis, values[0].rank))


@tf_op("Pack")
def pack(tr, op, *xs):
    axis = int(attr(op, "axis", 0))
    if not any(is_value(x) for x in xs):
        objects = any(np.asarray(x).dtype == object for x in xs)
        return clean(np.stack([np.asarray(x, dtype=object if objects else None) for x in xs], axis=axis))
    values = tr.operands(*xs)
    axis = axis % (values[0].rank + 1)
    shape = values[0].shape[:axis] + (1,) + values[0].shape[axis:]
    return tr.b.concat(*[tr.b.reshape(v, shape=shape) for v in values], axis=axis)


def _take(tr, x, axis: int, start: int, stop: int, step: int = 1):
    if not is_value(x):
        index = [slice(None)] * np.ndim(x)
        index[axis] = slice(start, stop, step)
        return np.asarray(x)[tuple(index)]
    return tr.b.slice(x, axes=(axis,), starts=(start,), stops=(stop,), steps=(step,))


@tf_op("Unpack")
def unpack(tr, op, x):
    rank = x.rank if is_value(x) else np.ndim(x)
    axis = normalize(int(attr(op, "axis", 0)), rank)
    shape = x.shape if is_value(x) else np.shape(x)
    parts = []
    for i in range(int(attr(op, "num"))):
        part = _take(tr, x, axis, i, i + 1)
        rest = tuple(d for k, d in enumerate(shape) if k != axis)
        parts.append(np.reshape(part, rest) if not is_value(part) else tr.b.reshape(part, shape=rest))
    return parts


def _split(tr, x, axis: int, sizes: list):
    shape = x.shape if is_value(x) else np.shape(x)
    axis = normalize(axis, len(shape))
    if shape[axis] is None:
        raise OpError("splits the batch dimension")
    if -1 in sizes:
        sizes[sizes.index(-1)] = shape[axis] - sum(s for s in sizes if s != -1)
    parts, start = [], 0
    for s in sizes:
        parts.append(x if s == shape[axis] else _take(tr, x, axis, start, start + s))
        start += s
    return parts


@tf_op("Split")
def split(tr, op, axis, x):
    (axis,) = static_ints(axis, "axis")
    n = int(attr(op, "num_split"))
    shape = x.shape if is_value(x) else np.shape(x)
    size = shape[normalize(axis, len(shape))]
    if size is None:
        raise OpError("splits the batch dimension")
    return _split(tr, x, axis, [size // n] * n)


@tf_op("SplitV")
def split_v(tr, op, x, sizes, axis):
    (axis,) = static_ints(axis, "axis")
    return _split(tr, x, axis, static_ints(sizes, "split sizes"))


@tf_op("Slice")
def slice_op(tr, op, x, begin, size):
    begin, size = static_ints(begin, "slice start"), static_ints(size, "slice size")
    key = [slice(b0, None if s == -1 else b0 + s) for b0, s in zip(begin, size)]
    return _index(tr, x, key)


def _index(tr, x, key: list):
    if not is_value(x):
        return clean(np.asarray(x)[tuple(key)])
    return get_item(tr.shim, x, key)


@tf_op("StridedSlice")
def strided_slice(tr, op, x, begin, end, strides):
    begin = static_ints(begin, "slice start")
    end = static_ints(end, "slice stop")
    strides = static_ints(strides, "slice step")
    masks = {name: int(attr(op, name, 0)) for name in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    key = []
    for i, (b0, e0, s0) in enumerate(zip(begin, end, strides)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            key.append(Ellipsis)
        elif masks["new_axis_mask"] & bit:
            key.append(None)
        elif masks["shrink_axis_mask"] & bit:
            key.append(b0)
        else:
            start = None if masks["begin_mask"] & bit else b0
            stop = None if masks["end_mask"] & bit else e0
            full = start in (None, 0) and stop is None and s0 == 1  # how a batch axis can be sliced
            key.append(slice(None) if full else slice(start, stop, s0))
    if not is_value(x):
        return clean(np.asarray(x)[tuple(key)])
    return get_item(tr.shim, x, key)


@tf_op("GatherV2", "Gather", "ResourceGather")
def gather(tr, op, params, indices, axis=None):
    axis = 0 if axis is None else static_ints(axis, "axis")[0]
    if attr(op, "batch_dims", 0):
        raise OpError("gathers with batch_dims are not supported")
    if not is_value(params) and not is_value(indices):
        return clean(np.take(params, indices, axis=axis))
    rank = params.rank if is_value(params) else np.ndim(params)
    axis = normalize(axis, rank)
    if not is_value(indices) and np.ndim(indices) == 0 and is_value(params):
        return _index(tr, params, [slice(None)] * axis + [int(indices)])
    table = tr.value(params)
    idx = indices if is_value(indices) else tr.b.const(np.asarray(indices, np.int64), dtype="int64")
    if idx.dtype not in ("int32", "int64"):
        idx = tr.b.cast(idx, dtype="int32")
    if axis:
        table = tr.b.transpose(table, perm=(axis,) + tuple(i for i in range(rank) if i != axis))
    out = tr.b.gather(table, idx)
    if axis:
        k = idx.rank
        out_perm = tuple(range(k, k + axis)) + tuple(range(k)) + tuple(range(k + axis, out.rank))
        out = tr.b.transpose(out, perm=out_perm)
    return out


@tf_op("Tile")
def tile(tr, op, x, multiples):
    multiples = static_ints(multiples, "multiples")
    if not is_value(x):
        return np.tile(x, multiples)
    for axis, m in enumerate(multiples):
        if m != 1:
            if x.shape[axis] is None:
                raise OpError("tiles the batch dimension")
            x = tr.b.concat(*([x] * m), axis=axis)
    return x


@tf_op("BroadcastTo")
def broadcast_to(tr, op, x, shape):
    target = [None if d is None else int(d) for d in np.asarray(tr.static(shape, "shape")).ravel()]
    if not is_value(x) and None not in target:
        return np.broadcast_to(x, target).copy()
    x = tr.value(x)
    x = _reshape(tr.b, x, (1,) * (len(target) - x.rank) + x.shape)
    if None in target and x.shape[target.index(None)] is None:
        return tr.b.broadcast_to(x, shape=tuple(target))
    if None in target:
        raise OpError("broadcasts a tensor without a batch dimension to the batch size")
    return tr.b.broadcast_to(x, shape=tuple(target))


@tf_op("BroadcastArgs")
def broadcast_args(tr, op, a, c):
    shapes = [tuple(None if d is None else int(d) for d in np.asarray(tr.static(s, "shape")).ravel()) for s in (a, c)]
    from ..ir.shapes import broadcast_shapes

    return clean(np.array(broadcast_shapes(*shapes), dtype=object))


@tf_op("Fill")
def fill(tr, op, dims, value):
    dims = np.asarray(tr.static(dims, "shape")).ravel()
    if any(d is None for d in dims):
        raise OpError("fills a tensor of the batch size")
    return np.full([int(d) for d in dims], tr.static(value, "fill value"))


@tf_op("ZerosLike", "OnesLike")
def zeros_like(tr, op, x):
    fill_value = 0 if op.type == "ZerosLike" else 1
    if not is_value(x):
        return np.full_like(x, fill_value)
    constant = tr.const_like(fill_value, x)
    return tr.b.where(x, constant, constant)  # the shape of x, without reading its values


@tf_op("Range")
def range_op(tr, op, start, limit, delta):
    return np.arange(tr.static(start, "start"), tr.static(limit, "limit"), tr.static(delta, "delta"))


@tf_op("Pad", "PadV2", "MirrorPad")
def pad(tr, op, x, paddings, value=None):
    if op.type == "MirrorPad":
        raise OpError("mirror padding is not supported")
    pads = np.asarray(static_ints(paddings, "paddings")).reshape(-1, 2)
    fill_value = 0.0 if value is None else float(tr.static(value, "pad value"))
    if not is_value(x):
        return np.pad(x, pads, constant_values=fill_value)
    return tr.b.pad(x, pads=tuple(map(tuple, pads.tolist())), value=fill_value)


# A variable's resource handle is bound to its parameter, so reading it is the identity.
IDENTITY_OPS = ("ReadVariableOp", "Identity", "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics",
                "PlaceholderWithDefault")


@tf_op(*IDENTITY_OPS)
def identity(tr, op, x, *_):
    return x


@tf_op("IdentityN")
def identity_n(tr, op, *xs):
    return list(xs)


# -- windows: convolution and pooling (NHWC) ----------------------------------------------------------


def _window_pads(op, x, window, strides, dilations):
    padding = attr(op, "padding", "VALID")
    spatial = x.shape[1:-1]
    if padding == "SAME":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(spatial, window, strides, dilations))
    if padding == "EXPLICIT":
        flat = list(attr(op, "explicit_paddings", []))
        return tuple((flat[2 * i], flat[2 * i + 1]) for i in range(1, 1 + len(spatial)))
    return tuple((0, 0) for _ in spatial)


def _nhwc(op):
    if attr(op, "data_format", "NHWC") not in ("NHWC", "NDHWC", "NWC"):
        raise OpError(f"data format {attr(op, 'data_format')} is not supported (channels-last only)")


@tf_op("Conv2D", "Conv3D", "DepthwiseConv2dNative")
def conv(tr, op, x, w):
    _nhwc(op)
    x, w = tr.operands(tr.value(x), w)
    strides = tuple(attr(op, "strides"))[1:-1]
    dilations = tuple(attr(op, "dilations", [1] * x.rank))[1:-1]
    window = w.shape[:-2]
    groups = x.shape[-1] // w.shape[-2]
    if op.type == "DepthwiseConv2dNative":
        channels, multiplier = w.shape[-2], w.shape[-1]
        w = tr.b.reshape(w, shape=tuple(window) + (1, channels * multiplier))
        groups = channels
    pads = _window_pads(op, x, window, strides, dilations)
    return tr.b.conv(x, w, strides=strides, dilations=dilations, pads=pads, groups=groups)


@tf_op("MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D")
def pool(tr, op, x):
    _nhwc(op)
    x = tr.value(x)
    window = tuple(attr(op, "ksize"))[1:-1]
    strides = tuple(attr(op, "strides"))[1:-1]
    pads = _window_pads(op, x, window, strides, (1,) * len(window))
    fn = tr.b.max_pool if op.type.startswith("Max") else tr.b.avg_pool
    return fn(x, window=window, strides=strides, pads=pads)


# -- normalization helpers TensorFlow emits as single ops -----------------------------------------------


@tf_op("L2Loss")
def l2_loss(tr, op, x):
    x = tr.value(x)
    total = tr.b.reduce_sum(tr.b.square(x), axes=tuple(range(x.rank)), keepdims=False)
    return tr.b.mul(total, tr.b.const(0.5))


@tf_op("Erfc")
def erfc(tr, op, x):
    return tr.b.sub(tr.b.const(1.0), tr.b.erf(tr.value(x)))
