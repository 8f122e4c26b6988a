"""fuse_epilogues: the elementwise chain after a matmul or convolution (bias, activation,
residual add, ...) becomes that node's epilogue, computed on each output tile while it
is in cache instead of in separate passes over memory.

A step joins when it reads the running value once and is its only reader, keeps the
output's shape, and its other operand is a per-channel or scalar constant or one
residual tensor shaped like the output. In training graphs (`fuse_training_epilogues`)
a per-channel operand may also be a value that changes between calls (a trainable
bias, bound as an input): a backend that runs those graphs fills its row at each call,
and max_pool_grad takes an epilogue too (ReLU's gradient after a max pool's: the pool's
gradient is written once, already masked). Only the Numba CPU backend, the one that
runs training graphs, lowers that."""
from __future__ import annotations

from ..ir import Graph, Kind, get_primitive
from ..ir.program import instruction
from .rewrite import is_output, param_array, per_channel, single_user

PRODUCERS = ("matmul", "conv", "conv_transpose")
TRAINING_PRODUCERS = PRODUCERS + ("max_pool_grad",)


def _dynamic_per_channel(value, out_type) -> bool:
    """A non-constant operand that varies only along the output's last axis: (F,) or
    (1, ..., 1, F), no batch axis."""
    shape = value.type.shape
    return (value.dtype == out_type.dtype and None not in shape and len(shape) <= len(out_type.shape)
            and shape[-1:] == out_type.shape[-1:] and all(d == 1 for d in shape[:-1]))


def _operand_ok(graph, other, out_type, residuals, dynamic_channels):
    if graph.is_param(other):
        return per_channel(param_array(graph, other), out_type.shape[-1], len(out_type.shape)) is not None
    if other.type == out_type:
        return not residuals or residuals == [other]
    return dynamic_channels and _dynamic_per_channel(other, out_type)


def fuse_training_epilogues(graph: Graph) -> Graph:
    """fuse_epilogues with per-channel operands that change between calls (see above)."""
    return fuse_epilogues(graph, dynamic_channels=True, producers=TRAINING_PRODUCERS)


def fuse_epilogues(graph: Graph, dynamic_channels: bool = False, producers: tuple = PRODUCERS) -> Graph:
    graph = graph.copy()
    users = graph.users()
    removed = set()
    for node in list(graph.nodes):
        if node.op not in producers or node.attrs.get("epilogue") or id(node) in removed:
            continue
        out_type = node.output.type
        program, extra, residuals, chain = [], [], [], []
        value = node.output
        while not is_output(graph, value):
            user = single_user(users, value)
            if user is None or user.op == "fused_elementwise":
                break
            if get_primitive(user.op).kind not in (Kind.ELEMENTWISE, Kind.BROADCAST) or user.op in ("cast", "where"):
                break
            if user.output.type != out_type or [v is value for v in user.inputs].count(True) != 1:
                break
            others = [v for v in user.inputs if v is not value]
            if not all(_operand_ok(graph, o, out_type, residuals, dynamic_channels) for o in others):
                break
            args = []
            for v in user.inputs:
                if v is value:
                    args.append(("acc",) if not program else ("t", len(program) - 1))
                else:
                    if v.type == out_type and not graph.is_param(v):
                        residuals = [v]
                    if v not in extra:
                        extra.append(v)
                    args.append(("in", extra.index(v)))
            program.append(instruction(user.op, args, user.attrs))
            chain.append(user)
            value = user.output
        if not chain:
            continue
        # The fused node takes the chain's place (its residual inputs exist by then).
        last = chain[-1]
        last.op = node.op
        last.inputs = node.inputs[:2] + extra
        last.attrs = {**node.attrs, "epilogue": tuple(program)}
        last.meta = {**node.meta, "fused": [n.meta.get("layer") for n in chain]}
        removed.update(id(n) for n in [node] + chain[:-1])
        users = graph.users()
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]
    return graph
