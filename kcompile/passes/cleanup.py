"""remove_identities: inference drops the identity nodes that Dropout, noise and
Identity layers leave in the graph."""
from __future__ import annotations

from ..ir import Graph


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
