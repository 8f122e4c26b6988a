"""Reverse-mode autodiff over whole graphs: training graphs from forward graphs."""
from __future__ import annotations

import numpy as np

from ..errors import IRError
from ..ir import Graph, GraphBuilder, Value, verify
from ..ir.ops.grad_ops import backprop, ones_like, zeros_like
from ..passes.dead_code import remove_dead_nodes

# Keras weights that Keras itself never trains even in a trainable layer (statistics).
NON_TRAINABLE_ROLES = frozenset({"moving_mean", "moving_variance", "mean", "variance", "count"})
REDUCTIONS = ("mean", "sum", "input")
LOSS_GRAD_INPUT = "loss_grad"


def trainable_params(graph: Graph) -> list:
    """Names of the parameters Keras would train, in graph order: every float32 param in
    graph.meta["keras_weights"] whose layer is trainable and whose role is not a
    statistic (BatchNormalization's moving mean/variance, Normalization's mean/variance).
    A graph without that meta (built by hand) trains every float32 param."""
    weights = graph.meta.get("keras_weights")
    names = []
    for name, array in graph.params.items():
        if array.dtype != np.float32:
            continue
        if weights is None:
            names.append(name)
            continue
        info = weights.get(name)
        if info is not None and info.get("trainable", True) and info.get("role") not in NON_TRAINABLE_ROLES:
            names.append(name)
    return names


def trainable_as_inputs(graph: Graph, names=None) -> Graph:
    """A copy of `graph` in which the params `names` (default: trainable_params) are graph
    inputs, appended after the existing inputs in the given order, so that weights can
    change between training steps. The Values (and names) stay the same; the arrays
    remain available from the original graph's params. meta["param_inputs"] lists the
    names (accumulating when called again)."""
    names = list(trainable_params(graph) if names is None else names)
    result = graph.copy()
    for name in names:
        if name not in result.param_values:
            raise IRError(f"{name!r} is not a parameter of graph {graph.name!r}")
        value = result.param_values.pop(name)
        del result.params[name]
        result.inputs.append(value)
    result.meta["param_inputs"] = tuple(result.meta.get("param_inputs", ())) + tuple(names)
    return verify(result)


def _active_values(graph: Graph, sources) -> set:
    """Names of the float values that depend on any of `sources`."""
    active = {v.name for v in sources}
    for node in graph.nodes:
        if any(v.name in active for v in node.inputs):
            active.update(v.name for v in node.outputs if v.dtype == "float32")
    return active


def _seed(b: GraphBuilder, loss: Value, reduction: str) -> Value:
    """d(objective)/d(loss output) for the chosen reduction."""
    if reduction == "input":
        value = Value(b.fresh(LOSS_GRAD_INPUT), loss.type)
        b.graph.inputs.append(value)
        return value
    if loss.type.dynamic_axis is None:
        return b.const(np.ones(loss.shape, np.float32))
    ones = ones_like(b, loss)
    if reduction == "sum":
        return ones
    count = b.reduce_batch(ones, axis=loss.type.dynamic_axis, keepdims=True)  # the batch size
    return b.div(ones, count)


def gradient_graph(graph: Graph, loss_output_index: int = 0, wrt=None, reduction: str = "mean",
                   input_grads: bool = False) -> Graph:
    """A new graph computing the forward outputs and the gradient of the loss.

    graph: a forward graph (not modified).
    loss_output_index: which output is the loss. The objective differentiated is
        "mean" (default; Keras's sum_over_batch_size for a per-example loss of shape
        (batch,)): the sum of the loss output's elements divided by the batch size
        (the size of its dynamic axis); a loss without a dynamic axis is summed.
        "sum": the sum of the loss output's elements.
        "input": sum(loss_grad * loss) with `loss_grad` a new last graph input of the
        loss's type (sample weights, or any vector-Jacobian product).
    wrt: names of params (turned into graph inputs, see trainable_as_inputs) and/or of
        graph inputs to differentiate with respect to; default trainable_params(graph)
        plus any params already turned into inputs (meta["param_inputs"]).
    input_grads: also output the gradient for every float32 graph input the forward
        graph already had (data inputs), after the parameter gradients.

    The result's inputs: the forward inputs, then the params in `wrt` order, then
    `loss_grad` (reduction "input"). Its outputs: the forward outputs, then one
    gradient per `wrt` name (same type as the param; zeros where the loss does not
    depend on it), then the input gradients. Gradient outputs are named
    "grad/<name>". meta["autodiff"] records loss_output, reduction, wrt (names),
    gradient_outputs ({name: output index}), param_inputs (graph input indices of wrt).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    loss = graph.outputs[loss_output_index]
    if loss.dtype != "float32":
        raise IRError(f"the loss output %{loss.name} is {loss.type}, not float32")
    already = list(graph.meta.get("param_inputs", ()))
    if wrt is None:
        wrt = already + trainable_params(graph)
    wrt = list(dict.fromkeys(wrt))
    input_names = {v.name for v in graph.inputs}
    data_inputs = [v for v in graph.inputs if v.name not in set(already)]
    missing = [name for name in wrt if name not in input_names and name not in graph.params]
    if missing:
        raise IRError(f"no param or input named {missing} in graph {graph.name!r}")
    training = trainable_as_inputs(graph, [name for name in wrt if name not in input_names])
    by_name = {v.name: v for v in training.inputs}
    targets = [by_name[name] for name in wrt]
    extra = [v for v in data_inputs if v.dtype == "float32" and v.name not in set(wrt)] if input_grads else []
    for v in targets:
        if v.dtype != "float32":
            raise IRError(f"cannot differentiate with respect to %{v.name}: {v.type}")

    b = GraphBuilder(graph=training)
    forward_nodes = list(training.nodes)
    active = _active_values(training, targets + extra)
    grads: dict = {}
    if loss.name in active:
        with b.meta(backward_of="loss"):
            grads[loss.name] = _seed(b, loss, reduction)
        backprop(b, forward_nodes, grads, active=active)
    elif reduction == "input":
        _seed(b, loss, reduction)

    outputs, names = list(training.outputs), list(training.output_names)
    gradient_outputs = {}
    for v in targets + extra:
        g = grads.get(v.name)
        if g is None:  # the loss does not depend on it
            g = b.const(np.zeros(v.shape, np.float32)) if v.type.dynamic_axis is None else zeros_like(b, v)
        gradient_outputs[v.name] = len(outputs)
        outputs.append(g)
        names.append(f"grad/{v.name}")
    training.outputs, training.output_names = outputs, names
    training.name = f"{graph.name}_grad"
    training.meta["autodiff"] = dict(
        loss_output=loss_output_index,
        reduction=reduction,
        wrt=tuple(wrt),
        gradient_outputs=gradient_outputs,
        param_inputs=tuple(training.inputs.index(v) for v in targets),
    )
    # Rules emit gradients nobody asked for: drop what nothing reads.
    return verify(remove_dead_nodes(training))
