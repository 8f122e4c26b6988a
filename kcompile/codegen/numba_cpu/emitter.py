"""Builds the generated module's source.

The module holds the model's generated elementwise kernels and one plain-Python
function, `bind(batch, arena, W, WI, WL, X)`, that cuts the arena and the constant pools
into the views each node reads and writes, and returns the model as a list of
`(kernel, arguments)` steps. A call then copies the inputs in and runs the steps:
binding happens once per batch size, so a call costs one dispatch per kernel, and
Numba compiles only small functions (the kernel library itself is compiled once per
machine)."""
from __future__ import annotations

from ...ir import Graph, Value
from ...ir.graph import Node
from ...passes.memory import MemoryPlan
from ..common import tuple_text
from ..numba_shared import BindEmitter


class Emitter(BindEmitter):
    """What a lowering writes with: names for values, shape expressions, constants,
    generated kernels, and the steps of the model."""

    def __init__(self, graph: Graph, plan: MemoryPlan, threaded_from: int):
        super().__init__(graph, plan, reserved={"batch", "arena", "W", "WI", "WL", "X", "steps", "labels"})
        self.label = ""
        self.threaded_from = threaded_from  # elements per sample from which elementwise kernels use threads

    def begin_node(self, node: Node):
        self.label = f"{node.meta.get('layer', '')}: {node.op}"

    def shape(self, value: Value) -> str:
        return tuple_text(self.dims(value))

    def scratch(self, hint: str, shape: str, dtype: str = "float32") -> str:
        """A buffer bound once per batch size outside the arena (RNN projections)."""
        name = self.fresh(hint)
        self.lines.append(f"{name} = np.empty({shape}, np.{dtype})")
        return name

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
