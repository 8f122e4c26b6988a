"""What the Numba CPU and Numba CUDA backends share: the scalar templates of the
elementwise primitives, the emitter base that writes the generated `bind()` (names,
arena and pool views), per-thread bindings, and the resize and RNN operand helpers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KcompileError
from ..ir import Graph, Value
from ..ir.graph import Node
from ..ir.ops.shape import resize_source
from ..passes.memory import ITEMSIZE, MemoryPlan
from .common import ConstantPool, identifier, index_text, tuple_text, unique_name

# -- elementwise programs -------------------------------------------------------------------------------------

# Scalar expression templates of the elementwise primitives, as the Numba backends write
# them: {0}, {1}, {2} are the operands, {zero} and {one} constants of the result's dtype.
# The backends override the few that they compute differently (sigmoid, sign, ...).
SCALAR_TEMPLATES = {
    "identity": "{0}",
    "neg": "(-{0})",
    "abs": "abs({0})",
    "exp": "math.exp({0})",
    "log": "math.log({0})",
    "log1p": "math.log1p({0})",
    "expm1": "math.expm1({0})",
    "sqrt": "math.sqrt({0})",
    "rsqrt": "({one} / math.sqrt({0}))",
    "square": "({0} * {0})",
    "reciprocal": "({one} / {0})",
    "tanh": "math.tanh({0})",
    "relu": "max({0}, {zero})",
    "erf": "math.erf({0})",
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "pow": "({0} ** {1})",
    "maximum": "max({0}, {1})",
    "minimum": "min({0}, {1})",
    "greater": "({one} if {0} > {1} else {zero})",
    "greater_equal": "({one} if {0} >= {1} else {zero})",
    "less": "({one} if {0} < {1} else {zero})",
    "less_equal": "({one} if {0} <= {1} else {zero})",
    "equal": "({one} if {0} == {1} else {zero})",
    "not_equal": "({one} if {0} != {1} else {zero})",
    "relu_grad": "({0} if {1} > {zero} else {zero})",
    "where": "({1} if {0} != 0 else {2})",
}


def broadcast_index(input_shape, out_shape, coords, starts=None) -> str:
    """Index of an operand broadcast against the output: 0 along its stretched axes, then
    shifted by `starts` (per operand axis: where it begins in the array passed for it)."""
    offset = len(out_shape) - len(input_shape)
    starts = starts or (0,) * len(input_shape)
    index = []
    for j, (d, start) in enumerate(zip(input_shape, starts)):
        stretched = d == 1 and out_shape[offset + j] != 1
        coord = "0" if stretched else coords[offset + j]
        index.append(coord if not start else (str(start) if stretched else f"{coord} + {start}"))
    return index_text(index)


# -- the Numba backends' emitter ------------------------------------------------------------------------------


class BindEmitter:
    """What the Numba backends' emitters share: unique names in the generated `bind()`,
    shape expressions of `batch`, views of the arena and the constant pools, and the
    generated kernels. A subclass adds how steps are written."""

    # How a value's dtype is spelled as np.<name> in bind() (a subclass may rename one).
    numpy_dtypes: dict = {}

    def __init__(self, graph: Graph, plan: MemoryPlan, reserved):
        self.graph = graph
        self.plan = plan
        self.pool = ConstantPool()
        self.kernels: list = []  # source of the generated kernels
        self.lines: list = []  # body of bind(): views, then steps
        self.names: dict = {}
        self.values = {v.name: v for v in graph.values()}
        self._used_names: set = set(reserved)  # bind()'s own names: a view must not shadow them
        self._consts: dict = {}
        self._shared_kernels: dict = {}  # kernel source, named "kernel" and without docstring -> name

    # -- names and views ---------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        base = identifier(hint)[:40] or "v"
        base = base if base[0].isalpha() else f"v_{base}"
        return unique_name(base, self._used_names, "_", 2)

    def dims(self, value: Value) -> list:
        """The concrete dimensions as expressions of `batch`."""
        factor = int(self.plan.factors.get(value.name, 1))
        return [("batch" if factor == 1 else f"batch * {factor}") if d is None else str(d) for d in value.shape]

    def ref(self, value: Value) -> str:
        """The variable holding `value`'s array in bind(), declared on first use."""
        if value.name in self.names:
            return self.names[value.name]
        storage = self.plan.storage[value.name]
        name = self.fresh(value.name)
        self.names[value.name] = name
        shape = tuple_text(self.dims(value))
        if storage[0] == "param":
            self.lines.append(f"{name} = {self.pool.add(self.graph.params[value.name])}")
        elif storage[0] == "external":  # an array the caller owns, bound as X[k]
            self.lines.append(f"{name} = X[{storage[1]}]")
        elif storage[0] == "view":
            self.lines.append(f"{name} = {self.ref(self.values[storage[1]])}.reshape({shape})")
        elif storage[0] == "transposed":
            self.lines.append(f"{name} = {self.ref(self.values[storage[1]])}.T")
        else:
            dtype = self.numpy_dtypes.get(value.dtype, value.dtype)
            self.lines.append(f"{name} = {self._arena_span(value)}.view(np.{dtype}).reshape({shape})")
        return name

    def _arena_span(self, value: Value) -> str:
        """The bytes of the arena holding `value`: per sample for a buffer that grows
        with the batch, else after all the per-sample buffers."""
        buf = self.plan.buffers[self.plan.storage[value.name][1]]
        per = value.type.static_size() * ITEMSIZE[value.dtype] * max(int(self.plan.factors[value.name]), 1)
        if buf.dynamic:
            return f"arena[{buf.offset} * batch : {buf.offset + per} * batch]"
        start = f"{self.plan.per_sample_bytes} * batch + {buf.offset}"
        return f"arena[{start} : {start} + {per}]"

    # -- constants and kernels ------------------------------------------------------------
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

    def add_kernel(self, source: str):
        self.kernels.append(source)

    def shared_kernel(self, hint: str, source_for, doc: str) -> str:
        """The name of a generated kernel whose source is `source_for(name, doc)`: kernels
        with the same code (their docstrings aside) are written, and compiled, once (a
        ResNet's backward pass repeats a few dozen elementwise bodies hundreds of times);
        the first one's doc stays."""
        key = source_for("kernel", "")
        name = self._shared_kernels.get(key)
        if name is None:
            name = self._shared_kernels[key] = self.fresh(hint)
            self.kernels.append(source_for(name, doc))
        return name

    def begin_node(self, node: Node):
        """Called before each node's lowering (the CPU emitter labels its steps)."""


def lower_nodes(em: BindEmitter, graph: Graph, lowerings: dict, backend: str):
    """Write every node of `graph` with its lowering from `lowerings`."""
    for node in graph.nodes:
        em.begin_node(node)
        lower = lowerings.get(node.op)
        if lower is None:
            raise KcompileError(f"the {backend} backend has no lowering for primitive {node.op!r}")
        lower(em, node)


def bound_for_thread(local, batch: int, bind):
    """This thread's binding for `batch` (from `bind(batch)` on first use), kept in the
    threading.local `local`: each thread gets its own arena, so calls from several
    threads never share buffers. A few batch sizes are kept per thread."""
    cache = getattr(local, "bound", None)
    if cache is None:
        cache = local.bound = {}
    entry = cache.get(batch)
    if entry is None:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        entry = cache[batch] = bind(batch)
    return entry


# -- lowering helpers both Numba backends use ---------------------------------------------------------------


def resize_geometry(node: Node, backend: str) -> tuple:
    """(spatial_in, spatial_out) of a resize node, always 2-D: a rank-3 input (one
    spatial axis) is treated as one row high."""
    x = node.inputs[0]
    if x.rank not in (3, 4):
        raise KcompileError(f"resize of a rank-{x.rank} tensor is not supported by the {backend} backend")
    spatial_in = (1,) * (4 - x.rank) + tuple(x.shape[1:-1])
    spatial_out = (1,) * (4 - x.rank) + tuple(node.attrs["sizes"])
    return spatial_in, spatial_out


def resize_tables(em: BindEmitter, spatial_in, spatial_out, method: str) -> list:
    """The source positions of a resize as pool constants, per spatial axis: its indices
    (nearest), or the lower and upper indices and the fraction between them (bilinear)."""
    tables = [resize_source(o, i, method) for o, i in zip(spatial_out, spatial_in)]
    if method == "nearest":
        return [em.const(np.asarray(index, np.int64)) for index, _ in tables]
    args = []
    for (lo, hi), frac in tables:
        args += [em.const(np.asarray(lo, np.int64)), em.const(np.asarray(hi, np.int64)),
                 em.const(np.asarray(frac, np.float32))]
    return args


@dataclass
class RnnOperands:
    """A recurrent node's operands, with its bias split into the part added to the input
    projection and the part added inside the recurrence (zeros unless the bias has two rows)."""

    x: Value
    kernel: Value
    recurrent: Value
    mask: Value | None
    states: list
    units: int
    steps: int
    gates: int
    input_bias: np.ndarray
    recurrent_bias: np.ndarray
    reset_after: bool


def rnn_operands(em: BindEmitter, node: Node, backend: str) -> RnnOperands:
    a = node.attrs
    x, kernel, recurrent, bias = node.inputs[:4]
    rest = node.inputs[4:]
    mask = rest[0] if a["has_mask"] else None
    states = rest[1:] if a["has_mask"] else rest
    gates = kernel.shape[-1]
    bias_array = em.param_array(bias)
    if bias_array is None:
        raise KcompileError(f"{node.op} {node.meta.get('layer')}: the {backend} backend needs constant biases")
    input_bias = bias_array[0] if bias_array.ndim == 2 else bias_array
    recurrent_bias = bias_array[1] if bias_array.ndim == 2 else np.zeros(gates, np.float32)
    return RnnOperands(x, kernel, recurrent, mask, list(states), a["units"], x.shape[1], gates, input_bias,
                       recurrent_bias, bool(a.get("reset_after", False)))


def rnn_initial_states(em: BindEmitter, rnn: RnnOperands) -> tuple:
    """(h0, c0): the given initial states, or a shared row of zeros for those not given."""
    zeros = em.const(np.zeros((1, rnn.units), np.float32), key=("zeros", rnn.units))
    h0 = em.ref(rnn.states[0]) if rnn.states else zeros
    c0 = em.ref(rnn.states[1]) if len(rnn.states) > 1 else zeros
    return h0, c0
