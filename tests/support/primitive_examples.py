"""Example calls of every primitive: (inputs, attrs) where inputs are ("in", array) for
graph inputs (batch axis 0 dynamic) or ("param", array) for constant weights.

Backends are tested on these against the reference implementation; a test fails when
a registered primitive has no example here."""
from __future__ import annotations

import numpy as np

RNG = np.random.default_rng(42)


def f(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def pos(*shape):
    return RNG.uniform(0.1, 3.0, shape).astype(np.float32)


def i(*shape, high=5):
    return RNG.integers(0, high, shape).astype(np.int32)


def ties(*shape):
    """Few distinct values: windows with several maxima (which one gets the gradient)."""
    return RNG.integers(0, 3, shape).astype(np.float32)


X = lambda *s: ("in", f(*s))  # noqa: E731
P = lambda a: ("param", a)  # noqa: E731

UNARY_DOMAIN = {"log": pos, "sqrt": pos, "rsqrt": pos, "log1p": pos, "reciprocal": pos}
UNARY = ["identity", "neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "reciprocal", "tanh",
         "sigmoid", "relu", "erf", "sign", "floor", "softplus"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "greater", "greater_equal", "less", "less_equal",
          "equal", "not_equal", "relu_grad"]


def _rnn_weights(features, units, gates, gru_reset_after=False):
    bias = f(2, gates * units) if gru_reset_after else f(gates * units)
    return [P(f(features, gates * units, low=-0.5, high=0.5)), P(f(units, gates * units, low=-0.5, high=0.5)), P(bias)]


def _rnn(op, gates, extra=None, mask=False, states=0, **attrs):
    base = dict(units=3, activation="tanh", go_backwards=False, return_sequences=False,
                zero_output_for_mask=False, has_mask=mask, has_initial_state=bool(states))
    if op != "simple_rnn":
        base["recurrent_activation"] = "sigmoid"
    if op == "gru":
        base["reset_after"] = attrs.pop("reset_after", True)
    base.update(attrs)
    inputs = [("in", f(2, 4, 2))] + _rnn_weights(2, 3, gates, op == "gru" and base["reset_after"])
    if mask:
        m = np.ones((2, 4), np.float32)
        m[0, 2:] = 0
        inputs.append(("in", m))
    inputs += [("in", f(2, 3)) for _ in range(states)]
    return inputs, base


EXAMPLES = {
    **{op: [([("in", UNARY_DOMAIN.get(op, f)(3, 4, 5))], {})] for op in UNARY},
    **{op: [([X(3, 4, 5), ("in", f(3, 4, 5))], {}), ([X(2, 3, 4), P(pos(4))], {}), ([X(2, 1, 4), P(f(3, 1))], {})]
       for op in BINARY},
    "pow": [([("in", pos(3, 4)), P(f(4))], {})],
    "clip": [([X(3, 7)], dict(low=-0.5, high=1.0))],
    "cast": [([X(3, 4)], dict(dtype="int32")), ([("in", i(3, 4))], dict(dtype="float32"))],
    "where": [([("in", (f(3, 4) > 0).astype(np.float32)), X(3, 4), P(f(4))], {})],
    "reduce_sum": [([X(3, 4, 5)], dict(axes=(1, 2), keepdims=False)), ([X(3, 4, 5)], dict(axes=(-1,), keepdims=True))],
    "reduce_mean": [([X(3, 4, 5)], dict(axes=(1,), keepdims=False))],
    "reduce_max": [([X(3, 4, 5)], dict(axes=(2,), keepdims=True)), ([X(2, 3, 3, 4)], dict(axes=(1, 2), keepdims=False))],
    "reduce_min": [([X(3, 4, 5)], dict(axes=(1, 2), keepdims=False))],
    "softmax": [([X(3, 4, 5)], dict(axis=-1)), ([X(3, 4, 5)], dict(axis=1))],
    "log_softmax": [([X(3, 6)], dict(axis=-1))],
    "matmul": [([X(3, 5), P(f(5, 4))], {}),
               ([X(3, 5), P(f(5, 4)), P(f(4)), X(3, 4)],
                dict(epilogue=(("add", (("acc",), ("in", 0)), ()), ("sub", (("in", 1), ("t", 0)), ()),
                               ("tanh", (("t", 1),), ())))), ([X(2, 3, 5), P(f(5, 4))], {}), ([X(2, 2, 3, 4), ("in", f(2, 2, 4, 5))], {}),
               ([X(2, 3, 1, 4), P(f(3, 4, 2))], {})],
    "conv": [
        ([X(2, 7, 3), P(f(3, 3, 4))], dict(strides=(1,), dilations=(1,), pads=((1, 1),), groups=1)),
        ([X(2, 7, 3), P(f(3, 3, 4)), P(f(4)), X(2, 7, 4)],
         dict(strides=(1,), dilations=(1,), pads=((2, 0),), groups=1,
              epilogue=(("add", (("acc",), ("in", 0)), ()), ("add", (("t", 0), ("in", 1)), ())))),
        ([X(2, 8, 8, 3), P(f(3, 3, 3, 5))], dict(strides=(2, 2), dilations=(1, 1), pads=((0, 1), (0, 1)), groups=1)),
        ([X(2, 6, 6, 4), P(f(3, 3, 1, 8))], dict(strides=(1, 1), dilations=(2, 2), pads=((2, 2), (2, 2)), groups=4)),
        ([X(2, 6, 6, 4), P(f(1, 1, 4, 6))], dict(strides=(1, 1), dilations=(1, 1), pads=((0, 0), (0, 0)), groups=1)),
        ([X(2, 5, 5, 3), P(f(3, 3, 3, 4)), P(f(4)), X(2, 5, 5, 4)],
         dict(strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)), groups=1,
              epilogue=(("add", (("acc",), ("in", 0)), ()), ("add", (("t", 0), ("in", 1)), ()),
                        ("clip", (("t", 1),), (("high", 6.0), ("low", 0.0)))))),
        ([X(2, 4, 4, 4, 2), P(f(2, 2, 2, 2, 3))], dict(strides=(1, 2, 1), dilations=(1, 1, 1), pads=((0, 0),) * 3, groups=1)),
        ([X(2, 4, 4, 4, 2), P(f(3, 3, 3, 2, 3))],
         dict(strides=(2, 1, 1), dilations=(1, 1, 1), pads=((1, 1), (0, 1), (1, 0)), groups=1)),
        # A 9x9 'same' window: more taps than the native backend pads virtually.
        ([X(2, 9, 9, 2), P(f(9, 9, 2, 3))], dict(strides=(1, 1), dilations=(1, 1), pads=((4, 4), (4, 4)), groups=1)),
    ],
    "conv_transpose": [
        ([X(2, 4, 3), P(f(3, 2, 3))], dict(strides=(2,), dilations=(1,), pads=((0, 0),))),
        ([X(2, 3, 3, 2), P(f(3, 3, 4, 2))], dict(strides=(2, 2), dilations=(1, 1), pads=((1, 0), (1, -1)))),
        ([X(2, 3, 3, 2), P(f(2, 2, 4, 2)), P(f(4))],
         dict(strides=(2, 2), dilations=(1, 1), pads=((0, 0), (0, 0)),
              epilogue=(("mul", (("acc",), ("in", 0)), ()), ("sigmoid", (("t", 0),), ())))),
    ],
    "max_pool": [([X(2, 6, 6, 3)], dict(window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))),
                 ([X(2, 7, 5, 9)], dict(window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))),  # odd sizes
                 ([X(2, 7, 3)], dict(window=(3,), strides=(2,), pads=((1, 1),)))],
    "avg_pool": [([X(2, 6, 6, 3)], dict(window=(3, 3), strides=(2, 2), pads=((1, 1), (1, 1)), count_include_pad=False)),
                 ([X(2, 5, 5, 2)], dict(window=(2, 2), strides=(1, 1), pads=((0, 0), (0, 0)), count_include_pad=True))],
    "reshape": [([X(3, 4, 5)], dict(shape=(None, 20))), ([X(3, 4, 6)], dict(shape=(None, 2, 3))),
                ([X(3, 4, 5)], dict(shape=(None, 5, 4)))],
    "transpose": [([X(2, 3, 4, 5)], dict(perm=(0, 3, 1, 2))), ([X(2, 3, 4)], dict(perm=(2, 0, 1))),
                  ([X(37, 70)], dict(perm=(1, 0)))],
    "concat": [([X(2, 3, 4), X(2, 2, 4)], dict(axis=1)), ([X(2, 3), X(2, 5), X(2, 1)], dict(axis=-1))],
    "slice": [([X(3, 6, 5)], dict(axes=(1, 2), starts=(1, 0), stops=(5, 5), steps=(2, 1))),
              ([X(3, 6)], dict(axes=(1,), starts=(-1,), stops=(-7,), steps=(-1,)))],
    "pad": [([X(2, 3, 4)], dict(pads=((0, 0), (1, 2), (0, 1)), value=0.0)),
            ([X(2, 3)], dict(pads=((0, 0), (2, 0)), value=-1.5))],
    "broadcast_to": [([X(2, 1, 4)], dict(shape=(None, 3, 4)))],
    "repeat": [([X(2, 3, 4)], dict(axis=1, repeats=2))],
    "gather": [([P(f(10, 4)), ("in", i(3, 5, high=10))], {})],
    "resize": [([X(2, 3, 4, 2)], dict(sizes=(6, 5), method="bilinear")),
               ([X(2, 4, 4, 2)], dict(sizes=(8, 6), method="nearest"))],
    "fused_elementwise": [
        # relu(x * w + c) with a broadcast per-channel w, then a where on the sign of x
        ([X(3, 4, 5), P(f(5)), P(f(5))],
         dict(program=(("mul", (("in", 0), ("in", 1)), ()), ("add", (("t", 0), ("in", 2)), ()), ("relu", (("t", 1),), ()),
                       ("greater", (("in", 0), ("t", 2)), ()), ("where", (("t", 3), ("in", 0), ("t", 2)), ()),
                       ("clip", (("t", 4),), (("high", 1.5), ("low", -1.0)))))),
    ],
    "simple_rnn": [_rnn("simple_rnn", 1), _rnn("simple_rnn", 1, return_sequences=True, go_backwards=True, mask=True)],
    "lstm": [_rnn("lstm", 4), _rnn("lstm", 4, return_sequences=True, mask=True, states=2),
             _rnn("lstm", 4, go_backwards=True, recurrent_activation="hard_sigmoid", mask=True, zero_output_for_mask=True,
                  return_sequences=True)],
    "gru": [_rnn("gru", 3), _rnn("gru", 3, reset_after=False, return_sequences=True, states=1),
            _rnn("gru", 3, mask=True, go_backwards=True)],
}


def build_example_graph(op, inputs, attrs):
    """A one-node graph for an example; returns (graph, input arrays)."""
    from kcompile.ir import GraphBuilder

    b = GraphBuilder(f"example_{op}")
    values, arrays = [], []
    for k, (kind, array) in enumerate(inputs):
        if kind == "in":
            values.append(b.input(f"x{k}", (None,) + array.shape[1:], str(array.dtype)))
            arrays.append(array)
        else:
            values.append(b.param(array, f"w{k}"))
    out = b.emit(op, *values, **attrs)
    outs = list(out) if isinstance(out, tuple) else [out]
    b.output(outs)
    return b.graph, arrays


def build_combined_graph(ops=None, batch: int = 2):
    """Every example of `ops` (default: all) in one graph, inputs cut to one batch size,
    so a backend compiles once, composites written out as a backend gets them. Returns
    (graph, input arrays, [(op, output index range)])."""
    from kcompile.ir import GraphBuilder
    from kcompile.passes import expand_composites

    b = GraphBuilder("all_examples")
    arrays, outputs, spans = [], [], []
    for op in sorted(ops or EXAMPLES):
        for n, (inputs, attrs) in enumerate(EXAMPLES[op]):
            values = []
            for k, (kind, array) in enumerate(inputs):
                if kind == "in":
                    values.append(b.input(f"{op}{n}_x{k}", (None,) + array.shape[1:], str(array.dtype)))
                    arrays.append(array[:batch])
                else:
                    values.append(b.param(array, f"{op}{n}_w{k}"))
            out = b.emit(op, *values, **attrs)
            outs = list(out) if isinstance(out, tuple) else [out]
            spans.append((f"{op}[{n}]", len(outputs), len(outputs) + len(outs)))
            outputs.extend(outs)
    b.output(outputs)
    return expand_composites(b.graph), arrays, spans


# -- primitives the gradient rules emit (kcompile/ir/ops/grad_ops.py) ------------------------
EXAMPLES.update({
    "reduce_batch": [([X(3, 4, 5)], dict(axis=0, keepdims=False)), ([X(3, 4)], dict(axis=0, keepdims=True))],
    # BatchNormalization in training mode (composite: backends get its decomposition)
    "batch_norm_train": [([X(4, 3, 5), P(pos(5)), P(f(5))], dict(axes=(0, 1), epsilon=1e-3)),
                         ([X(3, 2, 2, 4), P(f(1, 1, 1, 4)), P(f(4))], dict(axes=(0, 1, 2), epsilon=0.5))],
    "conv_weight_grad": [
        ([X(2, 7, 3), X(2, 7, 4)], dict(window=(3,), strides=(1,), dilations=(1,), pads=((1, 1),))),
        ([X(2, 8, 8, 3), X(2, 4, 4, 5)], dict(window=(3, 3), strides=(2, 2), dilations=(1, 1), pads=((0, 1), (0, 1)))),
        ([X(2, 6, 6, 2), X(2, 4, 4, 3)], dict(window=(2, 2), strides=(1, 1), dilations=(2, 2), pads=((0, 0), (0, 0)))),
    ],
    "max_pool_grad": [([X(2, 6, 6, 3), X(2, 3, 3, 3)], dict(window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))),
                      # windows that tile all but the last row and column (no gradient there)
                      ([X(2, 7, 5, 3), X(2, 3, 2, 3)], dict(window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))),
                      ([("in", ties(2, 6, 6, 9)), X(2, 3, 3, 9)], dict(window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))),
                      ([X(2, 7, 3), X(2, 4, 3)], dict(window=(3,), strides=(2,), pads=((1, 1),)))],
    "scatter_add": [([("in", i(3, 5, high=10)), X(3, 5, 4)], dict(rows=10))],
    # the training pipeline's fused reductions (composite: backends without a lowering get
    # the program, then reduce_sum)
    "fused_reduce_sum": [
        ([X(3, 2, 2, 4), P(f(1, 1, 1, 4))],
         dict(program=(("sub", (("in", 0), ("in", 1)), ()), ("square", (("t", 0),), ())), axes=(1, 2), keepdims=True)),
        ([X(3, 5, 4), X(3, 5, 4)], dict(program=(("mul", (("in", 0), ("in", 1)), ()),), axes=(1,), keepdims=False)),
    ],
})
