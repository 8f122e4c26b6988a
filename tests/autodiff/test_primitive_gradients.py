"""Every primitive's gradient rule against central finite differences in float64, on
the examples of tests/support/primitive_examples.py (plus a few cases they lack)."""
import numpy as np
import pytest

from kcompile.autodiff import gradient_graph
from kcompile.ir import GraphBuilder, all_primitives, interpret, verify
from support.primitive_examples import EXAMPLES, build_example_graph, f

from .fd import numeric_gradient, run64

ALL = sorted(all_primitives())

# Cases the examples lack: a float -> float cast (the examples cast to and from int),
# a depthwise conv with a channel multiplier, a strided slice whose spread runs past the
# end, an overlapping max pool with padding, and an RNN's final states.
EXTRA = {
    "cast": [([("in", f(3, 4))], dict(dtype="float32"))],
    "conv": [([("in", f(2, 5, 5, 2)), ("param", f(3, 3, 1, 4))],
              dict(strides=(2, 2), dilations=(1, 1), pads=((1, 1), (1, 1)), groups=2))],
    "slice": [([("in", f(2, 7, 3))], dict(axes=(1,), starts=(1,), stops=(6,), steps=(3,))),
              ([("in", f(2, 7, 3))], dict(axes=(1, 2), starts=(6, 0), stops=(0, 3), steps=(-2, 2)))],
    "max_pool": [([("in", f(2, 5, 5, 2))], dict(window=(3, 3), strides=(1, 2), pads=((1, 1), (0, 1))))],
    "conv_transpose": [([("in", f(2, 3, 2)), ("param", f(2, 3, 2))],
                        dict(strides=(3,), dilations=(2,), pads=((1, 2),)))],
    "lstm": [([("in", f(2, 3, 2)), ("param", f(2, 8, low=-0.5, high=0.5)), ("param", f(2, 8, low=-0.5, high=0.5)),
               ("param", f(8)), ("in", f(2, 2)), ("in", f(2, 2))],
              dict(units=2, activation="tanh", recurrent_activation="sigmoid", go_backwards=False,
                   return_sequences=True, zero_output_for_mask=False, has_mask=False, has_initial_state=True))],
    "avg_pool": [([("in", f(2, 7, 3))], dict(window=(3,), strides=(2,), pads=((0, 1),), count_include_pad=False))],
}


def cases():
    for op in ALL:
        for n, (inputs, attrs) in enumerate(EXAMPLES[op] + EXTRA.get(op, [])):
            yield pytest.param(op, inputs, attrs, id=f"{op}-{n}")


def not_differentiable(op, attrs) -> set:
    """Inputs used as selectors (0/1 masks, the pooled input that picks where a max pool's
    gradient goes): finite differences jump where the selection changes."""
    if op in ("where", "max_pool_grad"):
        return {0}
    if attrs.get("has_mask"):
        return {4}
    return set()


def loss_graph(op, inputs, attrs, rng):
    """The example's node, then loss = sum over float outputs y_i of sum(y_i * r_i),
    per example (shape (batch,)) where the outputs have a batch axis, r_i random inputs."""
    graph, arrays = build_example_graph(op, inputs, attrs)
    feed = {v.name: a for v, a in zip(graph.inputs, arrays)}
    shapes = [out.shape for out in interpret(graph, arrays)]  # a reshape may fold axes into the batch
    b = GraphBuilder(graph=graph)
    terms = []
    for k, y in enumerate(graph.outputs):
        if y.dtype != "float32":
            continue
        r = b.input(f"r{k}", y.shape)
        feed[r.name] = rng.normal(size=shapes[k]).astype(np.float32)
        term = b.mul(y, r)
        keep = y.type.dynamic_axis
        axes = tuple(i for i in range(y.rank) if i != keep)
        terms.append(b.reduce_sum(term, axes=axes, keepdims=False) if axes else term)
    if not terms:
        return None, None
    loss = terms[0]
    for t in terms[1:]:
        loss = b.add(loss, t)
    b.output(graph.outputs + [loss])
    return verify(b.graph), feed


@pytest.mark.parametrize("op,inputs,attrs", cases())
def test_gradient_matches_finite_differences(op, inputs, attrs):
    rng = np.random.default_rng(7)
    graph, feed = loss_graph(op, inputs, attrs, rng)
    if graph is None:
        pytest.skip("no float output to differentiate")
    node = graph.nodes[0]
    skip = {node.inputs[k].name for k in not_differentiable(op, attrs)}
    float_params = [name for name, a in graph.params.items() if a.dtype == np.float32]
    train = gradient_graph(graph, loss_output_index=len(graph.outputs) - 1, wrt=float_params, reduction="sum",
                           input_grads=True)
    verify(train)
    grads = train.meta["autodiff"]["gradient_outputs"]
    train_feed = dict(feed, **{name: graph.params[name] for name in float_params})
    env = run64(train, train_feed)
    loss_name = graph.outputs[-1].name

    precise = all(env[v.name].dtype == np.float64 for v in node.outputs if v.dtype == "float32")
    eps, rtol = (1e-6, 1e-6) if precise else (1e-3, 2e-3)
    # The float32 interpreter runs the same graph and roughly agrees.
    as32 = interpret(train, [train_feed[v.name] for v in train.inputs])

    checked = 0
    for name, index in grads.items():
        if name in skip:
            continue
        value = train.outputs[index]
        base = train_feed[name]
        analytic = env[value.name]
        assert analytic.shape == np.shape(base), f"{op}: gradient of {name} has shape {analytic.shape}"
        np.testing.assert_allclose(as32[index], analytic, rtol=1e-3, atol=1e-4 * (np.abs(analytic).max() + 1),
                                   err_msg=f"{op}: float32 gradient of {name}")

        def objective(array, name=name):
            """The summed loss with `name` (an input or a param) set to `array`."""
            g = graph.copy()
            if name in g.params:
                g.params = dict(g.params, **{name: array})
                return float(np.sum(run64(g, feed)[loss_name]))
            return float(np.sum(run64(g, dict(feed, **{name: array}))[loss_name]))

        indices, numeric, directions = numeric_gradient(objective, base, eps, rng)
        scale = max(np.abs(numeric).max(initial=0.0), np.abs(analytic).max(initial=0.0), 1e-3)
        got = analytic.reshape(-1)[indices]
        assert np.all(np.abs(got - numeric) <= rtol * scale + 1e-9), (
            f"{op}: d/d{name} max error {np.abs(got - numeric).max():.3g} (scale {scale:.3g})\n"
            f"analytic {got[:8]}\nnumeric  {numeric[:8]}"
        )
        for v, d in directions:
            a = float(np.sum(analytic * v))
            assert abs(a - d) <= rtol * max(abs(d), scale) * 10 + 1e-9, f"{op}: directional d/d{name}: {a} vs {d}"
        checked += 1
    assert checked, f"{op}: nothing was checked"


def test_every_primitive_has_a_gradient_rule():
    missing = sorted(name for name, prim in all_primitives().items() if prim.grad is None)
    assert missing == []


def test_every_primitive_gradient_is_exercised():
    """Each primitive's rule runs in the finite-difference test (an example with a float output)."""
    for op in ALL:
        examples = EXAMPLES[op] + EXTRA.get(op, [])
        assert any(loss_graph(op, i, a, np.random.default_rng(0))[0] is not None for i, a in examples), op


def test_batch_norm_train_gradient_is_the_closed_form(monkeypatch):
    """batch_norm_train exists for its gradient rule: after the passes it makes fewer
    passes over the activations than the gradient of its decomposition, and agrees with it."""
    import dataclasses

    from kcompile.ir import registry
    from kcompile.ir.ops.grad_ops import grad_by_decomposition
    from kcompile.passes import run_pipeline

    rng = np.random.default_rng(0)
    b = GraphBuilder("bn")
    x = b.input("x", (None, 6, 6, 4))
    scale, shift = f(4), f(4)
    gamma, beta = b.param(scale, "gamma"), b.param(shift, "beta")
    y, _, _ = b.batch_norm_train(x, gamma, beta, axes=(0, 1, 2), epsilon=1e-3)
    weights = b.param(f(6, 6, 4), "weights")
    b.output([b.reduce_sum(b.mul(b.relu(y), weights), axes=(1, 2, 3))])
    feed = [rng.normal(size=(5, 6, 6, 4)).astype(np.float32), scale, shift]  # x, then the wrt params

    def optimized_gradient():
        return run_pipeline(gradient_graph(b.graph, wrt=["gamma", "beta"], input_grads=True))

    def full_size_nodes(graph):
        return sum(1 for n in graph.nodes if n.output.shape == x.shape)

    closed = optimized_gradient()
    prim = registry.get_primitive("batch_norm_train")
    monkeypatch.setitem(registry._PRIMITIVES, "batch_norm_train",
                        dataclasses.replace(prim, grad=lambda bb, node, g: grad_by_decomposition(bb, node, g)))
    decomposed = optimized_gradient()
    assert full_size_nodes(closed) <= full_size_nodes(decomposed) - 3, (full_size_nodes(closed),
                                                                         full_size_nodes(decomposed))
    for got, want in zip(interpret(closed, feed), interpret(decomposed, feed)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
