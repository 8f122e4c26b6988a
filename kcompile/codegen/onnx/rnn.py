"""lstm, gru and simple_rnn as ONNX LSTM, GRU and RNN nodes, or as a Scan.

The ONNX operators compute Keras's cells once the weights are rearranged:
- gate order: Keras LSTM kernels hold gates (i, f, c, o), ONNX wants (i, o, f, c); GRU
  (z, r, h) and the simple RNN agree;
- ONNX keeps kernels as (gates * units, features) and a bias of input and recurrent
  halves: Keras's single bias is the input half; a GRU with reset_after=True has both
  rows and is ONNX's linear_before_reset=1;
- go_backwards is direction="reverse", but where Keras returns the outputs in
  processing order ONNX keeps them in time order, so the sequence is reversed back.

Keras masking holds the state (and output) at masked steps anywhere in the sequence,
which ONNX's sequence_lens cannot say. Masked layers, and any whose weights are not
constants or whose activations the operators lack, become a Scan whose body is the
Keras cell (the recipe in ir.ops.rnn) for one step, masking included.
"""
from __future__ import annotations

import numpy as np

from ...ir import Graph, GraphBuilder
from ...ir.ops.rnn import CELLS as CELL_RECIPES
from ...ir.ops.rnn import input_bias
from .table import lowering

# Keras activation -> (ONNX activation, (alpha, beta) or None).
ACTIVATIONS = {
    "tanh": ("Tanh", None),
    "sigmoid": ("Sigmoid", None),
    "relu": ("Relu", None),
    "linear": ("Affine", (1.0, 0.0)),
    "hard_sigmoid": ("HardSigmoid", (1 / 6, 0.5)),  # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid_keras2": ("HardSigmoid", (0.2, 0.5)),  # tf-keras: clip(0.2 x + 0.5, 0, 1)
}

# primitive -> (ONNX op, Keras gate blocks in ONNX order, Keras activations in ONNX order).
CELLS = {
    "lstm": ("LSTM", (0, 3, 1, 2), ("recurrent_activation", "activation", "activation")),
    "gru": ("GRU", (0, 1, 2), ("recurrent_activation", "activation")),
    "simple_rnn": ("RNN", (0,), ("activation",)),
}


def _reorder(array: np.ndarray, order, units: int) -> np.ndarray:
    """Permute the gate blocks of the last axis."""
    return np.concatenate([array[..., g * units : (g + 1) * units] for g in order], axis=-1)


def _onnx_bias(op: str, bias: np.ndarray, order, units: int, reset_after: bool) -> np.ndarray:
    """Keras bias -> ONNX B (1, 2 * gates * units): input half, then recurrent half."""
    if op == "gru" and reset_after:
        halves = [bias[0], bias[1]]  # rows: input bias, recurrent bias
    else:
        halves = [_reorder(bias, order, units), np.zeros(len(order) * units, np.float32)]
    return np.concatenate(halves)[None].astype(np.float32)


def _activation_attrs(attrs, names) -> dict | None:
    """activations / activation_alpha / activation_beta, or None when one is not expressible.
    ONNX Runtime gives an alpha and a beta to each activation that uses them, in order."""
    acts, alphas, betas = [], [], []
    for key in names:
        spec = ACTIVATIONS.get(attrs[key])
        if spec is None:
            return None
        acts.append(spec[0])
        if spec[1] is not None:
            alphas.append(spec[1][0])
            betas.append(spec[1][1])
    result = dict(activations=acts)
    if alphas:
        result.update(activation_alpha=alphas, activation_beta=betas)
    return result


@lowering("lstm", "gru", "simple_rnn")
def lower_rnn(ctx, node):
    attrs = node.attrs
    x, kernel, recurrent_kernel, bias = node.inputs[:4]
    onnx_op, order, activation_keys = CELLS[node.op]
    activations = _activation_attrs(attrs, activation_keys)
    weights_known = all(ctx.param_array(v) is not None for v in (kernel, recurrent_kernel, bias))
    if attrs["has_mask"] or activations is None or not weights_known:
        lower_rnn_scan(ctx, node)
        return
    units = attrs["units"]
    reset_after = bool(attrs.get("reset_after", False))
    as_w = lambda a: np.ascontiguousarray(_reorder(a, order, units).T[None])  # noqa: E731
    w = ctx.derived(kernel, "onnx_W", as_w)
    r = ctx.derived(recurrent_kernel, "onnx_R", as_w)
    b = ctx.derived(bias, "onnx_B", lambda a: _onnx_bias(node.op, a, order, units, reset_after))
    states = [ctx.unsqueeze(ctx.name(v), [0]) for v in node.inputs[4:]] if attrs["has_initial_state"] else []
    n_states = len(node.outputs) - 1
    inputs = [ctx.transpose(ctx.name(x), (1, 0, 2)), w, r, b, ""] + states  # X as (time, batch, features)
    extra = dict(linear_before_reset=int(reset_after)) if node.op == "gru" else {}
    # Outputs Y (only read for sequences; "" leaves it out), Y_h and, for the LSTM, Y_c.
    y_seq = ctx.new_name(onnx_op) if attrs["return_sequences"] else ""
    final = [ctx.new_name(onnx_op) for _ in range(n_states)]
    ctx.node(onnx_op, inputs, outputs=[y_seq] + final, hidden_size=units,
             direction="reverse" if attrs["go_backwards"] else "forward", **activations, **extra)
    final_states = [ctx.squeeze(s, [0]) for s in final]  # (1, batch, units) -> (batch, units)
    if attrs["return_sequences"]:
        y = ctx.squeeze(y_seq, [1])  # (time, 1, batch, units) -> (time, batch, units)
        if attrs["go_backwards"]:
            y = ctx.slice(y, [-1], [np.iinfo(np.int64).min], [0], [-1])
        ctx.bind(node.outputs[0], ctx.transpose(y, (1, 0, 2)))
    else:
        ctx.bind(node.outputs[0], final_states[0])
    for value, name in zip(node.outputs[1:], final_states):
        ctx.bind(value, name)


def lower_rnn_scan(ctx, node):
    """The Keras RNN loop as an ONNX Scan over time-major inputs: the body is one step
    of the cell with Keras's masking; the states and the last output are carried."""
    attrs = node.attrs
    x, kernel, recurrent_kernel, bias = node.inputs[:4]
    cell, n_states, gates = CELL_RECIPES[node.op]
    units = attrs["units"]
    rest = list(node.inputs[4:])
    mask = rest.pop(0) if attrs["has_mask"] else None

    # Every time step through the input kernel at once, then time-major.
    (xw,) = ctx.emit_ir(lambda b: b.add(b.matmul(x, kernel), input_bias(b, bias, attrs)))
    scan_inputs = [ctx.transpose(xw, (1, 0, 2))]
    if mask is not None:
        scan_inputs.append(ctx.unsqueeze(ctx.transpose(ctx.name(mask), (1, 0)), [2]))  # (time, batch, 1)
    batch = ctx.slice(ctx.node("Shape", [ctx.name(x)]), [0], [1], [0])
    zeros = ctx.node("Expand", [ctx.const(np.zeros((1, units), np.float32)),
                                ctx.node("Concat", [batch, ctx.ints([units])], axis=0)])
    states = [ctx.name(v) for v in rest] if attrs["has_initial_state"] else [zeros] * n_states

    body = Graph(f"{node.op}_step")
    b = GraphBuilder(graph=body)
    carried = [b.input(f"state{k}", (None, units)) for k in range(n_states)]
    last = b.input("last_output", (None, units))
    xw_t = b.input("xw", (None, gates * units))
    out, new_states = cell(b, xw_t, carried, (recurrent_kernel, bias), attrs)
    if mask is not None:
        m = b.input("mask", (None, 1), mask.dtype)
        hold = b.const(np.zeros((1, units), np.float32)) if attrs["zero_output_for_mask"] else last
        out = b.where(m, out, hold)
        new_states = [b.where(m, new, old) for new, old in zip(new_states, carried)]
    sequence = [out] if attrs["return_sequences"] else []
    b.output(list(new_states) + [out] + sequence,
             [f"state{k}" for k in range(n_states)] + ["last_output"] + ["output"] * len(sequence))

    directions = dict(scan_input_directions=[1] * len(scan_inputs)) if attrs["go_backwards"] else {}
    outs = ctx.node("Scan", states + [zeros] + scan_inputs, outputs=n_states + 1 + len(sequence),
                    body=ctx.subgraph(body), num_scan_inputs=len(scan_inputs), **directions)
    final_states, last_output = outs[:n_states], outs[n_states]
    if attrs["return_sequences"]:
        ctx.bind(node.outputs[0], ctx.transpose(outs[-1], (1, 0, 2)))  # (time, batch, units) -> batch-major
    else:
        ctx.bind(node.outputs[0], last_output)
    for value, name in zip(node.outputs[1:], final_states):
        ctx.bind(value, name)
