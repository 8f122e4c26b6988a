"""kcompile.training.losses against keras.losses: values (interpreted IR), gradients
(autodiff vs tf.GradientTape), Keras's logits shortcut, and identifier resolution."""
import subprocess
import sys

import numpy as np
import pytest

from kcompile.autodiff import gradient_graph
from kcompile.errors import KcompileError
from kcompile.ir import GraphBuilder, TensorType, interpret, verify
from kcompile.training import losses as L
from kcompile.training.losses import get_loss

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

RTOL = 1e-5
rng = np.random.default_rng(1234)
B, C = 12, 5


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def probs(shape, extreme=False):
    return softmax(rng.normal(size=shape).astype(np.float32) * (40.0 if extreme else 1.0))


def onehot(shape_without_classes, classes=C):
    return np.eye(classes, dtype=np.float32)[rng.integers(0, classes, shape_without_classes)]


def binary(shape):
    return (rng.random(shape) > 0.5).astype(np.float32)


def normal(shape, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def build_graph(loss, y_pred_shape, y_true_shape, activation=None):
    """Graph: inputs x (y_pred, or the logits of `activation`) and y_true; output per-sample loss."""
    b = GraphBuilder("loss_test")
    x = b.input("x", (None,) + tuple(y_pred_shape[1:]))
    y_pred = {None: lambda v: v, "softmax": lambda v: b.softmax(v, axis=-1), "sigmoid": b.sigmoid}[activation](x)
    spec = loss.label_spec(y_pred.type, y_true_shape)
    y_true = b.input("y_true", (None,) + tuple(y_true_shape[1:]), spec.dtype)
    b.output([loss.build(b, y_pred, y_true)], ["loss"])
    return verify(b.graph), spec


def ours(loss, y_true, x, activation=None):
    graph, spec = build_graph(loss, x.shape, y_true.shape, activation)
    (per_sample,) = interpret(graph, [x, np.asarray(y_true).astype(spec.dtype)])
    assert per_sample.shape == (x.shape[0],)
    return per_sample


def close(a, b, rtol=RTOL, atol=1e-6):
    np.testing.assert_allclose(np.float64(a), np.float64(b), rtol=rtol, atol=atol)


# (kcompile identifier, Keras loss, y_true, y_pred)
VALUE_CASES = [
    ("categorical_crossentropy", keras.losses.CategoricalCrossentropy(), onehot(B), probs((B, C))),
    ("categorical_crossentropy", keras.losses.CategoricalCrossentropy(), onehot(B), probs((B, C), extreme=True)),
    ("categorical_crossentropy", keras.losses.CategoricalCrossentropy(), onehot((B, 3)), probs((B, 3, C))),
    ({"class_name": "CategoricalCrossentropy", "config": {"label_smoothing": 0.2}},
     keras.losses.CategoricalCrossentropy(label_smoothing=0.2), onehot(B), probs((B, C), extreme=True)),
    ({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}},
     keras.losses.CategoricalCrossentropy(from_logits=True), onehot(B), normal((B, C), 5)),
    ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(), rng.integers(0, C, B),
     probs((B, C), extreme=True)),
    ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(), rng.integers(0, C, (B, 1)),
     probs((B, C))),
    ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(), rng.integers(0, C, (B, 4)),
     probs((B, 4, C))),
    ({"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}},
     keras.losses.SparseCategoricalCrossentropy(from_logits=True), rng.integers(0, C, B), normal((B, C), 5)),
    ({"class_name": "SparseCategoricalCrossentropy", "config": {"ignore_class": 2}},
     keras.losses.SparseCategoricalCrossentropy(ignore_class=2), rng.integers(0, C, (B, 3)), probs((B, 3, C))),
    ("binary_crossentropy", keras.losses.BinaryCrossentropy(), binary((B, 3)), rng.random((B, 3)).astype(np.float32)),
    ("binary_crossentropy", keras.losses.BinaryCrossentropy(), binary((B, 1)),
     np.clip(binary((B, 1)) + normal((B, 1), 1e-9), 0, 1)),  # probabilities at 0 and 1
    ("binary_crossentropy", keras.losses.BinaryCrossentropy(), binary(B), rng.random((B, 1)).astype(np.float32)),
    ({"class_name": "BinaryCrossentropy", "config": {"from_logits": True, "label_smoothing": 0.1}},
     keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), binary((B, 2)), normal((B, 2), 30)),
    ("mse", keras.losses.MeanSquaredError(), normal((B, C)), normal((B, C))),
    ("mean_squared_error", keras.losses.MeanSquaredError(), normal((B, 1)), normal(B)),
    ("mae", keras.losses.MeanAbsoluteError(), normal((B, 2, C)), normal((B, 2, C))),
    ("mape", keras.losses.MeanAbsolutePercentageError(), normal((B, C)), normal((B, C))),
    ("msle", keras.losses.MeanSquaredLogarithmicError(), rng.random((B, C)).astype(np.float32) * 4, normal((B, C))),
    ("huber", keras.losses.Huber(), normal((B, C)), normal((B, C), 2)),
    ({"class_name": "Huber", "config": {"delta": 0.3}}, keras.losses.Huber(delta=0.3), normal((B, C)), normal((B, C))),
    ("log_cosh", keras.losses.LogCosh(), normal((B, C)), normal((B, C), 3)),
    ("logcosh", keras.losses.LogCosh(), normal((B, C)), normal((B, C), 30)),
    ("kl_divergence", keras.losses.KLDivergence(), probs((B, C)), probs((B, C), extreme=True)),
    ("kld", keras.losses.KLDivergence(), probs((B, C)), probs((B, C))),
    ("poisson", keras.losses.Poisson(), rng.random((B, C)).astype(np.float32), rng.random((B, C)).astype(np.float32)),
    ("hinge", keras.losses.Hinge(), binary((B, C)), normal((B, C))),
    ("hinge", keras.losses.Hinge(), binary((B, C)) * 2 - 1, normal((B, C))),  # already -1/1
    ("squared_hinge", keras.losses.SquaredHinge(), binary((B, C)), normal((B, C))),
    ("categorical_hinge", keras.losses.CategoricalHinge(), onehot(B), normal((B, C))),
    ("cosine_similarity", keras.losses.CosineSimilarity(), normal((B, C)), normal((B, C))),
]


@pytest.mark.parametrize("identifier, keras_loss, y_true, y_pred", VALUE_CASES,
                         ids=[f"{i}-{c[0] if isinstance(c[0], str) else c[0]['class_name']}"
                              for i, c in enumerate(VALUE_CASES)])
def test_loss_values_match_keras(identifier, keras_loss, y_true, y_pred):
    loss = get_loss(identifier)
    expected = float(keras_loss(y_true, y_pred))
    close(ours(loss, y_true, y_pred).mean(), expected)
    close(loss(y_true, y_pred), expected)  # the NumPy convenience


def test_sum_reduction_and_sample_weight():
    y_true, y_pred = normal((B, C)), normal((B, C))
    loss = L.MeanSquaredError(reduction="sum")
    assert loss.objective == "sum"
    close(ours(loss, y_true, y_pred).sum(), float(keras.losses.MeanSquaredError(reduction="sum")(y_true, y_pred)))
    weights = rng.random(B).astype(np.float32)
    close(get_loss("mse")(y_true, y_pred, sample_weight=weights),
          float(keras.losses.MeanSquaredError()(y_true, y_pred, sample_weight=weights)))


@pytest.mark.filterwarnings("ignore:.*received `from_logits=True`")
@pytest.mark.parametrize("identifier, activation, keras_loss", [
    ("categorical_crossentropy", "softmax", keras.losses.CategoricalCrossentropy()),
    ("sparse_categorical_crossentropy", "softmax", keras.losses.SparseCategoricalCrossentropy()),
    ("binary_crossentropy", "sigmoid", keras.losses.BinaryCrossentropy()),
    # Keras uses any cached logits: a binary crossentropy of a softmax output too.
    ("binary_crossentropy", "softmax", keras.losses.BinaryCrossentropy()),
    ({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}, "softmax",
     keras.losses.CategoricalCrossentropy(from_logits=True)),
])
def test_crossentropy_of_an_activation_output_uses_its_logits(identifier, activation, keras_loss):
    logits = normal((B, C), 40)  # saturated: the probability path would clip
    if identifier == "sparse_categorical_crossentropy":
        y_true = rng.integers(0, C, B)
    elif activation == "sigmoid" or "binary" in str(identifier):
        y_true = binary((B, C))
    else:
        y_true = onehot(B)
    activated = (keras.activations.softmax if activation == "softmax" else keras.activations.sigmoid)(
        tf.constant(logits))
    expected = float(keras_loss(y_true, activated))
    close(ours(get_loss(identifier), y_true, logits, activation).mean(), expected)
    # ... which differs from the clipped-probability value Keras gives for plain arrays.
    assert not np.isclose(expected, float(keras_loss(y_true, activated.numpy())), rtol=1e-3)


def _keras_gradient(keras_loss, y_true, x, activation=None):
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        y_pred = x if activation is None else getattr(keras.activations, activation)(x)
        value = keras_loss(y_true, y_pred)
    return tape.gradient(value, x).numpy()


@pytest.mark.parametrize("identifier, keras_loss, y_true, x, activation", [
    ("categorical_crossentropy", keras.losses.CategoricalCrossentropy(), onehot(B), probs((B, C)), None),
    ("categorical_crossentropy", keras.losses.CategoricalCrossentropy(), onehot(B), normal((B, C), 3), "softmax"),
    ({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True, "label_smoothing": 0.1}},
     keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), onehot(B), normal((B, C)), None),
    ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(), rng.integers(0, C, (B, 1)),
     probs((B, C)), None),
    ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(), rng.integers(0, C, B),
     normal((B, C), 3), "softmax"),
    ("binary_crossentropy", keras.losses.BinaryCrossentropy(), binary((B, 2)), rng.random((B, 2)).astype(np.float32),
     None),
    ("binary_crossentropy", keras.losses.BinaryCrossentropy(), binary((B, 2)), normal((B, 2), 3), "sigmoid"),
    ("mse", keras.losses.MeanSquaredError(), normal((B, C)), normal((B, C)), None),
    ("huber", keras.losses.Huber(), normal((B, C)), normal((B, C), 2), None),
    ("kl_divergence", keras.losses.KLDivergence(), probs((B, C)), probs((B, C)), None),
    ("hinge", keras.losses.Hinge(), binary((B, C)), normal((B, C)), None),
])
def test_loss_gradients_match_tf_gradient_tape(identifier, keras_loss, y_true, x, activation):
    loss = get_loss(identifier)
    graph, spec = build_graph(loss, x.shape, y_true.shape, activation)
    train = gradient_graph(graph, loss_output_index=0, wrt=["x"])
    outputs = interpret(train, [x, np.asarray(y_true).astype(spec.dtype)])
    grad = outputs[train.meta["autodiff"]["gradient_outputs"]["x"]]
    expected = _keras_gradient(keras_loss, y_true, x, activation)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_label_specs():
    out = TensorType((None, 10))
    sparse = get_loss("sparse_categorical_crossentropy")
    assert sparse.label_spec(out) == TensorType((None,), "int32")
    assert sparse.label_spec(out, y_true_shape=(64, 1)) == TensorType((None, 1), "int32")
    assert sparse.label_spec(TensorType((None, 7, 10))) == TensorType((None, 7), "int32")
    assert get_loss("categorical_crossentropy").label_spec(out) == TensorType((None, 10), "float32")
    binary_out = TensorType((None, 1))
    assert get_loss("binary_crossentropy").label_spec(binary_out) == TensorType((None, 1))
    assert get_loss("binary_crossentropy").label_spec(binary_out, y_true_shape=(64,)) == TensorType((None,))


def test_get_loss_identifiers_names_and_configs():
    assert get_loss("mse").name == "mse" and isinstance(get_loss("mse"), L.MeanSquaredError)
    assert get_loss("MeanSquaredError").name == "mean_squared_error"
    assert get_loss("Huber").name == "huber_loss" and get_loss("huber").name == "huber"
    for alias, cls in [("logcosh", L.LogCosh), ("log_cosh", L.LogCosh), ("kld", L.KLDivergence), ("MAE",
                       L.MeanAbsoluteError), ("mape", L.MeanAbsolutePercentageError), ("msle",
                       L.MeanSquaredLogarithmicError), ("bce", L.BinaryCrossentropy), ("poisson", L.Poisson),
                       ("squared_hinge", L.SquaredHinge), ("categorical_hinge", L.CategoricalHinge),
                       ("cosine_similarity", L.CosineSimilarity), ("kl_divergence", L.KLDivergence)]:
        assert isinstance(get_loss(alias), cls), alias
    # "crossentropy"/"ce" as Keras resolves them from shapes
    assert isinstance(get_loss("ce", y_pred_type=TensorType((None, 1))), L.BinaryCrossentropy)
    assert isinstance(get_loss("crossentropy", y_pred_type=(None, 4), y_true_shape=(8,)),
                      L.SparseCategoricalCrossentropy)
    assert isinstance(get_loss("crossentropy", y_pred_type=(None, 4)), L.CategoricalCrossentropy)
    # Keras 3 compile config, tf-keras training config, serialized function
    k3 = keras.losses.CategoricalCrossentropy(label_smoothing=0.1, from_logits=True)
    converted = get_loss(keras.saving.serialize_keras_object(k3))
    assert converted.get_config() == k3.get_config()
    assert get_loss(k3).get_config() == k3.get_config()
    tk = {"class_name": "Huber", "config": {"reduction": "auto", "name": "huber_loss", "delta": 2.0, "fn": "huber"}}
    assert get_loss(tk).delta == 2.0 and get_loss(tk).reduction == "sum_over_batch_size"
    fn = {"module": "keras.losses", "class_name": "function", "config": "sparse_categorical_crossentropy",
          "registered_name": "sparse_categorical_crossentropy"}
    assert isinstance(get_loss(fn), L.SparseCategoricalCrossentropy)
    assert isinstance(get_loss(keras.losses.mean_squared_error), L.MeanSquaredError)
    from keras.src.losses import LossFunctionWrapper

    wrapper = LossFunctionWrapper(keras.losses.mean_absolute_error, name="mae")
    assert isinstance(get_loss(wrapper), L.MeanAbsoluteError) and get_loss(wrapper).name == "mae"
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    assert get_loss(sparse).get_config() == sparse.get_config()
    assert isinstance(get_loss(keras.losses.Huber), L.Huber) and isinstance(get_loss(L.Poisson), L.Poisson)
    loss = get_loss("mse")
    assert get_loss(loss) is loss and loss.serialize() == "mse"
    assert get_loss("Huber").serialize() == "Huber"  # Keras keeps the string it was given
    assert L.Huber(delta=2.0).serialize()["config"]["delta"] == 2.0
    with pytest.raises(KcompileError):
        get_loss("no_such_loss")
    with pytest.raises(KcompileError):
        get_loss({"class_name": "Dice", "config": {}})


def test_importing_the_training_library_does_not_import_tensorflow():
    code = ("import sys, kcompile, kcompile.training; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
