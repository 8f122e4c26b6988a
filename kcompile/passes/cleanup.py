"""Nodes that only move data the next node could read as it is.

remove_identities: inference drops the identity nodes that Dropout, noise and Identity
layers leave in the graph.
fold_broadcasts: a broadcast_to read by broadcasting elementwise ops (the gradients of
sums and means, BatchNormalization's backward pass) is dropped: those ops broadcast
their operands themselves, so they read the small tensor instead of a materialized
copy."""
from __future__ import annotations

from ..ir import Graph, Kind, get_primitive
from ..errors import IRError
from ..ir.shapes import broadcast_shapes


def remove_identities(graph: Graph) -> Graph:
    graph = graph.copy()
    kept = []
    for i, node in enumerate(graph.nodes):
        if node.op == "identity":
            graph.replace_uses(node.output, node.inputs[0], start=i + 1)
        else:
            kept.append(node)
    graph.nodes = kept
    return graph


def fold_broadcasts(graph: Graph) -> Graph:
    graph = graph.copy()
    sources = {node.output.name: node.inputs[0] for node in graph.nodes if node.op == "broadcast_to"}
    for node in graph.nodes:
        if get_primitive(node.op).kind != Kind.BROADCAST:
            continue
        for k, v in enumerate(node.inputs):
            source = sources.get(v.name)
            if source is None or source.dtype != v.dtype:
                continue
            shapes = [source.shape if j == k else u.shape for j, u in enumerate(node.inputs)]
            try:
                same = broadcast_shapes(*shapes) == node.output.shape
            except IRError:
                same = False
            if same:
                node.inputs[k] = source
    return graph
