"""eliminate_common_subexpressions: nodes with the same op, attributes and inputs are
computed once; equal parameters are stored once."""
from __future__ import annotations

import hashlib

from ..ir import Graph


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    graph = graph.copy()
    # Equal parameter arrays (e.g. shared constants) become one.
    by_content: dict = {}
    for name, array in list(graph.params.items()):
        key = (array.dtype.str, array.shape, hashlib.sha1(array.tobytes()).hexdigest())
        if key in by_content:
            graph.replace_uses(graph.param_values[name], graph.param_values[by_content[key]])
        else:
            by_content[key] = name
    seen: dict = {}
    kept = []
    for i, node in enumerate(graph.nodes):
        key = (node.op, node.attr_key(), tuple(v.name for v in node.inputs))
        earlier = seen.get(key)
        if earlier is not None:
            for old, new in zip(node.outputs, earlier.outputs):
                graph.replace_uses(old, new, start=i + 1)
            continue
        seen[key] = node
        kept.append(node)
    graph.nodes = kept
    graph.remove_unused_params()
    return graph
