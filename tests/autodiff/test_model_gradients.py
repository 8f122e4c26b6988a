"""Whole-model gradients of the seed models against tf.GradientTape (Dropout off;
BatchNormalization in inference mode, i.e. training=False, on both sides).

The loss is built in IR on top of the model's output y (softmax probabilities):
  "projection": mean over the batch of sum(y * R), R a fixed random (batch, classes) input;
  "crossentropy": mean over the batch of -log(sum(y * onehot(label))).
Tolerance (DESIGN.md, gradients: relative 1e-4): the difference of all gradients
together, in norm, within 1e-4 of their norm; and per tensor, the largest difference
within 1e-4 of the tensor's largest |gradient|."""
import numpy as np
import pytest

from kcompile import load_graph, zoo
from kcompile.autodiff import gradient_graph, trainable_params
from kcompile.ir import GraphBuilder, interpret, verify

tf = pytest.importorskip("tensorflow")
RTOL = 1e-4


def _models(K):
    return {
        "mnist_mlp": lambda: zoo.mnist_mlp(K, dropout=0.0),
        "mnist_cnn": lambda: zoo.mnist_cnn(K, dropout=0.0),
        "cifar10_cnn": lambda: zoo.cifar10_cnn(K, dropout=0.0),
        "cifar10_resnet_v1": lambda: zoo.cifar10_resnet_v1(K, depth=20),
        "pretrained_word_embeddings": lambda: zoo.pretrained_word_embeddings(
            K, num_words=100, embedding_dim=16, sequence_length=200),
        "antirectifier": lambda: zoo.antirectifier(K, dropout=0.0),
        # Not a seed model: a trainable Embedding (scatter_add) and recurrent layers
        # (backpropagation through the unrolled decomposition).
        "embedding_lstm_gru": lambda: K.Sequential([
            K.Input((6,), dtype="int32"), K.layers.Embedding(100, 5), K.layers.LSTM(4, return_sequences=True),
            K.layers.GRU(3), K.layers.Dense(10, activation="softmax")]),
    }


def with_loss(graph, kind):
    """The forward graph plus a per-example loss output (batch,) and its extra input."""
    graph = graph.copy()
    b = GraphBuilder(graph=graph)
    y = graph.outputs[0]
    extra = b.input("loss_target", y.shape)
    if kind == "projection":
        loss = b.reduce_sum(b.mul(y, extra), axes=(1,), keepdims=False)
    else:
        loss = b.neg(b.log(b.reduce_sum(b.mul(y, extra), axes=(1,), keepdims=False)))
    b.output(graph.outputs + [loss], graph.output_names + ["loss"])
    return verify(graph)


def tf_loss(y, target, kind):
    if kind == "projection":
        per_example = tf.reduce_sum(y * target, axis=1)
    else:
        per_example = -tf.math.log(tf.reduce_sum(y * target, axis=1))
    return tf.reduce_mean(per_example)


def keras_variable(model, info):
    return model.get_layer(info["layer"]).weights[info["index"]]


@pytest.mark.parametrize("name,kind", [
    ("mnist_mlp", "crossentropy"),
    ("mnist_cnn", "projection"),
    ("cifar10_cnn", "crossentropy"),
    ("cifar10_resnet_v1", "projection"),
    ("pretrained_word_embeddings", "projection"),
    ("antirectifier", "crossentropy"),
    ("embedding_lstm_gru", "crossentropy"),
])
def test_model_gradients_match_gradient_tape(name, kind):
    from support.keras_models import keras3, randomize

    K = keras3()
    model = randomize(_models(K)[name](), seed=3)
    rng = np.random.default_rng(5)
    batch = 3
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        x = rng.integers(0, 100, shape).astype(np.int32)
    else:
        x = rng.normal(0, 1, shape).astype(np.float32)
    classes = model.outputs[0].shape[-1]
    if kind == "projection":
        target = rng.normal(0, 1, (batch, classes)).astype(np.float32)
    else:
        target = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]

    graph = load_graph(model)
    names = trainable_params(graph)
    weights = graph.meta["keras_weights"]
    # The parameters trained are exactly Keras's trainable weights (no BN statistics, no
    # frozen Embedding).
    expected = sorted(id(v) for v in model.trainable_weights)
    assert sorted(id(keras_variable(model, weights[n])) for n in names) == expected

    train = gradient_graph(with_loss(graph, kind), loss_output_index=1, reduction="mean")
    assert train.meta["autodiff"]["wrt"] == tuple(names)
    outs = interpret(train, [x, target] + [graph.params[n] for n in names])

    variables = [keras_variable(model, weights[n]) for n in names]
    with tf.GradientTape() as tape:
        y = model(x, training=False)
        loss = tf_loss(y, target, kind)
    # (a trainable Embedding's gradient comes as IndexedSlices)
    expected_grads = [np.asarray(tf.convert_to_tensor(g)) for g in tape.gradient(loss, variables)]

    np.testing.assert_allclose(outs[1].mean(), float(loss), rtol=1e-5)
    index = train.meta["autodiff"]["gradient_outputs"]
    ours = [outs[index[n]] for n in names]
    diff = np.sqrt(sum(float(np.sum((a - e).astype(np.float64) ** 2)) for a, e in zip(ours, expected_grads)))
    norm = np.sqrt(sum(float(np.sum(e.astype(np.float64) ** 2)) for e in expected_grads))
    assert diff <= RTOL * norm, f"{name}: |grad - tf| = {diff:.3g}, |tf| = {norm:.3g}"
    for n, a, e in zip(names, ours, expected_grads):
        assert a.shape == e.shape, n
        worst = float(np.abs(a - e).max())
        scale = float(np.abs(e).max())
        assert worst <= RTOL * scale + 1e-12, f"{name} {n}: max diff {worst:.3g}, max |tf| {scale:.3g}"


def test_ties_are_broken_as_tensorflow_breaks_them():
    """max_pool: the first maximum of a window takes the gradient; reduce_max: tied
    maxima share it equally (both as TensorFlow's gradients do)."""
    from kcompile.ir import get_primitive

    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 6, 6, 3)).astype(np.float32)  # many ties
    g = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.nn.max_pool2d(xt, ksize=2, strides=2, padding="VALID")
    expected = tape.gradient(y, xt, output_gradients=tf.constant(g))
    got = get_primitive("max_pool_grad").reference(x, g, window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-6)

    b = GraphBuilder("ties")
    v = b.input("x", (None, 6, 6, 3))
    b.output([b.reduce_sum(b.mul(b.reduce_max(v, axes=(1, 2), keepdims=False), b.const(g[0, 0, 0])),
                           axes=(1,), keepdims=False)])
    train = gradient_graph(b.graph, reduction="sum", wrt=[], input_grads=True)
    (_, dx) = interpret(train, [x])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(tf.reduce_max(xt, axis=(1, 2)) * g[0, 0, 0])
    np.testing.assert_allclose(dx, np.asarray(tape.gradient(loss, xt)), rtol=1e-6)


@pytest.mark.parametrize("case", ["dense", "conv_no_center", "channels_first_no_scale"])
def test_batch_normalization_training_gradients_match_gradient_tape(case):
    """BatchNormalization on batch statistics (training=True on both sides): the closed-form
    gradient of batch_norm_train, over features, over H and W, over the channels-first
    layout's axes, without beta and without gamma."""
    from support.keras_models import keras3, randomize

    K = keras3()
    L = K.layers
    layers = {
        "dense": ((7,), [L.Dense(5), L.BatchNormalization(), L.Dense(4, activation="softmax")]),
        "conv_no_center": ((6, 6, 2), [L.Conv2D(4, 3), L.BatchNormalization(center=False, epsilon=0.01),
                                       L.Flatten(), L.Dense(4, activation="softmax")]),
        "channels_first_no_scale": ((3, 5, 5), [L.Conv2D(4, 3, data_format="channels_first"),
                                                L.BatchNormalization(axis=1, scale=False), L.Flatten(),
                                                L.Dense(4, activation="softmax")]),
    }
    shape, stack = layers[case]
    model = randomize(K.Sequential([K.Input(shape)] + stack), seed=4)
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (5,) + shape).astype(np.float32)
    target = rng.normal(0, 1, (5, 4)).astype(np.float32)

    graph = load_graph(model, training=True)
    names = trainable_params(graph)
    loss_graph = with_loss(graph, "projection")
    train = gradient_graph(loss_graph, loss_output_index=len(loss_graph.outputs) - 1, reduction="mean")
    outs = interpret(train, [x, target] + [graph.params[n] for n in names])
    weights = graph.meta["keras_weights"]
    variables = [keras_variable(model, weights[n]) for n in names]
    with tf.GradientTape() as tape:
        loss = tf_loss(model(x, training=True), target, "projection")
    expected = [np.asarray(g) for g in tape.gradient(loss, variables)]
    index = train.meta["autodiff"]["gradient_outputs"]
    for n, e in zip(names, expected):
        a = outs[index[n]]
        assert a.shape == e.shape, n
        assert float(np.abs(a - e).max()) <= RTOL * float(np.abs(e).max()) + 1e-7, f"{case} {n}"
