"""GraphBuilder: appends nodes to a Graph with types inferred from the primitive registry.

    b = GraphBuilder("mlp")
    x = b.input("x", (None, 784))
    y = b.relu(b.add(b.matmul(x, b.param(w, "dense/kernel")), b.param(bias, "dense/bias")))
    b.output([y], ["dense"])

Any registered primitive is a method: `b.conv(x, w, strides=..., ...)`.
"""
from __future__ import annotations

import contextlib
import re

import numpy as np

from ..errors import IRError
from .graph import Graph, Node, TensorType, Value, freeze
from .registry import get_primitive


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_./-]", "_", name) or "v"


class GraphBuilder:
    def __init__(self, name: str = "model", graph: Graph | None = None):
        self.graph = graph if graph is not None else Graph(name)
        self._taken = {v.name for v in self.graph.values()}
        self._counter = 0
        self._meta: dict = {}
        self._consts: dict = {}
        self.insert_at: int | None = None  # None appends; an index inserts there (passes)

    # -- naming -------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        base = _sanitize(hint)
        name = base
        while name in self._taken:
            self._counter += 1
            name = f"{base}.{self._counter}"
        self._taken.add(name)
        return name

    @contextlib.contextmanager
    def meta(self, **meta):
        """Annotate every node emitted inside the block (e.g. layer=<keras layer name>)."""
        saved = self._meta
        self._meta = {**saved, **meta}
        try:
            yield
        finally:
            self._meta = saved

    # -- graph inputs, parameters and constants ---------------------------------------
    def input(self, name: str, shape: tuple, dtype: str = "float32") -> Value:
        value = Value(self.fresh(name), TensorType(tuple(shape), dtype))
        self.graph.inputs.append(value)
        return value

    def param(self, array: np.ndarray, name: str = "w") -> Value:
        return self.graph.add_param(self.fresh(name), np.asarray(array))

    def const(self, value, dtype: str = "float32") -> Value:
        """A constant parameter; equal small constants are shared."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 64 else None
        if key is not None and key in self._consts and self._consts[key].name in self.graph.params:
            return self._consts[key]
        v = self.param(array, "const")
        if key is not None:
            self._consts[key] = v
        return v

    def output(self, values: list, names: list | None = None):
        self.graph.outputs = list(values)
        self.graph.output_names = list(names) if names else [v.name for v in values]

    # -- nodes ------------------------------------------------------------------------
    def emit(self, op: str, *inputs: Value, name: str | None = None, **attrs):
        """Append a node; returns its output Value (or a tuple for several outputs)."""
        prim = get_primitive(op)
        for v in inputs:
            if not isinstance(v, Value):
                raise IRError(f"{op}: inputs must be Values, got {type(v).__name__}")
        attrs = {k: freeze(v) for k, v in attrs.items()}
        try:
            types = prim.infer(*[v.type for v in inputs], **attrs)
        except (IRError, TypeError, ValueError) as e:
            layer = self._meta.get("layer")
            where = f" (layer {layer!r})" if layer else ""
            raise IRError(f"{op}{where}: {e}") from None
        single = isinstance(types, TensorType)
        types = [types] if single else list(types)
        hint = name or self._meta.get("layer") or op
        outputs = [Value(self.fresh(hint), t) for t in types]
        node = Node(op, list(inputs), outputs, attrs, dict(self._meta))
        if self.insert_at is None:
            self.graph.nodes.append(node)
        else:
            self.graph.nodes.insert(self.insert_at, node)
            self.insert_at += 1
        return outputs[0] if single else tuple(outputs)

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        get_primitive(op)  # raises for unknown names
        return lambda *inputs, **attrs: self.emit(op, *inputs, **attrs)
