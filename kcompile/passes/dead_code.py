"""eliminate_dead_code: drop nodes whose outputs nobody reads, and unused params."""
from __future__ import annotations

from ..ir import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    return remove_dead_nodes(graph.copy())


def remove_dead_nodes(graph: Graph) -> Graph:
    """eliminate_dead_code in place: `graph` itself loses its dead nodes and params."""
    live = {v.name for v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if any(v.name in live for v in node.outputs):
            kept.append(node)
            live.update(v.name for v in node.inputs)
    graph.nodes = kept[::-1]
    graph.remove_unused_params()
    return graph
