"""The IR's data structures: TensorType, Value, Node, Graph.

A Graph is a flat single-assignment list of nodes in topological order. Values are
named; a value is defined once, by a graph input, a parameter (a named constant
array) or a node output. One dimension of a shape may be `None`: the dynamic batch
dimension, whose size is only known when the graph runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

DTYPES = ("float32", "int32", "int64", "bool")


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str = "float32"

    def __post_init__(self):
        shape = tuple(None if d is None else int(d) for d in self.shape)
        object.__setattr__(self, "shape", shape)
        if self.dtype not in DTYPES:
            raise ValueError(f"unsupported dtype {self.dtype!r}; kcompile handles {DTYPES}")
        if sum(d is None for d in shape) > 1:
            raise ValueError(f"at most one dynamic dimension is allowed, got shape {shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dynamic_axis(self):
        """Index of the dynamic (batch) dimension, or None when the shape is static."""
        return self.shape.index(None) if None in self.shape else None

    def static_size(self) -> int:
        """Number of elements per unit of the dynamic dimension."""
        return int(np.prod([d for d in self.shape if d is not None], dtype=np.int64))

    def concrete(self, batch: int) -> tuple:
        return tuple(batch if d is None else d for d in self.shape)

    def __str__(self) -> str:
        short = {"float32": "f32", "int32": "i32", "int64": "i64", "bool": "bool"}[self.dtype]
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{short}[{dims}]"


class Value:
    """A named tensor in the graph. Identity matters: nodes hold Value objects."""

    __slots__ = ("name", "type")

    def __init__(self, name: str, type: TensorType):
        self.name = name
        self.type = type

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return self.type.rank

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass
class Node:
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def output(self) -> Value:
        assert len(self.outputs) == 1, f"{self.op} has {len(self.outputs)} outputs"
        return self.outputs[0]

    def attr_key(self) -> tuple:
        """A hashable form of the attributes (for CSE and hashing)."""
        return tuple(sorted(self.attrs.items()))

    def __repr__(self) -> str:
        return f"Node({self.op}, {[v.name for v in self.inputs]} -> {[v.name for v in self.outputs]})"


def freeze(value):
    """Lists and dicts to tuples, recursively, so attributes are hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, np.generic):
        return value.item()
    return value


class Graph:
    """Inputs, nodes (topological order), outputs and params (named constant arrays)."""

    def __init__(self, name: str = "model"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.output_names: list[str] = []
        self.params: dict[str, np.ndarray] = {}
        self.param_values: dict[str, Value] = {}
        self.meta: dict = {}

    # -- parameters -------------------------------------------------------------
    def add_param(self, name: str, array: np.ndarray) -> Value:
        if name in self.param_values:
            raise ValueError(f"duplicate parameter name {name!r}")
        array = np.ascontiguousarray(array)
        value = Value(name, TensorType(array.shape, str(array.dtype)))
        self.params[name] = array
        self.param_values[name] = value
        return value

    def is_param(self, value: Value) -> bool:
        return self.param_values.get(value.name) is value

    def remove_unused_params(self):
        used = {v.name for n in self.nodes for v in n.inputs} | {v.name for v in self.outputs}
        for name in [n for n in self.params if n not in used]:
            del self.params[name]
            del self.param_values[name]

    # -- queries ----------------------------------------------------------------
    def values(self) -> Iterable[Value]:
        yield from self.inputs
        yield from self.param_values.values()
        for node in self.nodes:
            yield from node.outputs

    def producers(self) -> dict:
        """Value name -> the node that defines it."""
        return {v.name: n for n in self.nodes for v in n.outputs}

    def users(self) -> dict:
        """Value name -> list of nodes that read it."""
        result: dict = {}
        for node in self.nodes:
            for v in node.inputs:
                result.setdefault(v.name, []).append(node)
        return result

    def param_count(self) -> int:
        return int(sum(a.size for a in self.params.values()))

    def replace_uses(self, old: Value, new: Value, start: int = 0):
        """Make every node from index `start` on, and the graph outputs, read `new`."""
        for node in self.nodes[start:]:
            node.inputs = [new if v is old else v for v in node.inputs]
        self.outputs = [new if v is old else v for v in self.outputs]

    def copy(self) -> "Graph":
        """A structural copy: new node lists, shared Value objects and param arrays."""
        g = Graph(self.name)
        g.inputs = list(self.inputs)
        g.nodes = [Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), dict(n.meta)) for n in self.nodes]
        g.outputs = list(self.outputs)
        g.output_names = list(self.output_names)
        g.params = dict(self.params)
        g.param_values = dict(self.param_values)
        g.meta = dict(self.meta)
        return g

    def __str__(self) -> str:
        from .printer import format_graph

        return format_graph(self)
