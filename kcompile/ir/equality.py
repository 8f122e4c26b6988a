"""Structural equality of graphs (for pass tests): same ops, attributes, parameter
contents and wiring, whatever the value names."""
from __future__ import annotations

import hashlib

from .graph import Graph


def canonical_form(graph: Graph) -> tuple:
    ids: dict = {v.name: ("input", i, v.type) for i, v in enumerate(graph.inputs)}
    for name, array in graph.params.items():
        digest = hashlib.sha1(array.tobytes()).hexdigest()
        ids[name] = ("param", array.shape, str(array.dtype), digest)
    nodes = []
    for i, node in enumerate(graph.nodes):
        args = tuple(ids[v.name] for v in node.inputs)
        nodes.append((node.op, node.attr_key(), args, tuple(v.type for v in node.outputs)))
        for j, v in enumerate(node.outputs):
            ids[v.name] = ("node", i, j)
    return tuple(nodes), tuple(ids[v.name] for v in graph.outputs)


def graphs_equal(a: Graph, b: Graph) -> bool:
    return canonical_form(a) == canonical_form(b)


def describe_difference(a: Graph, b: Graph) -> str:
    """The first difference, for test messages."""
    (na, oa), (nb, ob) = canonical_form(a), canonical_form(b)
    for i, (x, y) in enumerate(zip(na, nb)):
        if x != y:
            return f"node {i}: {x[0]}{dict(x[1])} vs {y[0]}{dict(y[1])}"
    if len(na) != len(nb):
        return f"{len(na)} nodes vs {len(nb)}"
    return "outputs differ" if oa != ob else "equal"
