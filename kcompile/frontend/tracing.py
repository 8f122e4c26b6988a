"""Lowering a Keras layer by tracing its `call` with TensorFlow.

For a layer kcompile has no lowering for, the frontend rebuilds the Keras layer (custom.py)
and hands it here:

1. `tf.function(layer).get_concrete_function(TensorSpec(...))` traces `call` into a
   TensorFlow graph, with `None` for the batch dimension.
2. The graph's ops, from the outputs back, are lowered one by one into a small IR graph
   with the table in tf_ops.py. Variables the graph reads become IR parameters that
   remember which of the layer's saved weights they are.
3. That graph is run by the interpreter on a random batch of 2 and compared with the
   Keras layer itself; a mismatch is an error naming the layer.
4. Each call of the layer inlines the small graph into the model graph, its weights as
   the model's parameters (`ctx.weight`), so they stay trainable and a shared layer's
   calls share them.

TensorFlow is imported here only when a layer is traced.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import KcompileError, UnsupportedLayerError
from ..ir import Graph, GraphBuilder, Value, interpret
from .tf_ops import TF_OPS, OpError, is_value

# The check against Keras: looser than the project's test tolerance, which the tests
# assert end to end; this one only catches lowerings that are wrong.
CHECK_TOLERANCE = dict(atol=1e-4, rtol=1e-3)
CHECK_BATCH = 2


@dataclass
class TracedLayer:
    """A layer's call as a small IR graph; weights are params listed in `weights`."""

    graph: Graph
    weights: dict = field(default_factory=dict)  # param name -> (index in ctx.arrays(), role)


def describe(ctx) -> str:
    return f"layer {ctx.name!r} ({ctx.class_name})"


# -- call arguments: Values inside lists, tuples and dicts --------------------------------------


def flatten_values(obj) -> list:
    if isinstance(obj, Value):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [v for o in obj for v in flatten_values(o)]
    if isinstance(obj, dict):
        return [v for k in obj for v in flatten_values(obj[k])]
    return []


def replace_values(obj, leaves: list):
    """obj with its Values replaced, in flatten_values order, by the items of `leaves`."""
    it = iter(leaves)

    def walk(o):
        if isinstance(o, Value):
            return next(it)
        if isinstance(o, (list, tuple)):
            return type(o)(walk(x) for x in o)
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items()}
        return o

    return walk(obj)


def signature(args, kwargs) -> str:
    """A cache key for a call: the structure, with Values replaced by their types."""
    return repr(replace_values((list(args), kwargs), [v.type for v in flatten_values((list(args), kwargs))]))


# -- the tracer ----------------------------------------------------------------------------------


class _IndexContext:
    """What layers.ops.get_item needs of a LayerContext (it lowers StridedSlice on Values)."""

    def __init__(self, b, where):
        self.b = b
        self.where = where

    def error(self, message):
        return OpError(message)


class Tracer:
    """Lowers a traced TensorFlow graph into IR. See tf_ops.py for what each op becomes."""

    def __init__(self, tf, b: GraphBuilder, where: str, class_name: str):
        self.tf = tf
        self.b = b
        self.where = where
        self.class_name = class_name
        self.env: dict = {}  # TF tensor name -> Value | np.ndarray
        self.shim = _IndexContext(b, where)

    # -- helpers for tf_ops ------------------------------------------------------------------
    def numpy_dtype(self, tensor):
        return np.dtype(tensor.dtype.as_numpy_dtype)

    @staticmethod
    def ir_dtype(dtype) -> str:
        dtype = np.dtype(dtype)
        if dtype.kind == "f" or dtype == np.bool_:
            return "float32"
        if dtype == np.int64:
            return "int64"
        if dtype.kind in "iu":
            return "int32"
        raise OpError(f"dtype {dtype} is not supported")

    def const(self, array, dtype: str | None = None) -> Value:
        array = np.asarray(array)
        if array.dtype == object:
            if any(v is None for v in array.ravel()):
                raise OpError("uses the batch size as a tensor value")
            array = array.astype(np.int64)
        return self.b.const(array, dtype=dtype or self.ir_dtype(array.dtype))

    def const_like(self, value, like: Value) -> Value:
        return self.b.const(np.asarray(value), dtype=like.dtype)

    def value(self, x, dtype: str | None = None) -> Value:
        if is_value(x):
            return x
        return self.const(x, dtype)

    def as_float(self, v: Value) -> Value:
        return v if v.dtype == "float32" else self.b.cast(v, dtype="float32")

    def static(self, x, what: str = "value"):
        if is_value(x):
            raise OpError(f"its {what} must be known at compile time, but depends on the input")
        return x

    def operands(self, *xs) -> tuple:
        """Values of one dtype: float32 if any operand is a float Value, else the Values' dtype."""
        values = [x for x in xs if is_value(x)]
        if not values:
            raise OpError("no tensor operand")
        dtypes = {v.dtype for v in values}
        dtype = "float32" if "float32" in dtypes or len(dtypes) > 1 else values[0].dtype
        out = []
        for x in xs:
            if is_value(x):
                out.append(x if x.dtype == dtype else self.b.cast(x, dtype=dtype))
            else:
                out.append(self.const(x, dtype))
        return tuple(out)

    # -- running a graph -------------------------------------------------------------------------
    def error(self, op, message: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"{self.where}: cannot lower the TensorFlow op {op.type} ({op.name!r}) its call uses: {message}"
        )

    def run(self, graph, outputs: list) -> list:
        needed = _needed_ops(outputs)
        for op in graph.get_operations():
            if op.name not in needed:
                continue
            if op.outputs and all(t.name in self.env for t in op.outputs):
                continue  # bound already: inputs, variables, captured constants
            self._lower_op(op)
        return [self.env[t.name] for t in outputs]

    def _lower_op(self, op):
        if op.type == "Const":
            self.env[op.outputs[0].name] = np.asarray(self.tf.make_ndarray(op.get_attr("value")))
            return
        if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            return self._inline_function(op)
        fn = TF_OPS.get(op.type)
        if fn is None:
            raise UnsupportedLayerError(
                f"{self.where}: its call uses the TensorFlow op {op.type} ({op.name!r}), which kcompile cannot "
                f"lower; write a lowering with kcompile.register_layer({self.class_name!r})"
            )
        inputs = []
        for t in op.inputs:
            if t.name not in self.env:
                what = "a variable that is not one of the layer's weights" if t.dtype == self.tf.resource else "unknown"
                raise self.error(op, f"its input {t.name!r} is {what}")
            inputs.append(self.env[t.name])
        try:
            result = fn(self, op, *inputs)
        except OpError as e:
            raise self.error(op, str(e)) from None
        except KcompileError as e:
            raise self.error(op, str(e)) from None
        except (ValueError, TypeError, IndexError) as e:
            raise self.error(op, f"{type(e).__name__}: {e}") from None
        results = result if isinstance(result, list) else [result]
        if len(results) != len(op.outputs):
            raise self.error(op, f"lowered to {len(results)} results for {len(op.outputs)} outputs")
        for tensor, value in zip(op.outputs, results):
            if not is_value(value):
                value = np.asarray(value)
            self.env[tensor.name] = value

    def _inline_function(self, op):
        """A nested tf.function call: lower its body in place."""
        name = op.get_attr("f").name
        function = op.graph._get_function(name)  # noqa: SLF001 (no public accessor)
        body = getattr(function, "graph", None)
        if body is None:
            raise self.error(op, f"the body of function {name!r} is not available")
        inner = Tracer(self.tf, self.b, self.where, self.class_name)
        for placeholder, outer in zip(body.inputs, op.inputs):
            if outer.name not in self.env:
                raise self.error(op, f"its input {outer.name!r} is not known")
            inner.env[placeholder.name] = self.env[outer.name]
        results = inner.run(body, list(body.outputs))
        for tensor, value in zip(op.outputs, results):
            self.env[tensor.name] = value


def _needed_ops(outputs) -> set:
    needed, stack = set(), [t.op for t in outputs]
    while stack:
        op = stack.pop()
        if op.name in needed:
            continue
        needed.add(op.name)
        stack.extend(t.op for t in op.inputs)
    return needed


# -- tracing a layer ----------------------------------------------------------------------------


def _tf_dtype(tf, dtype: str):
    return {"float32": tf.float32, "int32": tf.int32, "int64": tf.int64, "bool": tf.bool}[dtype]


def _handle_ids(variable) -> set:
    """ids of the resource handles a (Keras or TensorFlow) variable is read through."""
    ids = set()
    for candidate in (variable, getattr(variable, "_value", None)):
        try:
            handle = getattr(candidate, "handle", None)
        except Exception:  # noqa: BLE001 (an uninitialized variable raises anything)
            handle = None
        if handle is not None:
            ids.add(id(handle))
    return ids


def _unique(role: str, index: int, taken: set) -> str:
    role = role or f"w{index}"
    if role in taken:
        role = f"{role}_{index}"
    taken.add(role)
    return role


def _constant_variables(keras_layer, saved: list) -> dict:
    """handle id -> value for the layer's variables that are not saved weights (seeds, counters)."""
    saved_ids = {id(v) for v in saved}
    constants = {}
    for variable in getattr(keras_layer, "variables", []):
        if id(variable) not in saved_ids:
            for handle_id in _handle_ids(variable):
                constants[handle_id] = np.asarray(variable.numpy())
    return constants


def trace_layer(tf, ctx, keras_layer, variables: list, args, kwargs) -> TracedLayer:
    """Trace keras_layer(*args, **kwargs) into a small IR graph.

    variables: [(variable, role)] for the layer's saved weights, in ctx.arrays() order."""
    where = describe(ctx)
    flat = flatten_values((list(args), kwargs))
    specs = [tf.TensorSpec(v.shape, _tf_dtype(tf, v.dtype)) for v in flat]

    def call(*tensors):
        call_args, call_kwargs = replace_values((list(args), kwargs), list(tensors))
        return keras_layer(*call_args, **call_kwargs, training=False)

    try:
        concrete = tf.function(call).get_concrete_function(*specs)
    except Exception as e:  # noqa: BLE001 (TensorFlow and user code raise anything)
        raise UnsupportedLayerError(f"{where}: TensorFlow cannot trace its call: {type(e).__name__}: {e}") from e

    b = GraphBuilder(f"traced_{ctx.name}")
    tracer = Tracer(tf, b, where, ctx.class_name)
    for i, (placeholder, value) in enumerate(zip(concrete.inputs, flat)):
        v = b.input(f"input{i}", value.shape, value.dtype)
        tracer.env[placeholder.name] = b.cast(v, dtype="float32") if v.dtype == "bool" else v

    arrays = ctx.arrays()
    index_of = {}
    for index, (variable, _) in enumerate(variables):
        for handle_id in _handle_ids(variable):
            index_of[handle_id] = index
    constants = _constant_variables(keras_layer, [v for v, _ in variables])
    roles: set = set()
    weights = {}
    bound: dict = {}
    for external, internal in concrete.graph.captures:
        if external.dtype == tf.resource:
            index = index_of.get(id(external))
            if index is None:
                if id(external) in constants:  # not a weight: its current value
                    tracer.env[internal.name] = constants[id(external)]
                continue  # a variable of another object: an error if an op needs it
            if index not in bound:
                param = b.param(np.asarray(arrays[index]), f"w{index}")
                weights[param.name] = (index, _unique(variables[index][1], index, roles))
                bound[index] = param
            tracer.env[internal.name] = bound[index]
        else:
            tracer.env[internal.name] = np.asarray(external.numpy())

    outputs = tracer.run(concrete.graph, list(concrete.outputs))
    values = []
    for tensor, out in zip(concrete.outputs, outputs):
        if not is_value(out):  # a layer whose output does not depend on its input
            out = tracer.const(out, tracer.ir_dtype(tracer.numpy_dtype(tensor)))
        values.append(out)
    b.output(values, [f"output{i}" for i in range(len(values))])
    return TracedLayer(b.graph, weights)


def check_against_keras(tf, ctx, traced: TracedLayer, keras_layer, args, kwargs, seed: int = 0):
    """Run the traced graph and the Keras layer on one random batch; raise on a mismatch."""
    rng = np.random.default_rng(seed)
    arrays = []
    for v in traced.graph.inputs:
        shape = v.type.concrete(CHECK_BATCH)
        if v.dtype == "float32":
            arrays.append(rng.normal(0, 1, shape).astype(np.float32))
        elif v.dtype == "bool":
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        else:
            arrays.append(rng.integers(0, 3, shape).astype(v.dtype))
    got = interpret(traced.graph, arrays)
    call_args, call_kwargs = replace_values((list(args), kwargs), [tf.constant(a) for a in arrays])
    expected = [np.asarray(t) for t in tf.nest.flatten(keras_layer(*call_args, **call_kwargs, training=False))]
    if len(got) != len(expected):
        raise UnsupportedLayerError(
            f"{describe(ctx)}: the traced call has {len(got)} outputs, the Keras layer {len(expected)}"
        )
    for i, (g, e) in enumerate(zip(got, expected)):
        e = e.astype(np.float32) if e.dtype == np.bool_ else e
        if g.shape != e.shape:
            raise UnsupportedLayerError(
                f"{describe(ctx)}: the traced call gives output {i} the shape {g.shape}, Keras gives {e.shape}"
            )
        bad = np.abs(g - e) > CHECK_TOLERANCE["atol"] + CHECK_TOLERANCE["rtol"] * np.abs(e)
        if np.any(bad | (np.isnan(g) != np.isnan(e))):
            worst = float(np.nanmax(np.abs(g - e))) if g.size else 0.0
            raise UnsupportedLayerError(
                f"{describe(ctx)}: the traced call does not match the Keras layer on a random input "
                f"(output {i}, max |diff| {worst:.3g}); write a lowering with "
                f"kcompile.register_layer({ctx.class_name!r})"
            )


def inline(ctx, traced: TracedLayer, inputs: list) -> list:
    """Emit the traced graph into the model graph; returns the output Values."""
    b = ctx.b
    mapping = {v.name: x for v, x in zip(traced.graph.inputs, inputs)}
    for name, param in traced.graph.param_values.items():
        if name in traced.weights:
            index, role = traced.weights[name]
            mapping[name] = ctx.weight(index, role)
        else:
            array = traced.graph.params[name]
            mapping[name] = b.const(array, dtype=str(array.dtype))
    for node in traced.graph.nodes:
        outs = b.emit(node.op, *[mapping[v.name] for v in node.inputs], **node.attrs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for v, out in zip(node.outputs, outs):
            mapping[v.name] = out
    return [mapping[v.name] for v in traced.graph.outputs]


def lower_by_tracing(provide, ctx, *args, **kwargs):
    """The lowering of a layer without one: trace it once per signature, then inline.

    provide(ctx, args, kwargs) -> (tf, keras layer, [(variable, role)] in ctx.arrays() order)."""
    cache = ctx.walker.__dict__.setdefault("_traced_layers", {})
    key = (ctx.path, signature(args, kwargs))
    traced = cache.get(key)
    if traced is None:
        tf, keras_layer, variables = provide(ctx, args, kwargs)
        traced = trace_layer(tf, ctx, keras_layer, variables, args, kwargs)
        check_against_keras(tf, ctx, traced, keras_layer, args, kwargs)
        cache[key] = traced
    outputs = inline(ctx, traced, flatten_values((list(args), kwargs)))
    return outputs[0] if len(outputs) == 1 else tuple(outputs)
