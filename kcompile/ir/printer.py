"""A readable text form of a Graph."""
from __future__ import annotations

from .graph import Graph


def _attr(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_attr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value) if isinstance(value, str) else str(value)


def format_node(node) -> str:
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outputs)
    args = [f"%{v.name}" for v in node.inputs] + [f"{k}={_attr(v)}" for k, v in node.attrs.items()]
    text = f"{outs} = {node.op}({', '.join(args)})"
    layer = node.meta.get("layer")
    return f"{text}  # {layer}" if layer else text


def format_graph(graph: Graph, params: bool = True) -> str:
    sig = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    lines = [f"graph {graph.name}({sig}) {{"]
    if params and graph.params:
        lines.append(f"  params ({graph.param_count():,} values):")
        for name, v in graph.param_values.items():
            lines.append(f"    %{name}: {v.type}")
    lines.extend("  " + format_node(n) for n in graph.nodes)
    rets = ", ".join(f"%{v.name} as {n!r}" for v, n in zip(graph.outputs, graph.output_names))
    lines.append(f"  return {rets}")
    lines.append("}")
    return "\n".join(lines)
