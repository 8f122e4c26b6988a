"""fold_scale_shift: per-channel scales and shifts after a matmul or convolution
(BatchNormalization at inference, Rescaling, a bias) fold into its weights.

    y = (x @ W) * a + c   ->   y = x @ (W * a) + c

The chain of per-channel add/sub/mul/div by constants that follows the product (each
value read only by the next step) collapses into one scale `a`, folded into the
weights' output-channel axis, and one shift `c`, left as a single add."""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from .rewrite import is_output, param_array, per_channel, single_user, unique_param_name

# Where each product keeps its output channels in its weight operand.
WEIGHT_CHANNEL_AXIS = {"matmul": -1, "conv": -1, "conv_transpose": -2}


def _affine_step(graph, node, value, channels):
    """(scale, shift) when `node` computes value (op) constant, else None."""
    if node.op not in ("add", "sub", "mul", "div") or node.output.shape != value.shape:
        return None
    a, b = node.inputs
    other, value_first = (b, True) if a is value else (a, False)
    const = per_channel(param_array(graph, other), channels, value.rank)
    if const is None or other is value:
        return None
    ones, zeros = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    if node.op == "add":
        return ones, const
    if node.op == "mul":
        return const, zeros
    if node.op == "sub":
        return (ones, -const) if value_first else (-ones, const)
    if node.op == "div" and value_first and np.all(const != 0):
        return 1 / const, zeros
    return None


def fold_scale_shift(graph: Graph) -> Graph:
    graph = graph.copy()
    users = graph.users()
    removed = set()
    for node in list(graph.nodes):
        axis = WEIGHT_CHANNEL_AXIS.get(node.op)
        if axis is None or node.attrs.get("epilogue") or id(node) in removed:
            continue
        weights = param_array(graph, node.inputs[1])
        if weights is None or (node.op == "matmul" and weights.ndim != 2):
            continue
        channels = node.output.shape[-1]
        scale, shift = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        chain, value = [], node.output
        while not is_output(graph, value):
            user = single_user(users, value)
            step = _affine_step(graph, user, value, channels) if user is not None else None
            if step is None:
                break
            scale, shift = scale * step[0], shift * step[0] + step[1]
            chain.append(user)
            value = user.output
        if not chain:
            continue
        if np.any(scale != 1):
            shape = [1] * weights.ndim
            shape[axis] = channels
            folded = graph.add_param(unique_param_name(graph, node.inputs[1].name + ".folded"),
                                     (weights * scale.reshape(shape)).astype(np.float32))
            node.inputs = [node.inputs[0], folded] + node.inputs[2:]
        last = chain[-1]
        if np.any(shift != 0):
            # The chain's last node becomes the one remaining add; its output keeps its readers.
            last.op, last.attrs = "add", {}
            last.inputs = [node.output, graph.add_param(unique_param_name(graph, node.output.name + ".shift"), shift)]
            removed.update(id(n) for n in chain[:-1])
        else:
            removed.update(id(n) for n in chain)
            graph.replace_uses(last.output, node.output)
        users = graph.users()
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]
    graph.remove_unused_params()
    return graph
