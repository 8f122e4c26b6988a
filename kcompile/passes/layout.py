"""optimize_layout: kcompile keeps every tensor channels-last (the layout its kernels
and Keras's defaults use), so what is left to do is removing the transposes that
channels_first layers and attention introduce:

  transpose(transpose(x, p), q)  -> transpose(x, p[q]), or x when that is the identity
  elementwise(transpose(x, p), constants) -> transpose(elementwise(x, constants'), p)

The second rule moves a transpose past per-channel constants (permuting them) so that
it meets, and cancels, the next transpose."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Kind, Node, get_primitive
from .rewrite import is_output, param_array, single_user, unique_param_name


def _compose(graph, users) -> bool:
    producers = graph.producers()
    for i, node in enumerate(graph.nodes):
        if node.op != "transpose":
            continue
        inner = producers.get(node.inputs[0].name)
        if inner is None or inner.op != "transpose" or single_user(users, inner.output) is not node:
            continue
        if is_output(graph, inner.output):
            continue
        p, q = inner.attrs["perm"], node.attrs["perm"]
        perm = tuple(p[k] for k in q)
        graph.nodes.remove(inner)
        if perm == tuple(range(len(perm))):
            graph.nodes.remove(node)
            graph.replace_uses(node.output, inner.inputs[0])
        else:
            node.inputs, node.attrs = [inner.inputs[0]], {"perm": perm}
        return True
    return False


def _sink(graph, users) -> bool:
    producers = graph.producers()
    for node in graph.nodes:
        if get_primitive(node.op).kind not in (Kind.ELEMENTWISE, Kind.BROADCAST):
            continue
        moved = [v for v in node.inputs if not graph.is_param(v)]
        if len(moved) != 1:
            continue
        t = producers.get(moved[0].name)
        if t is None or t.op != "transpose" or single_user(users, t.output) is not node or is_output(graph, t.output):
            continue
        perm = t.attrs["perm"]
        inverse = tuple(int(k) for k in np.argsort(perm))
        rank = len(perm)
        new_inputs = []
        for v in node.inputs:
            if v is t.output:
                new_inputs.append(t.inputs[0])
                continue
            array = param_array(graph, v)
            full = array.reshape((1,) * (rank - array.ndim) + array.shape)
            permuted = np.ascontiguousarray(np.transpose(full, inverse))
            new_inputs.append(graph.add_param(unique_param_name(graph, v.name + ".t"), permuted))
        # node computes on the untransposed data; the transpose moves below it.
        from ..ir import TensorType, Value

        pre = Value(node.output.name + ".pre", TensorType(t.inputs[0].shape, node.output.dtype))
        index = graph.nodes.index(node)
        graph.nodes.remove(t)
        compute = Node(node.op, new_inputs, [pre], dict(node.attrs), dict(node.meta))
        node.op, node.inputs, node.attrs = "transpose", [pre], {"perm": perm}
        graph.nodes.insert(index - 1, compute)
        return True
    return False


def optimize_layout(graph: Graph) -> Graph:
    graph = graph.copy()
    changed = True
    while changed:
        users = graph.users()
        changed = _compose(graph, users) or _sink(graph, users)
    graph.remove_unused_params()
    return graph
