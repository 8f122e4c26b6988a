"""gradient_graph / trainable_as_inputs / trainable_params on small hand-built graphs."""
import numpy as np
import pytest

from kcompile.autodiff import LOSS_GRAD_INPUT, gradient_graph, trainable_as_inputs, trainable_params
from kcompile.errors import IRError
from kcompile.ir import GraphBuilder, interpret, verify

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)
BIAS = RNG.normal(size=(3,)).astype(np.float32)
UNUSED = RNG.normal(size=(3,)).astype(np.float32)
X = RNG.normal(size=(5, 4)).astype(np.float32)


def dense_graph():
    """y = x @ w + bias; loss = sum(y * y, axis 1) per example; a second output reads `other`."""
    b = GraphBuilder("dense")
    x = b.input("x", (None, 4))
    y = b.add(b.matmul(x, b.param(W, "w")), b.param(BIAS, "bias"))
    loss = b.reduce_sum(b.square(y), axes=(1,), keepdims=False)
    side = b.mul(y, b.param(UNUSED, "other"))
    b.output([y, loss, side], ["y", "loss", "side"])
    graph = verify(b.graph)
    graph.meta["keras_weights"] = {
        "w": {"layer": "d", "index": 0, "role": "kernel", "trainable": True},
        "bias": {"layer": "d", "index": 1, "role": "bias", "trainable": True},
        "other": {"layer": "bn", "index": 2, "role": "moving_mean", "trainable": True},
    }
    return graph


def expected(batch_weights):
    """d/dw, d/dbias, d/dx of sum_i batch_weights[i] * loss_i."""
    y = X @ W + BIAS
    dy = 2 * y * batch_weights[:, None]
    return X.T @ dy, dy.sum(axis=0), dy @ W.T


def test_trainable_params_follow_keras_weights():
    graph = dense_graph()
    assert trainable_params(graph) == ["w", "bias"]  # BN statistics are not trained
    del graph.meta["keras_weights"]
    assert trainable_params(graph) == ["w", "bias", "other"]


def test_trainable_as_inputs_keeps_the_function():
    graph = dense_graph()
    train = trainable_as_inputs(graph, ["w", "bias"])
    assert [v.name for v in train.inputs] == ["x", "w", "bias"]
    assert set(train.params) == {"other"} and "w" in graph.params  # the original is untouched
    assert train.meta["param_inputs"] == ("w", "bias")
    for got, want in zip(interpret(train, [X, W, BIAS]), interpret(graph, [X])):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(IRError, match="not a parameter"):
        trainable_as_inputs(graph, ["nope"])


@pytest.mark.parametrize("reduction", ["mean", "sum", "input"])
def test_reductions_and_input_gradients(reduction):
    graph = dense_graph()
    train = gradient_graph(graph, loss_output_index=1, reduction=reduction, input_grads=True)
    meta = train.meta["autodiff"]
    assert meta["wrt"] == ("w", "bias") and meta["reduction"] == reduction
    names = [v.name for v in train.inputs]
    assert names[:3] == ["x", "w", "bias"]
    assert [names[i] for i in meta["param_inputs"]] == ["w", "bias"]
    assert train.output_names[:3] == ["y", "loss", "side"]
    assert train.output_names[3:] == ["grad/w", "grad/bias", "grad/x"]
    feed = [X, W, BIAS]
    weights = {"mean": np.full(5, 1 / 5), "sum": np.ones(5), "input": RNG.uniform(size=5)}[reduction]
    if reduction == "input":
        assert names[3] == LOSS_GRAD_INPUT
        feed.append(weights.astype(np.float32))
    outs = interpret(train, feed)
    for got, want in zip(outs[3:], expected(weights)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Any batch size: the batch is dynamic.
    assert interpret(train, [X[:2]] + feed[1:3] + ([weights[:2].astype(np.float32)] if reduction == "input" else []))


def test_parameters_off_the_loss_path_get_zero_gradients():
    graph = dense_graph()
    train = gradient_graph(graph, loss_output_index=1, wrt=["other", "w"])
    outs = interpret(train, [X, UNUSED, W])
    index = train.meta["autodiff"]["gradient_outputs"]
    np.testing.assert_array_equal(outs[index["other"]], np.zeros(3, np.float32))
    np.testing.assert_allclose(outs[index["w"]], expected(np.full(5, 0.2))[0], rtol=1e-5, atol=1e-5)


def test_already_converted_params_are_differentiated_by_default():
    graph = trainable_as_inputs(dense_graph(), ["bias"])
    train = gradient_graph(graph, loss_output_index=1)
    assert train.meta["autodiff"]["wrt"] == ("bias", "w")
    assert [v.name for v in train.inputs] == ["x", "bias", "w"]


def test_bad_requests_are_reported():
    graph = dense_graph()
    with pytest.raises(IRError, match="no param or input"):
        gradient_graph(graph, loss_output_index=1, wrt=["missing"])
    with pytest.raises(ValueError, match="reduction"):
        gradient_graph(graph, loss_output_index=1, reduction="max")
    b = GraphBuilder("ints")
    i = b.input("i", (None, 3), "int32")
    y = b.gather(b.param(W, "table"), i)
    b.output([b.reduce_sum(y, axes=(1, 2), keepdims=False)])
    with pytest.raises(IRError, match="cannot differentiate"):
        gradient_graph(b.graph, wrt=["i"])
    train = gradient_graph(b.graph)  # the table's gradient: scatter_add
    assert any(n.op == "scatter_add" for n in train.nodes)
    idx = np.array([[0, 1, 1]], np.int32)
    (_, grad) = interpret(train, [idx, W])
    np.testing.assert_allclose(grad, np.array([[1.0] * 3, [2.0] * 3, [0] * 3, [0] * 3], np.float32))


def test_rules_without_a_path_to_the_loss_are_not_emitted():
    """Only nodes between the parameters and the loss are differentiated, and gradients
    nobody reads (the data input's) are pruned."""
    graph = dense_graph()
    train = gradient_graph(graph, loss_output_index=1, wrt=["bias"])
    backward = train.nodes[len([n for n in train.nodes if not n.meta.get("backward_of")]):]
    assert all(n.meta.get("backward_of") for n in backward)
    assert not any(n.op == "matmul" for n in backward)  # no d/dx, no d/dw
