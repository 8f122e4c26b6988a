"""Builds the generated module's source.

The module holds the model's generated elementwise kernels and one plain-Python
function, `bind(batch, arena, W, WI, WL, X)`, that cuts the arena and the constant pools
into the views each node reads and writes, and returns the model as a list of
`(kernel, arguments)` steps. A call then copies the inputs in and runs the steps:
binding happens once per batch size, so a call costs one dispatch per kernel, and
Numba compiles only small functions (the kernel library itself is compiled once per
machine)."""
from __future__ import annotations

import numpy as np

from ...ir import Graph, Value
from ...passes.memory import ITEMSIZE, MemoryPlan
from ..common import ConstantPool, identifier

class Emitter:
    """What a lowering writes with: names for values, shape expressions, constants,
    generated kernels, and the steps of the model."""

    def __init__(self, graph: Graph, plan: MemoryPlan):
        self.graph = graph
        self.plan = plan
        self.pool = ConstantPool()
        self.kernels: list = []  # source of generated per-node kernels
        self.lines: list = []  # body of bind(): views, then steps
        self.names: dict = {}
        self.values = {v.name: v for v in graph.values()}
        self._used_names: set = {"batch", "arena", "W", "WI", "WL", "X", "steps", "labels"}
        self.label = ""
        self._consts: dict = {}

    # -- names and views ---------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        base = identifier(hint)[:40] or "v"
        base = base if base[0].isalpha() else f"v_{base}"
        name, k = base, 1
        while name in self._used_names:
            k += 1
            name = f"{base}_{k}"
        self._used_names.add(name)
        return name

    def dims(self, value: Value) -> list:
        """The concrete dimensions as expressions of `batch`."""
        factor = int(self.plan.factors.get(value.name, 1))
        return [("batch" if factor == 1 else f"batch * {factor}") if d is None else str(d) for d in value.shape]

    def shape(self, value: Value) -> str:
        dims = self.dims(value)
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def ref(self, value: Value) -> str:
        """The variable holding `value`'s array in bind(), declared on first use."""
        if value.name in self.names:
            return self.names[value.name]
        storage = self.plan.storage[value.name]
        name = self.fresh(value.name)
        self.names[value.name] = name
        if storage[0] == "param":
            self.lines.append(f"{name} = {self.pool.add(self.graph.params[value.name])}")
        elif storage[0] == "external":
            self.lines.append(f"{name} = X[{storage[1]}]")
        elif storage[0] == "view":
            self.lines.append(f"{name} = {self.ref(self.values[storage[1]])}.reshape({self.shape(value)})")
        else:
            buf = self.plan.buffers[storage[1]]
            per = value.type.static_size() * ITEMSIZE[value.dtype] * max(int(self.plan.factors[value.name]), 1)
            if buf.dynamic:
                span = f"arena[{buf.offset} * batch : {buf.offset + per} * batch]"
            else:
                start = f"{self.plan.per_sample_bytes} * batch + {buf.offset}"
                span = f"arena[{start} : {start} + {per}]"
            self.lines.append(f"{name} = {span}.view(np.{value.dtype}).reshape({self.shape(value)})")
        return name

    # -- constants, kernels and steps ---------------------------------------------------
    def const(self, array: np.ndarray, key=None) -> str:
        """A compile-time constant (packed weights, tables) as a pool view expression."""
        if key is not None and key in self._consts:
            return self._consts[key]
        expr = self.pool.add(np.asarray(array))
        if key is not None:
            self._consts[key] = expr
        return expr

    def param_array(self, value: Value):
        return self.graph.params.get(value.name) if self.graph.is_param(value) else None

    def scratch(self, hint: str, shape: str, dtype: str = "float32") -> str:
        """A buffer bound once per batch size outside the arena (RNN projections)."""
        name = self.fresh(hint)
        self.lines.append(f"{name} = np.empty({shape}, np.{dtype})")
        return name

    def add_kernel(self, source: str):
        self.kernels.append(source)

    def comment(self, text: str):
        self.lines.append(f"# {text}")
        self.label = text

    def call(self, function: str, *args: str, indent: int = 0):
        """One step of the model: `function(*args)` at each call."""
        arguments = ", ".join(args) + ("," if len(args) == 1 else "")
        pad = "    " * indent
        self.lines.append(f"{pad}steps.append(({function}, ({arguments})))")
        self.lines.append(f"{pad}labels.append({self.label!r})")

    def line(self, text: str):
        """A raw line of bind() (a condition on the batch size, say)."""
        self.lines.append(text)
