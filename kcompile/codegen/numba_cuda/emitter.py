"""Builds the generated module's source (the CUDA counterpart of numba_cpu.emitter).

The module holds one generated kernel per node (two for matrix products: tiled and
skinny) and one plain-Python function, `bind(batch, arena, W, WI, WL)`, that cuts the
device arena and the device-resident constant pools into the views each kernel reads
and writes, and returns the model as a list of launches `(kernel, grid, block, args)`.
Binding happens once per batch size; a call copies the inputs in, launches the steps on
one stream and copies the outputs out."""
from __future__ import annotations

import numpy as np

from ...ir import Graph, Value
from ...passes.memory import MemoryPlan
from ..common import tuple_text
from ..numba_shared import BindEmitter


class Emitter(BindEmitter):
    """What a lowering writes with: names for values, views of the arena and the pools,
    generated kernels, and the launches of the model."""

    numpy_dtypes = {"bool": "bool_"}

    def __init__(self, graph: Graph, plan: MemoryPlan):
        # bind()'s own names and the generated module's globals (a view must not shadow them)
        super().__init__(graph, plan, reserved={
            "batch", "arena", "W", "WI", "WL", "steps", "flags", "bind", "cuda", "np", "math", "float32", "int32",
            "int64", "blocks", "gemm_step", "ZERO", "ONE", "HALF", "NEG_INF", "POS_INF", "TPB", "MAX_BLOCKS", "TT",
            "TR", "TM", "TK", "SA_COLS", "SKINNY_ROWS", "COLS", "SPLIT", "CACHE",
        })
        self.checks = False  # whether some kernel reports bad input through `flags`

    # -- names and views ---------------------------------------------------------------
    def reserve(self, *names: str):
        self._used_names.update(names)

    def taken(self, name: str) -> bool:
        return name in self._used_names

    def size(self, value: Value) -> str:
        """Number of elements, as an expression of `batch`."""
        dims = self.dims(value)
        return " * ".join(dims) if dims else "1"

    def view(self, value: Value, dims) -> str:
        """`value` reshaped to `dims` (ints or expressions); -1 stands for the one dimension
        holding the batch, resolved from the value's size."""
        dims = [str(d) for d in dims]
        if "-1" in dims:
            dims[dims.index("-1")] = self._remaining(value, [d for d in dims if d != "-1"])
        if dims == self.dims(value):
            return self.ref(value)
        return f"{self.ref(value)}.reshape({tuple_text(dims)})"

    def _remaining(self, value: Value, known: list) -> str:
        """The size of the one unknown dimension of a view of `value`."""
        static = value.type.static_size()
        if all(d.isdigit() for d in known):
            product = int(np.prod([int(d) for d in known], dtype=np.int64))
            if product and static % product == 0:
                ratio = static // product
                if value.type.dynamic_axis is None:
                    return str(ratio)
                factor = int(self.plan.factors.get(value.name, 1)) * ratio
                return "batch" if factor == 1 else f"batch * {factor}"
        return f"({self.size(value)}) // ({' * '.join(known) or '1'})"

    def flat(self, value: Value) -> str:
        return self.view(value, [self.size(value)])

    # -- scratch and launches -------------------------------------------------------------
    def scratch(self, hint: str, shape: str, dtype: str = "float32") -> str:
        """A device buffer bound once per batch size outside the arena (RNN projections)."""
        name = self.fresh(hint)
        self.lines.append(f"{name} = cuda.device_array({shape}, np.{dtype})")
        return name

    def comment(self, text: str):
        self.lines.append(f"# {text}")

    def launch(self, kernel: str, grid: str, block: str, *args: str):
        """One step of the model: `kernel[grid, block, stream](*args)` at each call."""
        self.lines.append(f"steps.append(({kernel}, {grid}, {block}, {tuple_text(args)}))")

    def launch_1d(self, kernel: str, work: str, *args: str):
        self.launch(kernel, f"blocks({work})", "TPB", *args)

    def launch_gemm(self, kernel: str, zs: str, rows: str, cols: int, *args: str):
        """A matrix product: the tiled or the skinny kernel, whichever suits the rows."""
        self.lines.append(f"steps.append(gemm_step({kernel}, {kernel}_skinny, {zs}, {rows}, {cols}, {tuple_text(args)}))")
