"""expand_composites: a composite primitive (such as batch_norm_train, there for its
closed-form gradient) is replaced by its decomposition, so passes and backends only
see the primitives they fuse and lower. The pipeline runs it first."""
from __future__ import annotations

from ..ir import Graph, GraphBuilder, Kind, get_primitive


def expand_composites(graph: Graph, keep=()) -> Graph:
    """The graph with every composite node written out but those whose op is in `keep`
    (a backend's own lowerings); the graph itself when there are none: backends call
    this on whatever they are given."""
    def expands(node):
        return get_primitive(node.op).kind == Kind.COMPOSITE and node.op not in keep

    if not any(expands(node) for node in graph.nodes):
        return graph
    graph = graph.copy()
    b = GraphBuilder(graph=graph)
    i = 0
    while i < len(graph.nodes):
        node = graph.nodes[i]
        if not expands(node):
            i += 1
            continue
        prim = get_primitive(node.op)
        del graph.nodes[i]
        b.insert_at = i
        with b.meta(**node.meta):
            outs = prim.decompose(b, *node.inputs, **node.attrs)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        for old, new in zip(node.outputs, outs):
            graph.replace_uses(old, new, start=b.insert_at)
        i = b.insert_at
    return graph
