"""plan_memory: static memory planning over the schedule.

Every value the graph computes, and its inputs (copied in at each call), live in one
arena. Liveness runs over the node order;
buffers whose lifetimes do not overlap share space (first fit over free blocks).
Reshapes are views of their input, and so are the transposes and slices a backend
reads in place (`transposed_views`, `sliced_views`); the inputs of a concat a backend
writes in place (`concat_views`) are views of its output; an elementwise node may
overwrite an input that dies there. Sizes scale with the batch: a buffer's offset and
size are bytes per sample, so one plan serves every batch size (`arena_bytes(batch)`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from ..errors import IRError
from ..ir import Graph

ALIGN = 64  # bytes
ITEMSIZE = {"float32": 4, "int32": 4, "int64": 8, "bool": 1}
VIEW_OPS = ("reshape",)
IN_PLACE_OPS = ("fused_elementwise",)


def batch_factors(graph: Graph) -> dict:
    """Value name -> how many units of the batch its dynamic dimension holds (a reshape
    that folds time into the batch makes it > 1)."""
    factors = {v.name: Fraction(1) for v in graph.inputs}
    for node in graph.nodes:
        dynamic_inputs = [v for v in node.inputs if v.type.dynamic_axis is not None]
        base = factors[dynamic_inputs[0].name] if dynamic_inputs else Fraction(1)
        for out in node.outputs:
            if out.type.dynamic_axis is None:
                factors[out.name] = Fraction(0)
            elif node.op == "reshape":
                src = node.inputs[0]
                factors[out.name] = base * src.type.static_size() / out.type.static_size()
            else:
                factors[out.name] = base
            if factors[out.name].denominator != 1:
                raise IRError(f"value %{out.name} does not hold a whole number of samples per batch entry")
    return factors


@dataclass
class Buffer:
    offset: int  # bytes per sample (dynamic) or bytes (static)
    size: int
    dynamic: bool


@dataclass
class MemoryPlan:
    # name -> ("param",) | ("view", src) | ("transposed", src) | ("buffer", id) | ("external", k)
    #         | ("sliced", src, ((axis, start, stop), ...)): a backend's kernels index src at those offsets
    storage: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # graph input k -> buffer id
    buffers: list = field(default_factory=list)
    factors: dict = field(default_factory=dict)
    per_sample_bytes: int = 0  # arena bytes per sample
    static_bytes: int = 0
    unplanned_per_sample: int = 0  # what one buffer per value would take

    def arena_bytes(self, batch: int) -> int:
        return self.per_sample_bytes * batch + self.static_bytes


def plan_memory(graph: Graph, external=(), transposed_views=(), sliced_views=(), concat_views=()) -> MemoryPlan:
    """`external`: names of graph inputs that live outside the arena (weights a training
    loop owns and updates in place); they get storage ("external", k).
    `transposed_views`: outputs of 2-D transposes that the backend's consumers read as a
    transposed view of the input (storage ("transposed", src)) instead of a copy;
    `sliced_views`: likewise for outputs of unit-step slices (storage ("sliced", src,
    ((axis, start, stop), ...)));
    `concat_views`: outputs of concats whose inputs are computed straight into their
    place in the output (each input then has storage ("sliced", concat output, ...))."""
    plan = MemoryPlan(factors=batch_factors(graph))
    external = list(external)
    for k, name in enumerate(external):
        plan.storage[name] = ("external", k)
    for name in graph.params:
        plan.storage[name] = ("param",)
    last_use = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_use[v.name] = i
    for v in graph.outputs:
        last_use[v.name] = len(graph.nodes)

    # 1. Storage: views share their source's buffer; in-place nodes take over an input's.
    buffer_of: dict = {}  # value name -> buffer id
    spans: list = []  # per buffer: [first node, last node, bytes, dynamic]
    sliced_buffers: set = set()  # buffers some slice reads in place
    pieces = _concat_pieces(graph, concat_views)  # concat input -> (concat output, ranges)
    for v in graph.inputs:  # written before the first node runs
        if v.name in external:
            continue
        size, dynamic = _nbytes(plan, v)
        spans.append([-1, last_use.get(v.name, -1), size, dynamic])
        buffer_of[v.name] = len(spans) - 1
        plan.storage[v.name] = ("buffer", len(spans) - 1)
        plan.inputs.append(len(spans) - 1)
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            if out.name in pieces:  # written into the concat's buffer, made with its first piece
                whole, ranges = pieces[out.name]
                if whole.name not in buffer_of:
                    spans.append([i, i] + list(_nbytes(plan, whole)))
                    buffer_of[whole.name] = len(spans) - 1
                    plan.storage[whole.name] = ("buffer", len(spans) - 1)
                b = buffer_of[out.name] = buffer_of[whole.name]
                plan.storage[out.name] = ("sliced", whole.name, ranges)
                sliced_buffers.add(b)
                spans[b][1] = max(spans[b][1], last_use.get(out.name, i))
                continue
            if out.name in concat_views:  # its pieces are already in place
                b = buffer_of[out.name]
                spans[b][1] = max(spans[b][1], last_use.get(out.name, i))
                continue
            if node.op in VIEW_OPS or out.name in transposed_views or out.name in sliced_views:
                src = node.inputs[0]
                if out.name in sliced_views:
                    plan.storage[out.name] = ("sliced", src.name, _slice_ranges(node))
                    sliced_buffers.add(buffer_of.get(src.name))
                else:
                    plan.storage[out.name] = ("view" if node.op in VIEW_OPS else "transposed", src.name)
                if src.name in buffer_of:
                    b = buffer_of[out.name] = buffer_of[src.name]
                    spans[b][1] = max(spans[b][1], last_use.get(out.name, i))
                continue
            size, dynamic = _nbytes(plan, out)
            plan.unplanned_per_sample += size if dynamic else 0
            b = None
            if node.op in IN_PLACE_OPS:
                for v in node.inputs:
                    candidate = buffer_of.get(v.name)
                    # Not over a buffer read through a slice: its rows are laid out
                    # unlike the output's, so a write could land on an element not yet read.
                    if (candidate is not None and v.type == out.type and spans[candidate][1] == i
                            and candidate not in sliced_buffers):
                        b = candidate
                        break
            if b is None:
                spans.append([i, i, size, dynamic])
                b = len(spans) - 1
            buffer_of[out.name] = b
            plan.storage[out.name] = ("buffer", b)
            spans[b][1] = max(spans[b][1], last_use.get(out.name, i))

    # 2. Offsets: first fit over the blocks freed by buffers whose last reader has run.
    free = {True: [], False: []}
    ends = {True: 0, False: 0}
    active: list = []
    offsets = [0] * len(spans)
    for b in sorted(range(len(spans)), key=lambda k: spans[k][0]):
        first, _, size, dynamic = spans[b]
        for done in [a for a in active if spans[a][1] < first]:
            active.remove(done)
            free[spans[done][3]] = _merge(free[spans[done][3]] + [(offsets[done], spans[done][2])])
        offsets[b] = _first_fit(free, ends, size, dynamic)
        active.append(b)
    plan.buffers = [Buffer(offsets[b], spans[b][2], spans[b][3]) for b in range(len(spans))]
    plan.per_sample_bytes = ends[True]
    plan.static_bytes = ends[False]
    return plan


def _concat_pieces(graph: Graph, concat_views) -> dict:
    """{input name: (concat output, ((axis, start, stop),))} for the concats in
    `concat_views`."""
    pieces = {}
    for node in graph.nodes:
        if node.op == "concat" and node.output.name in concat_views:
            axis = node.attrs["axis"] % node.output.rank
            start = 0
            for v in node.inputs:
                pieces[v.name] = (node.output, ((axis, start, start + v.shape[axis]),))
                start += v.shape[axis]
    return pieces


def _slice_ranges(node) -> tuple:
    """((axis, start, stop), ...) of a unit-step slice node, bounds made non-negative."""
    shape = node.inputs[0].shape
    ranges = []
    for axis, start, stop in zip(node.attrs["axes"], node.attrs["starts"], node.attrs["stops"]):
        axis %= len(shape)
        ranges.append((axis,) + slice(start, stop).indices(shape[axis])[:2])
    return tuple(ranges)


def _nbytes(plan: MemoryPlan, value) -> tuple:
    factor = plan.factors[value.name]
    size = value.type.static_size() * ITEMSIZE[value.dtype] * (int(factor) if factor else 1)
    return -(-size // ALIGN) * ALIGN, factor != 0


def _first_fit(free, ends, size, dynamic) -> int:
    blocks = free[dynamic]
    for j, (offset, block) in enumerate(blocks):
        if block >= size:
            blocks[j : j + 1] = [(offset + size, block - size)] if block > size else []
            return offset
    offset = ends[dynamic]
    ends[dynamic] += size
    return offset


def _merge(blocks) -> list:
    merged = []
    for offset, size in sorted(blocks):
        if merged and merged[-1][0] + merged[-1][1] == offset:
            merged[-1] = (merged[-1][0], merged[-1][1] + size)
        else:
            merged.append((offset, size))
    return merged


def describe(plan: MemoryPlan) -> str:
    saved = 1 - plan.per_sample_bytes / max(plan.unplanned_per_sample, 1)
    return (f"arena {plan.per_sample_bytes:,} bytes per sample (+{plan.static_bytes:,} static) for "
            f"{len(plan.buffers)} buffers; one buffer per value would take {plan.unplanned_per_sample:,} "
            f"({saved:.0%} saved)")

