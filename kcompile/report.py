"""Human-readable reports on a graph: the Keras-summary-like layer table."""
from __future__ import annotations

from .ir import Graph


def layer_rows(graph: Graph) -> list:
    """(layer, class, output shape, params, primitives) per lowered Keras layer call."""
    rows, seen_params = [], set()
    for v in graph.inputs:
        rows.append((v.name, "InputLayer", _shape(v.type.shape), 0, ""))
    for path, class_name, start, end in graph.meta.get("layers", []):
        nodes = graph.nodes[start:end]
        params = 0
        for node in nodes:
            for v in node.inputs:
                if graph.is_param(v) and v.name not in seen_params and "/" in v.name:
                    seen_params.add(v.name)
                    params += graph.params[v.name].size
        ops = list(dict.fromkeys(n.op for n in nodes))
        shape = _shape(nodes[-1].outputs[0].type.shape) if nodes else "(same)"
        rows.append((path, class_name, shape, params, ", ".join(ops) or "(none)"))
    return rows


def _shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def format_table(rows, headers) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def summary(graph: Graph) -> str:
    rows = [(layer, cls, shape, f"{params:,}", ops) for layer, cls, shape, params, ops in layer_rows(graph)]
    table = format_table(rows, ["Layer", "Class", "Output shape", "Params", "Primitives"])
    total = graph.param_count()
    return f'Model: "{graph.name}"\n{table}\nTotal params: {total:,}  ({len(graph.nodes)} IR nodes)'


def count_flops(graph: Graph, batch: int) -> int:
    """Multiply-adds x 2 of the matmuls and convolutions (what GFLOP/s figures count)."""
    import numpy as np

    total = 0
    for node in graph.nodes:
        out = node.outputs[0].type.concrete(batch)
        if node.op == "matmul":
            total += 2 * int(np.prod(out)) * node.inputs[0].type.concrete(batch)[-1]  # may be the batch (x^T @ g)
        elif node.op == "conv":
            w = node.inputs[1].shape
            total += 2 * int(np.prod(out)) * int(np.prod(w[:-1]))
        elif node.op == "conv_transpose":
            x, w = node.inputs[0].type.concrete(batch), node.inputs[1].shape
            total += 2 * int(np.prod(x)) * int(np.prod(w[:-1]))
        elif node.op == "conv_weight_grad":  # output (window, channels of x, channels of g)
            g = node.inputs[1].type.concrete(batch)
            total += 2 * int(np.prod(g)) * int(np.prod(out[:-1]))
        elif node.op in ("lstm", "gru", "simple_rnn"):
            x = node.inputs[0].type.concrete(batch)
            k, r = node.inputs[1].shape, node.inputs[2].shape
            total += 2 * x[0] * x[1] * (k[0] * k[1] + r[0] * r[1])
    return total
