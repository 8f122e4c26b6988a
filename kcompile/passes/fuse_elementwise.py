"""fuse_elementwise: connected elementwise/broadcast nodes of one output shape become one
fused_elementwise node, computed in a single loop (GELU's eight primitives, ELU's where,
softmax-free normalizations)."""
from __future__ import annotations

from ..ir import Graph, Kind, get_primitive
from ..ir.program import instruction
from .rewrite import is_output

FUSABLE = (Kind.ELEMENTWISE, Kind.BROADCAST)


def _fusable(node) -> bool:
    return node.op != "fused_elementwise" and get_primitive(node.op).kind in FUSABLE


def fuse_elementwise(graph: Graph) -> Graph:
    graph = graph.copy()
    users = graph.users()
    producers = graph.producers()
    grouped: dict = {}  # id(node) -> group root id
    groups = []
    for root in reversed(graph.nodes):
        if id(root) in grouped or not _fusable(root):
            continue
        members = [root]
        grouped[id(root)] = id(root)
        frontier = list(root.inputs)
        while frontier:
            v = frontier.pop()
            p = producers.get(v.name)
            if p is None or id(p) in grouped or not _fusable(p) or is_output(graph, v):
                continue
            if p.output.type != root.output.type:
                continue
            if any(id(u) not in grouped or grouped[id(u)] != id(root) for u in users.get(v.name, [])):
                continue
            grouped[id(p)] = id(root)
            members.append(p)
            frontier.extend(p.inputs)
        if len(members) > 1:
            groups.append(members)
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    replace = {}
    for members in groups:
        members.sort(key=lambda n: position[id(n)])
        inside = {v.name: j for j, n in enumerate(members) for v in n.outputs}
        inputs, program = [], []
        for n in members:
            args = []
            for v in n.inputs:
                if v.name in inside:
                    args.append(("t", inside[v.name]))
                else:
                    if v not in inputs:
                        inputs.append(v)
                    args.append(("in", inputs.index(v)))
            program.append(instruction(n.op, args, n.attrs))
        root = members[-1]
        root.meta = {**root.meta, "fused": [n.meta.get("layer") for n in members]}
        replace[id(root)] = (inputs, tuple(program))
        for n in members[:-1]:
            replace[id(n)] = None
    kept = []
    for n in graph.nodes:
        change = replace.get(id(n), False)
        if change is None:
            continue
        if change:
            n.op, n.inputs, n.attrs = "fused_elementwise", change[0], {"program": change[1]}
        kept.append(n)
    graph.nodes = kept
    return graph
