"""fold_constants: nodes whose inputs are all parameters are computed once, at compile
time, and become parameters (BatchNorm's rsqrt(var + eps) * gamma, reshaped depthwise
kernels, transposed weights)."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, get_primitive
from .rewrite import unique_param_name


def fold_constants(graph: Graph) -> Graph:
    graph = graph.copy()
    kept = []
    for i, node in enumerate(graph.nodes):
        if node.inputs and all(graph.is_param(v) for v in node.inputs):
            arrays = [graph.params[v.name] for v in node.inputs]
            results = get_primitive(node.op).run_reference(*arrays, **node.attrs)
            for value, result in zip(node.outputs, results):
                name = unique_param_name(graph, value.name)
                folded = graph.add_param(name, np.ascontiguousarray(result, dtype=value.dtype))
                graph.replace_uses(value, folded, start=i + 1)
        else:
            kept.append(node)
    graph.nodes = kept
    graph.remove_unused_params()
    return graph
