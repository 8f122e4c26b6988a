"""Model structure: multiple inputs and outputs, shared layers, nested models, keras.ops
nodes in functional configs, live keras.Model objects."""
import numpy as np
import pytest

import kcompile
from kcompile.ir import interpret
from support.keras_models import assert_close, keras3, keras_outputs, randomize, save_all, tf_keras


def check(model, tmp_path, name, legacy=False, batches=(1, 7), inputs_fn=None):
    for fmt, path in save_all(model, str(tmp_path), name, legacy=legacy).items():
        graph = kcompile.load_graph(path)
        for batch in batches:
            rng = np.random.default_rng(batch)
            inputs = inputs_fn(batch, rng) if inputs_fn else [
                rng.normal(0, 1, (batch,) + tuple(t.shape[1:])).astype(np.float32) for t in model.inputs]
            expected = keras_outputs(model, inputs)
            got = interpret(graph, inputs)
            assert len(got) == len(expected)
            for i, (g, e) in enumerate(zip(got, expected)):
                assert_close(g, e, f"{name} [{fmt}] output {i}")
    return graph


@pytest.mark.parametrize("legacy", [False, True], ids=["keras3", "tf_keras"])
def test_multi_input_multi_output_shared_and_nested(legacy, tmp_path):
    K = tf_keras() if legacy else keras3()
    L = K.layers
    a, c = K.Input((6,), name="a"), K.Input((6,), name="c")
    shared = L.Dense(5, activation="tanh", name="shared")
    inner = K.Sequential([K.Input((5,)), L.Dense(4, activation="relu"), L.Dense(3)], name="inner_seq")
    x_in = K.Input((5,))
    functional_inner = K.Model(x_in, L.Dense(3, name="fi_dense")(L.Dense(4, name="fi_hidden")(x_in)), name="inner_fn")
    ha, hc = shared(a), shared(c)  # one layer, two call sites
    out1 = inner(ha)
    out2 = functional_inner(hc)
    out3 = inner(hc)  # the nested model itself is shared too
    merged = L.Concatenate(name="merged")([out1, out2, out3])
    model = K.Model([a, c], [merged, L.Dense(2, name="head")(ha)])
    graph = check(randomize(model, 7), tmp_path, "structure", legacy=legacy)
    assert len(graph.outputs) == 2
    kernels = [n for n in graph.params if n.startswith("shared/")]
    assert sorted(kernels) == ["shared/bias", "shared/kernel"], "a shared layer's weights appear once"


def test_model_nested_two_levels_in_sequential(tmp_path):
    K = keras3()
    L = K.layers
    innermost = K.Sequential([K.Input((4,)), L.Dense(4, activation="relu")], name="innermost")
    middle = K.Sequential([K.Input((4,)), innermost, L.Dense(3)], name="middle")
    model = K.Sequential([K.Input((6,)), L.Dense(4), middle, L.Activation("softmax")])
    check(randomize(model, 2), tmp_path, "nested2")


def test_dict_outputs_use_keras_names(tmp_path):
    K = keras3()
    L = K.layers
    x = K.Input((3,), name="features")
    model = K.Model(x, {"score": L.Dense(1, name="score")(x), "probs": L.Dense(2, activation="softmax", name="probs")(x)})
    graph = kcompile.load_graph(save_all(randomize(model), str(tmp_path), "dict")["keras"])
    assert sorted(graph.output_names) == ["probs", "score"]
    assert [v.name for v in graph.inputs] == ["features"]


def test_keras_ops_in_functional_config(tmp_path):
    K = keras3()
    L, ops = K.layers, K.ops
    x = K.Input((5, 4), name="x")
    h = L.Dense(4)(x)
    y = ops.sum(ops.where(h > 0, h, 0.1 * h), axis=1, keepdims=True)
    z = ops.reshape(ops.transpose(h, (0, 2, 1)), (-1, 20))
    w = ops.concatenate([h[:, 1:4, 0], ops.expand_dims(ops.mean(h, axis=(1, 2)), -1)], axis=-1)
    v = ops.squeeze(ops.matmul(h, ops.ones((4, 1))), axis=-1) / 2.0 - ops.exp(h[..., 0])
    model = K.Model(x, [y, z, w, v, ops.softmax(h, axis=1)])
    check(randomize(model, 4), tmp_path, "ops")


def test_tf_op_lambda_in_tf_keras_file(tmp_path):
    import tensorflow as tf

    K = tf_keras()
    x = K.Input((4, 3), name="x")
    h = K.layers.Dense(3)(x)
    y = tf.nn.relu(h) + 1.0
    z = tf.reduce_mean(h, axis=1)
    model = K.Model(x, [y * 2.0, z, h[:, 0, :]])
    check(randomize(model, 5), tmp_path, "tfop", legacy=True)


def test_live_keras_model_objects():
    K = keras3()
    model = randomize(K.Sequential([K.Input((4,)), K.layers.Dense(3, activation="relu")]))
    graph = kcompile.load_graph(model)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert_close(interpret(graph, x)[0], keras_outputs(model, [x])[0], "live keras 3")
    T = tf_keras()
    legacy = randomize(T.Sequential([T.layers.Dense(3, activation="tanh", input_shape=(4,))]))
    graph = kcompile.load_graph(legacy)
    assert_close(interpret(graph, x)[0], keras_outputs(legacy, [x])[0], "live tf-keras")


def test_unknown_time_dimension_needs_input_shapes(tmp_path):
    K = keras3()
    model = K.Sequential([K.Input((None,), dtype="int32", name="tokens"), K.layers.Embedding(10, 3), K.layers.LSTM(2)])
    path = str(tmp_path / "var.keras")
    model.save(path)
    with pytest.raises(kcompile.LayerConfigError, match="input_shapes"):
        kcompile.load_graph(path)
    graph = kcompile.load_graph(path, input_shapes={"tokens": (None, 6)})
    tokens = np.random.default_rng(1).integers(0, 10, (3, 6)).astype(np.int32)
    assert_close(interpret(graph, tokens)[0], keras_outputs(model, [tokens])[0], "fixed length")
