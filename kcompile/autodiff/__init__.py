"""Reverse-mode automatic differentiation of kcompile graphs, in the IR itself.

The backward graph is made of ordinary primitives, so it goes through the same passes,
fusion, memory planning and code generation as the forward graph.

    graph = kcompile.load_graph("model.keras")
    # a loss output: e.g. per-example crossentropy of shape (batch,), built in IR
    train = gradient_graph(graph_with_loss, loss_output_index=1)
    outs = interpret(train, [x, onehot] + [graph.params[n] for n in train.meta["autodiff"]["wrt"]])
    # outs: forward outputs, then d(mean loss)/d(param) per wrt name

API
---
trainable_params(graph) -> list[str]
    The params Keras trains (graph.meta["keras_weights"]: trainable layers, not
    BatchNormalization statistics); every float32 param for graphs without that meta.
trainable_as_inputs(graph, names=None) -> Graph
    A copy with those params turned into graph inputs (appended in order), so weights
    can change between steps.
gradient_graph(graph, loss_output_index=0, wrt=None, reduction="mean", input_grads=False) -> Graph
    Inputs: the forward inputs, the wrt params, then `loss_grad` for reduction="input".
    Outputs: the forward outputs, then d(objective)/d(w) for each wrt name (output
    names "grad/<name>"), then input gradients with input_grads=True. The objective:
    "mean" = sum of the loss output divided by the batch size (Keras's mean over the
    batch, for a per-example loss of shape (batch,)), "sum", or "input" =
    sum(loss_grad * loss). See gradient_graph's docstring and meta["autodiff"].

Gradient rules
--------------
Every primitive's `grad` rule (kcompile/ir/ops/*.py, next to its other rules) is

    grad(b, node, out_grads) -> list

b: a GraphBuilder appending to the backward graph; node: the forward Node (its inputs,
outputs and attrs are values of the graph being differentiated, so rules may read
forward results such as y = tanh(x)); out_grads: one Value or None (no gradient) per
output. It returns one entry per input: a Value of exactly that input's type (broadcast
operands summed back with grad_ops.unbroadcast; parameter gradients summed over the
dynamic batch axis with the reduce_batch primitive) or None for a zero gradient
(integer inputs, masks, comparisons, sign/floor). Composite primitives (fused_elementwise,
matmul/conv/conv_transpose with an epilogue, grouped conv, lstm/gru/simple_rnn)
differentiate their decomposition (grad_ops.grad_by_decomposition). The engine is
kcompile.ir.ops.grad_ops.backprop.

Primitives added for the backward pass (kcompile/ir/ops/grad_ops.py): reduce_batch,
conv_weight_grad, max_pool_grad, scatter_add.
"""
from .grad import LOSS_GRAD_INPUT, NON_TRAINABLE_ROLES, gradient_graph, trainable_as_inputs, trainable_params

__all__ = ["LOSS_GRAD_INPUT", "NON_TRAINABLE_ROLES", "gradient_graph", "trainable_as_inputs", "trainable_params"]
