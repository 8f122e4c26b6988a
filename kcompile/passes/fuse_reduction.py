"""fuse_reduction_prologues: a reduce_sum whose input is an elementwise node (a lone
primitive or a fused chain) that nothing else reads becomes one fused_reduce_sum, so
the elementwise result is never written out: a batch-normalization layer's sum of
squared deviations, and its gradient's sum of dy * xhat, each save a pass over the
activations. Training pipeline only (TRAINING_PIPELINE): the Numba CPU backend lowers
fused_reduce_sum; others would get its decomposition back."""
from __future__ import annotations

from ..ir import Graph, Kind, get_primitive
from ..ir.program import program_of
from .rewrite import is_output, single_user


def fuse_reduction_prologues(graph: Graph) -> Graph:
    graph = graph.copy()
    users = graph.users()
    producer = {node.output.name: node for node in graph.nodes if len(node.outputs) == 1}
    removed = set()
    for node in graph.nodes:
        if node.op != "reduce_sum":
            continue
        source = producer.get(node.inputs[0].name)
        if source is None or is_output(graph, source.output) or single_user(users, source.output) is not node:
            continue
        elementwise = get_primitive(source.op).kind in (Kind.ELEMENTWISE, Kind.BROADCAST)
        if not elementwise or source.op == "cast" or source.output.dtype != "float32":
            continue
        node.attrs = {"program": program_of(source), "axes": tuple(node.attrs["axes"]),
                      "keepdims": node.attrs.get("keepdims", False)}
        node.op, node.inputs = "fused_reduce_sum", list(source.inputs)
        removed.add(id(source))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]
    return graph
