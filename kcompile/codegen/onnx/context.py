"""LoweringContext: what a lowering function writes to while one Graph becomes ONNX.

A lowering reads IR values through `ctx.name(value)` (a parameter becomes an
initializer the first time it is read, once however many nodes read it), appends ONNX
nodes with `ctx.node(...)`, makes constants with `ctx.const(...)`, and finally says
which ONNX tensor holds each IR output with `ctx.bind(value, name)`.

Lowerings may also build IR and lower that (`ctx.emit_ir`: a primitive's decomposition,
an RNN's input projection) or turn a whole IR graph into an ONNX subgraph
(`ctx.subgraph`: the body of a Scan), whose nodes may read the enclosing graph's tensors.
"""
from __future__ import annotations

import itertools

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ...errors import KcompileError
from ...ir import Graph, GraphBuilder, TensorType, Value, get_primitive
from ..common import unique_name
from .cleanup import (cancel_squeezes, cancel_transposes, fold_transpose_into_weights, remove_dead, rename_inputs,
                      sink_transposes, unit_transposes_to_reshapes)

ONNX_DTYPES = {
    "float32": TensorProto.FLOAT,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "bool": TensorProto.BOOL,
}
BATCH = "batch"  # the dim_param of the dynamic dimension


def value_info(name: str, type: TensorType):
    shape = [BATCH if d is None else d for d in type.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[type.dtype], shape)


class LoweringContext:
    def __init__(self, graph: Graph, opset: int, lowerings: dict, reserved=(), parent=None):
        self.graph = graph
        self.opset = opset
        self.lowerings = lowerings
        self.parent = parent  # the context of the enclosing graph, for a subgraph
        self.nodes: list = []  # onnx NodeProto, in order
        self.initializers: list = []  # onnx TensorProto
        self._names: dict = {}  # id(IR Value) -> ONNX tensor name
        self._shapes: dict = {}  # ONNX tensor name -> IR shape, for what bind() named
        self._params: dict = {id(v): graph.params[name] for name, v in graph.param_values.items()}
        self._keep_alive: list = []  # scratch Values and graphs whose ids key the dicts here
        self._lazy: dict = {}  # id(IR Value) -> thunk making its ONNX tensor on first use
        self._derived: dict = {}  # (id(param), tag) -> initializer name
        self._consts: dict = {}  # (dtype, shape, bytes) -> initializer name
        # Names are unique across the model, subgraphs included.
        self._taken: set = parent._taken if parent else set(reserved)
        self._node_ids = parent._node_ids if parent else itertools.count(1)
        self._hint = "onnx"  # prefix for the names of what the current IR node emits

    # -- names ----------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        return unique_name(hint, self._taken, ".", 1)

    def new_name(self, what: str) -> str:
        """A fresh tensor name for something the current IR node computes."""
        return self.fresh(f"{self._hint}/{what}")

    def bind(self, value: Value, name: str):
        """`name` is the ONNX tensor holding IR `value`."""
        self._names[id(value)] = name
        self._shapes.setdefault(name, tuple(value.shape))

    def bind_lazy(self, value: Value, make):
        """`make()` emits what computes `value`; it runs the first time `value` is read."""
        self._keep_alive.append(value)
        self._lazy[id(value)] = make

    def name(self, value: Value) -> str:
        """The ONNX tensor holding `value`; a parameter becomes an initializer on first use."""
        key = id(value)
        if key not in self._names:
            if key in self._lazy:
                self._names[key] = self._lazy.pop(key)()
            elif key in self._params:
                self._names[key] = self.initializer(self._params[key], value.name)
            elif self.parent is not None:
                return self.parent.name(value)  # a subgraph reading its enclosing graph
            else:
                raise KcompileError(f"ONNX export: value {value.name!r} is read before it is defined")
        return self._names[key]

    def param_array(self, value: Value):
        """The constant array behind `value`, or None when it is computed at run time."""
        array = self._params.get(id(value))
        if array is None and self.parent is not None and id(value) not in self._names:
            return self.parent.param_array(value)
        return array

    # -- initializers and constants -----------------------------------------------------------
    def initializer(self, array: np.ndarray, hint: str) -> str:
        array = np.asarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, value, dtype: str = "float32") -> str:
        """A constant tensor; equal small constants are one initializer."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 64 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.initializer(array, "const")
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, values) -> str:
        """An int64 vector constant (shapes, axes, pads)."""
        return self.const(np.asarray(list(values), np.int64), "int64")

    def derived(self, value: Value, tag: str, transform) -> str | None:
        """An initializer computed once from parameter `value` (a transposed kernel, a
        packed bias); None when `value` is not a parameter."""
        if self.parent is not None and id(value) not in self._params:
            return self.parent.derived(value, tag, transform)
        array = self.param_array(value)
        if array is None:
            return None
        key = (id(value), tag)
        if key not in self._derived:
            self._derived[key] = self.initializer(transform(array), f"{value.name}.{tag}")
        return self._derived[key]

    # -- nodes ------------------------------------------------------------------------------------
    def node(self, op_type: str, inputs, outputs=1, **attrs):
        """Append an ONNX node; returns its output name (a list when outputs > 1).
        `outputs` is a count (fresh names) or a list of names ("" skips an optional one)."""
        if isinstance(outputs, int):
            outputs = [self.new_name(op_type) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        name = f"{self._hint}/{op_type}_{next(self._node_ids)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name, **attrs))
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def cast(self, name: str, dtype: str) -> str:
        return self.node("Cast", [name], to=ONNX_DTYPES[dtype])

    def transpose(self, name: str, perm) -> str:
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return name
        return self.node("Transpose", [name], perm=perm)

    def reshape(self, name: str, shape) -> str:
        """Reshape to an IR shape: the `None` (batch) dimension becomes -1."""
        return self.node("Reshape", [name, self.ints(-1 if d is None else d for d in shape)])

    def unsqueeze(self, name: str, axes) -> str:
        return self.node("Unsqueeze", [name, self.ints(axes)])

    def squeeze(self, name: str, axes) -> str:
        return self.node("Squeeze", [name, self.ints(axes)])

    def slice(self, name: str, starts, ends, axes, steps=None) -> str:
        inputs = [name, self.ints(starts), self.ints(ends), self.ints(axes)]
        if steps is not None:
            inputs.append(self.ints(steps))
        return self.node("Slice", inputs)

    def reduce(self, op_type: str, name: str, axes, keepdims: bool) -> str:
        """ReduceSum/Mean/Max/Min: axes are an input from opset 18 (13 for ReduceSum)."""
        axes = [int(a) for a in axes]
        if self.opset >= 18 or (op_type == "ReduceSum" and self.opset >= 13):
            return self.node(op_type, [name, self.ints(axes)], keepdims=int(keepdims))
        return self.node(op_type, [name], axes=axes, keepdims=int(keepdims))

    # -- lowering IR ------------------------------------------------------------------------------
    def lower(self, node):
        """Lower one IR node through the table (or its primitive's decomposition)."""
        saved = self._hint
        self._hint = node.outputs[0].name if node.outputs else node.op
        try:
            rule = self.lowerings.get(node.op)
            if rule is not None:
                rule(self, node)
            else:
                self.lower_decomposed(node)
        finally:
            self._hint = saved
        for v in node.outputs:
            if id(v) not in self._names:
                raise KcompileError(f"ONNX lowering of {node.op} did not produce {v.name!r}")

    def emit_ir(self, build) -> list:
        """Build IR with `build(b)` (a GraphBuilder over a scratch graph; it may use any
        Value this context can read) and lower it; returns the ONNX names of the Value
        or Values `build` returns."""
        scratch = Graph("scratch")
        out = build(GraphBuilder(graph=scratch))
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        for name, value in scratch.param_values.items():
            self._params[id(value)] = scratch.params[name]
        self._keep_alive.append(scratch)
        for node in scratch.nodes:
            self.lower(node)
        return [self.name(v) for v in outs]

    def lower_decomposed(self, node):
        """Lower a node as its primitive's decomposition (simpler primitives)."""
        prim = get_primitive(node.op)
        if prim.decompose is None:
            raise KcompileError(f"ONNX export: primitive {node.op!r} has neither an ONNX lowering nor a decomposition")
        outs = self.emit_ir(lambda b: prim.decompose(b, *node.inputs, **node.attrs))
        for value, name in zip(node.outputs, outs):
            self.bind(value, name)

    def decompose(self, op: str, names, types, attrs) -> list:
        """Primitive `op`'s decomposition over ONNX tensors `names` of IR `types`."""
        values = [Value(f"{op}_in{k}", t) for k, t in enumerate(types)]
        for value, name in zip(values, names):
            self.bind(value, name)
        self._keep_alive.extend(values)
        prim = get_primitive(op)
        return self.emit_ir(lambda b: prim.decompose(b, *values, **dict(attrs)))

    def lower_graph(self, input_names: list, output_names: list):
        """Lower this context's whole IR graph into an onnx.GraphProto with the given
        input and output names."""
        graph = self.graph
        for value, name in zip(graph.inputs, input_names):
            self.bind(value, name)
        for node in graph.nodes:
            self.lower(node)
        self._bind_outputs(output_names)
        keep = set(output_names)
        nodes = cancel_squeezes(self.nodes, self.initializers, keep)
        nodes, initializers = remove_dead(cancel_transposes(nodes, keep), self.initializers, keep)
        nodes = sink_transposes(nodes, initializers, keep, self.fresh)
        nodes = fold_transpose_into_weights(cancel_transposes(nodes, keep), initializers, self._shapes, self.fresh)
        nodes, initializers = remove_dead(nodes, initializers, keep)
        nodes = unit_transposes_to_reshapes(nodes, initializers, self._shapes, self.fresh)
        return helper.make_graph(
            nodes, graph.name,
            [value_info(n, v.type) for n, v in zip(input_names, graph.inputs)],
            [value_info(n, v.type) for n, v in zip(output_names, graph.outputs)],
            initializer=initializers,
        )

    def _bind_outputs(self, output_names: list):
        """Give the graph's outputs their names: the node computing an output is renamed;
        inputs, initializers, outer tensors and repeated outputs go through Identity."""
        produced = {name for node in self.nodes for name in node.output}
        renames: dict = {}
        for value, out_name in zip(self.graph.outputs, output_names):
            src = self.name(value)
            if src == out_name:
                continue
            if src in produced and src not in renames:
                renames[src] = out_name
            else:
                self.node("Identity", [src], outputs=[out_name])
        for node in self.nodes:
            rename_inputs(node, renames)
            node.output[:] = [renames.get(n, n) for n in node.output]

    def subgraph(self, graph: Graph):
        """An IR graph as an ONNX subgraph (a Scan or Loop body) of this context's graph;
        its nodes may read tensors of the enclosing graph."""
        sub = LoweringContext(graph, self.opset, self.lowerings, parent=self)
        inputs = [self.fresh(f"{graph.name}/{v.name}") for v in graph.inputs]
        outputs = [self.fresh(f"{graph.name}/{name}") for name in graph.output_names]
        return sub.lower_graph(inputs, outputs)
