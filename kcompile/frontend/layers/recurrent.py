"""Recurrent layers (SimpleRNN, LSTM, GRU, RNN over one cell) and the wrappers
Bidirectional and TimeDistributed."""
from __future__ import annotations

import numpy as np

from ...ir.ops.rnn import ACTIVATIONS as RNN_ACTIVATIONS
from ..registry import lowers
from ..weights import LayerWeights
from .activations import activation_name

# Keras class -> (IR primitive, gate count, state count)
RNN_KINDS = {
    "SimpleRNN": ("simple_rnn", 1, 1),
    "LSTM": ("lstm", 4, 2),
    "GRU": ("gru", 3, 1),
}
CELL_CLASSES = {"SimpleRNNCell": "SimpleRNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}


def _rnn_activation(ctx, key, default):
    name = activation_name(ctx.config.get(key, default))
    if name == "hard_sigmoid" and ctx.keras_major < 3:
        name = "hard_sigmoid_keras2"
    if name not in RNN_ACTIVATIONS:
        raise ctx.error(f"{key} {name!r} is not supported in recurrent layers ({', '.join(RNN_ACTIVATIONS)})")
    return name


def lower_rnn(ctx, kind: str, config: dict, x, initial_state=None):
    """Emit one RNN primitive for a layer whose (merged) config is `config`."""
    b = ctx.b
    op, gates, n_states = RNN_KINDS[kind]
    if config.get("stateful"):
        raise ctx.error("stateful RNNs are not supported: kcompile's predict keeps no state between calls")
    if config.get("time_major"):
        raise ctx.error("time_major RNNs are not supported")
    if x.rank != 3:
        raise ctx.error(f"expects (batch, time, features) input, got {x.type}")
    units = config["units"]
    kernel = ctx.weight(0, "kernel", (x.shape[-1], gates * units))
    recurrent = ctx.weight(1, "recurrent_kernel", (units, gates * units))
    reset_after = bool(config.get("reset_after", kind == "GRU" and ctx.keras_major >= 3))
    if config.get("use_bias", True):
        bias_shape = (2, gates * units) if kind == "GRU" and reset_after else (gates * units,)
        bias = ctx.weight(2, "bias", bias_shape)
    else:
        bias = ctx.const(np.zeros((2, gates * units) if kind == "GRU" and reset_after else (gates * units,), np.float32))
    inputs = [x, kernel, recurrent, bias]
    mask = ctx.masks[0] if ctx.masks else None
    if mask is not None:
        inputs.append(mask)
    states = list(initial_state or [])
    if states and len(states) != n_states:
        raise ctx.error(f"takes {n_states} initial states, got {len(states)}")
    inputs.extend(states)
    attrs = dict(
        units=units,
        activation=_rnn_activation(ctx, "activation", "tanh"),
        go_backwards=bool(config.get("go_backwards", False)),
        return_sequences=bool(config.get("return_sequences", False)),
        zero_output_for_mask=bool(config.get("zero_output_for_mask", False)),
        has_mask=mask is not None,
        has_initial_state=bool(states),
    )
    if kind != "SimpleRNN":
        attrs["recurrent_activation"] = _rnn_activation(ctx, "recurrent_activation", "sigmoid")
    if kind == "GRU":
        attrs["reset_after"] = reset_after
    outputs = b.emit(op, *inputs, **attrs)
    y, final_states = outputs[0], list(outputs[1:])
    out_mask = mask if attrs["return_sequences"] else None
    if config.get("return_state"):
        ctx.output_masks = [out_mask] + [None] * n_states
        return (y, *final_states)
    ctx.output_masks = [out_mask]
    return y


def _split_inputs(x, args, initial_state):
    """The sequence and its initial states, which come as a kwarg, as extra positional
    arguments, or (tf-keras files) as further inputs of the call."""
    if isinstance(x, (list, tuple)):
        x, args = x[0], tuple(x[1:])
    return x, _initial_state(args, initial_state)


def _initial_state(args, initial_state):
    if initial_state is None and args:
        initial_state = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    if initial_state is not None and not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    return initial_state


def _rnn_layer(kind: str):
    def lower(ctx, x, *args, initial_state=None, **_ignored):
        return lower_rnn(ctx, kind, ctx.config, *_split_inputs(x, args, initial_state))

    return lower


for _kind in RNN_KINDS:
    lowers(_kind, masking="custom")(_rnn_layer(_kind))


@lowers("RNN", masking="custom")
def generic_rnn(ctx, x, *args, initial_state=None, **_ignored):
    cell = ctx.cfg("cell")
    kind = CELL_CLASSES.get(cell.get("class_name"))
    if kind is None:
        raise ctx.error(f"RNN over a {cell.get('class_name')!r} cell is not supported (one of {', '.join(CELL_CLASSES)})")
    config = {**cell.get("config", {}), **{k: v for k, v in ctx.config.items() if k != "cell"}}
    return lower_rnn(ctx, kind, config, *_split_inputs(x, args, initial_state))


def _split_directions(ctx) -> tuple:
    """The forward and backward layers' saved weights."""
    saved = ctx.saved
    if saved.children:
        return saved.child("forward_layer"), saved.child("backward_layer")
    own = saved.own
    forward = [(n, a) for n, a in own if n and "/forward_" in f"/{n}"]
    backward = [(n, a) for n, a in own if n and "/backward_" in f"/{n}"]
    if len(forward) + len(backward) != len(own):
        half = len(own) // 2
        forward, backward = own[:half], own[half:]
    return LayerWeights(forward), LayerWeights(backward)


@lowers("Bidirectional", masking="custom")
def bidirectional(ctx, x, *args, initial_state=None, **_ignored):
    b = ctx.b
    forward_config = dict(ctx.cfg("layer"))
    backward_config = ctx.config.get("backward_layer")
    if backward_config is None:
        inner = dict(forward_config["config"])
        inner.update(go_backwards=not inner.get("go_backwards", False), name=f"backward_{inner['name']}")
        backward_config = {**forward_config, "config": inner}
    configs = []
    for cfg in (forward_config, backward_config):
        inner = dict(cfg["config"])
        inner["zero_output_for_mask"] = inner.get("return_sequences", False)
        configs.append({**cfg, "config": inner})
    return_sequences = configs[0]["config"].get("return_sequences", False)
    return_state = configs[0]["config"].get("return_state", False)
    mask = ctx.masks[0] if ctx.masks else None
    x, states = _split_inputs(x, args, initial_state)
    forward_weights, backward_weights = _split_directions(ctx)
    half = len(states) // 2 if states else 0
    forward_in = [x] + (list(states[:half]) if states else [])
    backward_in = [x] + (list(states[half:]) if states else [])
    fwd = ctx.lower_sublayer(configs[0], forward_weights, *forward_in, masks=[mask])
    bwd = ctx.lower_sublayer(configs[1], backward_weights, *backward_in, masks=[mask])
    y, y_rev = fwd[0][0], bwd[0][0]
    if return_sequences:
        y_rev = b.slice(y_rev, axes=(1,), starts=(-1,), stops=(-y_rev.shape[1] - 1,), steps=(-1,))
    merge = ctx.config.get("merge_mode", "concat")
    merged = {
        "concat": lambda: [b.concat(y, y_rev, axis=-1)],
        "sum": lambda: [b.add(y, y_rev)],
        "ave": lambda: [b.mul(b.add(y, y_rev), b.const(0.5))],
        "mul": lambda: [b.mul(y, y_rev)],
        None: lambda: [y, y_rev],
    }
    if merge not in merged:
        raise ctx.error(f"merge_mode {merge!r} is not supported")
    outputs = merged[merge]()
    out_mask = mask if return_sequences else None
    ctx.output_masks = [out_mask] * len(outputs)
    if return_state:
        state_values = [v for v, _ in fwd[1:]] + [v for v, _ in bwd[1:]]
        ctx.output_masks += [None] * len(state_values)
        return (*outputs, *state_values)
    return tuple(outputs) if len(outputs) > 1 else outputs[0]


@lowers("TimeDistributed", masking="custom")
def time_distributed(ctx, x):
    """Fold time into the batch, run the wrapped layer, unfold."""
    b = ctx.b
    steps = x.shape[1]
    folded = b.reshape(x, shape=(None,) + x.shape[2:])
    ((y, _),) = ctx.lower_sublayer(ctx.cfg("layer"), ctx.saved.child("layer") if ctx.saved.children else ctx.saved, folded)
    ctx.output_masks = [ctx.masks[0] if ctx.masks else None]
    return b.reshape(y, shape=(None, steps) + y.shape[1:])
