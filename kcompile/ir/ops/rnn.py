"""Recurrent layers as primitives: simple_rnn, lstm, gru (Keras semantics).

Each cell is written once as a recipe over an `ops` object that is either a
GraphBuilder (the decomposition: the loop unrolled into IR, used by autodiff and by
backends without a dedicated kernel) or `NumpyOps` (the reference implementation).

Inputs: x (B, T, F), kernel (F, gates*U), recurrent_kernel (U, gates*U), bias, then
the mask (B, T) when `has_mask`, then the initial states when `has_initial_state`.
Outputs: y ((B, T, U) with return_sequences, else (B, U)), then the final states.
"""
from __future__ import annotations

import numpy as np

from ...errors import IRError
from ..graph import TensorType
from ..registry import Kind, Primitive, define, get_primitive
from .grad_ops import grad_by_decomposition


class NumpyOps:
    """Runs primitive calls eagerly with their reference implementations."""

    @staticmethod
    def const(value, dtype="float32"):
        return np.asarray(value, dtype=dtype)

    def __getattr__(self, name):
        reference = get_primitive(name).reference
        return lambda *args, **attrs: reference(*args, **attrs)


NUMPY_OPS = NumpyOps()

# Activations an RNN cell may use, as recipes over `ops`.
ACTIVATIONS = {
    "tanh": lambda ops, x: ops.tanh(x),
    "sigmoid": lambda ops, x: ops.sigmoid(x),
    "relu": lambda ops, x: ops.relu(x),
    "linear": lambda ops, x: x,
    # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid": lambda ops, x: _hard_sigmoid(ops, x, 1 / 6),
    # tf-keras (Keras 2): clip(0.2 x + 0.5, 0, 1)
    "hard_sigmoid_keras2": lambda ops, x: _hard_sigmoid(ops, x, 0.2),
}


def _hard_sigmoid(ops, x, slope):
    return ops.clip(ops.add(ops.mul(x, ops.const(slope)), ops.const(0.5)), low=0.0, high=1.0)


def _bias_row(ops, bias, row):
    """Row `row` of a (2, gates * U) GRU bias, as a vector."""
    part = ops.slice(bias, axes=(0,), starts=(row,), stops=(row + 1,), steps=(1,))
    return ops.reshape(part, shape=(bias.shape[-1],))


def _split(ops, v, n):
    """Split the last axis into n equal parts."""
    size = v.shape[-1] // n
    axis = len(v.shape) - 1
    return [ops.slice(v, axes=(axis,), starts=(i * size,), stops=((i + 1) * size,), steps=(1,)) for i in range(n)]


def _act(name):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise IRError(f"RNN activation {name!r} is not supported (use one of {sorted(ACTIVATIONS)})") from None


def simple_rnn_cell(ops, xw, states, weights, attrs):
    (h,) = states
    recurrent_kernel, _bias = weights
    act = _act(attrs["activation"])
    h_new = act(ops, ops.add(xw, ops.matmul(h, recurrent_kernel)))
    return h_new, [h_new]


def lstm_cell(ops, xw, states, weights, attrs):
    h, c = states
    recurrent_kernel, _bias = weights
    act, rec = _act(attrs["activation"]), _act(attrs["recurrent_activation"])
    z = ops.add(xw, ops.matmul(h, recurrent_kernel))
    i, f, g, o = _split(ops, z, 4)
    c_new = ops.add(ops.mul(rec(ops, f), c), ops.mul(rec(ops, i), act(ops, g)))
    h_new = ops.mul(rec(ops, o), act(ops, c_new))
    return h_new, [h_new, c_new]


def gru_cell(ops, xw, states, weights, attrs):
    (h,) = states
    recurrent_kernel, bias = weights
    act, rec = _act(attrs["activation"]), _act(attrs["recurrent_activation"])
    x_z, x_r, x_h = _split(ops, xw, 3)
    if attrs["reset_after"]:
        recurrent_bias = _bias_row(ops, bias, 1)
        r_z, r_r, r_h = _split(ops, ops.add(ops.matmul(h, recurrent_kernel), recurrent_bias), 3)
        z = rec(ops, ops.add(x_z, r_z))
        r = rec(ops, ops.add(x_r, r_r))
        r_h = ops.mul(r, r_h)
    else:
        k_z, k_r, k_h = _split(ops, recurrent_kernel, 3)
        z = rec(ops, ops.add(x_z, ops.matmul(h, k_z)))
        r = rec(ops, ops.add(x_r, ops.matmul(h, k_r)))
        r_h = ops.matmul(ops.mul(r, h), k_h)
    hh = act(ops, ops.add(x_h, r_h))
    h_new = ops.add(ops.mul(z, h), ops.mul(ops.sub(ops.const(1.0), z), hh))
    return h_new, [h_new]


def input_bias(ops, bias, attrs):
    """The part of the bias added to x @ kernel (GRU with reset_after keeps two rows)."""
    if attrs.get("reset_after"):
        return _bias_row(ops, bias, 0)
    return bias


def _slice_time(ops, v, t):
    rank = len(v.shape)
    step = ops.slice(v, axes=(1,), starts=(t,), stops=(t + 1,), steps=(1,))
    return ops.reshape(step, shape=(None,) + tuple(v.shape[2:]) if rank > 2 else (None, 1))


def run_rnn(ops, cell, n_states, x, kernel, recurrent_kernel, bias, *rest, **attrs):
    """The Keras RNN loop (keras.backend.rnn) over a cell recipe."""
    units = attrs["units"]
    mask = rest[0] if attrs["has_mask"] else None
    rest = rest[1:] if attrs["has_mask"] else rest
    if attrs["has_initial_state"]:
        states = list(rest)
    else:
        # Zero states of batch 1; broadcasting widens them to the batch in step one.
        states = [ops.const(np.zeros((1, units), np.float32)) for _ in range(n_states)]
    # Project every time step through the input kernel at once.
    xw = ops.add(ops.matmul(x, kernel), input_bias(ops, bias, attrs))
    steps = range(x.shape[1] - 1, -1, -1) if attrs["go_backwards"] else range(x.shape[1])
    outputs, prev_out = [], ops.const(np.zeros((1, units), np.float32))
    for t in steps:
        out, new_states = cell(ops, _slice_time(ops, xw, t), states, (recurrent_kernel, bias), attrs)
        if mask is not None:
            m = _slice_time(ops, mask, t)
            hold = ops.const(np.zeros((1, units), np.float32)) if attrs["zero_output_for_mask"] else prev_out
            out = ops.where(m, out, hold)
            new_states = [ops.where(m, n, s) for n, s in zip(new_states, states)]
        states, prev_out = new_states, out
        outputs.append(out)
    if attrs["return_sequences"]:
        y = ops.concat(*[ops.reshape(o, shape=(None, 1, units)) for o in outputs], axis=1)
    else:
        y = outputs[-1]
    return (y, *states)


def _rnn_infer(n_states, gates):
    def infer(x, kernel, recurrent_kernel, bias, *rest, units, return_sequences, has_mask, has_initial_state, **_):
        if x.rank != 3 or x.shape[1] is None:
            raise IRError(f"RNN input must be (batch, time, features) with a static time length, got {x}")
        if kernel.shape != (x.shape[2], gates * units) or recurrent_kernel.shape != (units, gates * units):
            raise IRError(f"RNN weights {kernel} and {recurrent_kernel} do not fit input {x} and {units} units")
        expected = int(has_mask) + (n_states if has_initial_state else 0)
        if len(rest) != expected:
            raise IRError(f"RNN takes {expected} inputs after the bias, got {len(rest)}")
        batch = x.shape[0]
        y = TensorType((batch, x.shape[1], units) if return_sequences else (batch, units), x.dtype)
        return [y] + [TensorType((batch, units), x.dtype)] * n_states

    return infer


def _rnn_primitive(name, cell, n_states, gates, doc):
    def reference(*arrays, **attrs):
        outs = run_rnn(NUMPY_OPS, cell, n_states, *arrays, **attrs)
        batch = arrays[0].shape[0]
        return tuple(np.ascontiguousarray(np.broadcast_to(o, (batch,) + o.shape[1:]), dtype=np.float32) for o in outs)

    def decompose(b, *values, **attrs):
        return run_rnn(b, cell, n_states, *values, **attrs)

    def grad(b, node, out_grads):
        """The unrolled loop (the decomposition), differentiated: backpropagation through time."""
        return grad_by_decomposition(b, node, out_grads)

    return define(
        Primitive(name, Kind.OPAQUE, infer=_rnn_infer(n_states, gates), reference=reference, grad=grad,
                  decompose=decompose, doc=doc)
    )


CELLS = {
    "simple_rnn": (simple_rnn_cell, 1, 1),
    "lstm": (lstm_cell, 2, 4),
    "gru": (gru_cell, 1, 3),
}

for _name, (_cell, _n_states, _gates) in CELLS.items():
    _rnn_primitive(_name, _cell, _n_states, _gates, f"Keras {_name} layer over a whole sequence")
