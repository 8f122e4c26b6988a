"""kcompile.training.metrics against keras.metrics over several batches (with and
without sample weights), and Keras's resolution of "accuracy" and metric identifiers."""
import numpy as np
import pytest

from kcompile.errors import KcompileError
from kcompile.ir import TensorType
from kcompile.training import metrics as M
from kcompile.training.losses import get_loss
from kcompile.training.metrics import get_metric

keras = pytest.importorskip("keras")

rng = np.random.default_rng(7)
B, C = 16, 5


def batches(kind, n=3):
    """(y_true, y_pred, sample_weight) batches; the middle one weighted."""
    out = []
    for i in range(n):
        weights = rng.random(B).astype(np.float32) if i == 1 else None
        if kind == "categorical":
            y_pred, y_true = rng.random((B, C)).astype(np.float32), np.eye(C, dtype=np.float32)[rng.integers(0, C, B)]
        elif kind == "sparse":
            y_pred, y_true = rng.random((B, C)).astype(np.float32), rng.integers(0, C, (B, 1))
        elif kind == "sparse_flat":
            y_pred, y_true = rng.random((B, C)).astype(np.float32), rng.integers(0, C, B)
        elif kind == "binary":
            y_pred, y_true = rng.random((B, 1)).astype(np.float32), (rng.random((B, 1)) > 0.5).astype(np.float32)
        elif kind == "multilabel":
            y_pred, y_true = rng.random((B, 3)).astype(np.float32), (rng.random((B, 3)) > 0.5).astype(np.float32)
        elif kind == "regression":
            y_pred, y_true = rng.normal(size=(B, 3)).astype(np.float32), rng.normal(size=(B, 3)).astype(np.float32)
        elif kind == "ties":  # scores on the AUC threshold grid and exact ties
            y_pred = (rng.integers(0, 5, (B, 1)) / 4).astype(np.float32)
            y_true = (rng.random((B, 1)) > 0.5).astype(np.float32)
        out.append((y_true, y_pred, weights))
    return out


CASES = [
    ("categorical_accuracy", lambda: keras.metrics.CategoricalAccuracy(), "categorical"),
    ("sparse_categorical_accuracy", lambda: keras.metrics.SparseCategoricalAccuracy(), "sparse"),
    ("sparse_categorical_accuracy", lambda: keras.metrics.SparseCategoricalAccuracy(), "sparse_flat"),
    ("binary_accuracy", lambda: keras.metrics.BinaryAccuracy(), "binary"),
    (None, lambda: keras.metrics.BinaryAccuracy(threshold=0.3), "multilabel"),
    ("top_k_categorical_accuracy", lambda: keras.metrics.TopKCategoricalAccuracy(), "categorical"),
    (None, lambda: keras.metrics.TopKCategoricalAccuracy(k=2), "categorical"),
    (None, lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=2), "sparse"),
    ("mse", lambda: keras.metrics.MeanSquaredError(), "regression"),
    ("mean_squared_error", lambda: keras.metrics.MeanSquaredError(), "regression"),
    ("mae", lambda: keras.metrics.MeanAbsoluteError(), "regression"),
    ("RootMeanSquaredError", lambda: keras.metrics.RootMeanSquaredError(), "regression"),
    ("cosine_similarity", lambda: keras.metrics.CosineSimilarity(), "regression"),
    ("categorical_crossentropy", lambda: keras.metrics.CategoricalCrossentropy(), "categorical"),
    ("binary_crossentropy", lambda: keras.metrics.BinaryCrossentropy(), "binary"),
    ("AUC", lambda: keras.metrics.AUC(), "binary"),
    ("auc", lambda: keras.metrics.AUC(), "ties"),
    (None, lambda: keras.metrics.AUC(curve="PR"), "binary"),
    (None, lambda: keras.metrics.AUC(curve="PR", summation_method="minoring"), "multilabel"),
    (None, lambda: keras.metrics.AUC(multi_label=True), "multilabel"),
    (None, lambda: keras.metrics.AUC(num_thresholds=7, from_logits=True), "regression"),
    (None, lambda: keras.metrics.AUC(thresholds=[0.1, 0.5, 0.8]), "binary"),
    ("Precision", lambda: keras.metrics.Precision(), "binary"),
    ("precision", lambda: keras.metrics.Precision(), "ties"),
    ("Recall", lambda: keras.metrics.Recall(), "multilabel"),
    (None, lambda: keras.metrics.Precision(top_k=2), "multilabel"),
    (None, lambda: keras.metrics.Recall(class_id=1), "multilabel"),
    (None, lambda: keras.metrics.Recall(thresholds=[0.3, 0.6]), "multilabel"),
    (None, lambda: keras.metrics.Precision(thresholds=[0.0, 0.5, 1.0]), "ties"),
    (None, lambda: keras.metrics.TruePositives(), "binary"),
]


@pytest.mark.parametrize("identifier, make_keras, kind", CASES,
                         ids=[f"{i}-{c[0] or 'instance'}-{c[2]}" for i, c in enumerate(CASES)])
def test_metrics_match_keras_over_batches(identifier, make_keras, kind):
    theirs = make_keras()
    metric = get_metric(identifier if identifier is not None else theirs)
    if identifier is not None:
        assert metric.name == identifier  # a string is the log key
    else:
        assert metric.name == theirs.name
    for step in range(2):  # the second pass checks reset_state
        for y_true, y_pred, weights in batches(kind):
            metric.update_state(y_true, y_pred, sample_weight=weights)
            theirs.update_state(y_true, y_pred, sample_weight=weights)
            np.testing.assert_allclose(metric.result(), np.asarray(theirs.result()), rtol=1e-5, atol=1e-6)
        metric.reset_state()
        theirs.reset_state()
        np.testing.assert_allclose(metric.result(), np.asarray(theirs.result()), atol=1e-7)


def test_mean_metric_for_the_loss():
    mean, theirs = M.Mean(name="loss"), keras.metrics.Mean(name="loss")
    for values, weights in [(rng.random(8), None), (rng.random((8, 3)), rng.random(8)), (np.float32(2.5), None),
                            (rng.random(4), rng.random((4, 1)))]:
        mean.update_state(values, sample_weight=weights)
        theirs.update_state(values, sample_weight=weights)
    np.testing.assert_allclose(mean.result(), float(theirs.result()), rtol=1e-6)
    assert mean.name == "loss" and mean.get_config() == {"name": "loss", "dtype": "float32"}


@pytest.mark.parametrize("loss, output, labels, expected", [
    ("sparse_categorical_crossentropy", (None, 10), None, M.SparseCategoricalAccuracy),
    ("categorical_crossentropy", (None, 10), None, M.CategoricalAccuracy),
    ("binary_crossentropy", (None, 1), None, M.BinaryAccuracy),
    ("mse", (None, 1), None, M.BinaryAccuracy),
    ("binary_crossentropy", (None, 4), None, M.CategoricalAccuracy),  # Keras 3: shape-based
    ("categorical_crossentropy", (None, 10), (None, 1), M.SparseCategoricalAccuracy),
    (None, (None, 3), (None,), M.SparseCategoricalAccuracy),
])
def test_accuracy_resolution_like_compile_utils(loss, output, labels, expected):
    for name in ("accuracy", "acc", "ACC"):
        metric = get_metric(name, loss=get_loss(loss) if loss else None, output_type=TensorType(output),
                            label_type=labels)
        assert type(metric) is expected and metric.name == name and metric._direction == "up"


def test_accuracy_resolved_from_the_first_batch_like_keras():
    model_inputs = rng.random((8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(model_inputs, y, verbose=0, epochs=1)
    keras_class = type(model.metrics[1].metrics[0]).__name__
    metric = get_metric("accuracy")
    y_pred = model.predict(model_inputs, verbose=0)
    metric.update_state(y, y_pred)
    assert metric.resolved.keras_class == keras_class == "SparseCategoricalAccuracy"
    reference = keras.metrics.SparseCategoricalAccuracy()
    reference.update_state(y, y_pred)
    assert metric.result() == pytest.approx(float(reference.result()))


def test_metric_identifiers_and_configs():
    assert isinstance(get_metric("mse"), M.MeanSquaredError) and get_metric("mse").name == "mse"
    assert get_metric("mse")._direction == "down" and get_metric("AUC")._direction == "up"
    assert isinstance(get_metric("auc"), M.AUC) and isinstance(get_metric("precision"), M.Precision)
    assert isinstance(get_metric("sparse_top_k_categorical_accuracy"), M.SparseTopKCategoricalAccuracy)
    assert isinstance(get_metric("crossentropy", output_type=(None, 1)), M.BinaryCrossentropy)
    assert isinstance(get_metric("ce", loss="sparse_categorical_crossentropy", output_type=(None, 4)),
                      M.SparseCategoricalCrossentropy)
    # Keras 3 compile config entries
    for theirs in (keras.metrics.Precision(thresholds=[0.2, 0.7]), keras.metrics.AUC(num_thresholds=50, curve="PR"),
                   keras.metrics.TopKCategoricalAccuracy(k=3), keras.metrics.BinaryAccuracy(threshold=0.3),
                   keras.metrics.AUC(thresholds=[0.3, 0.6]), keras.metrics.CategoricalCrossentropy(label_smoothing=0.1)):
        serialized = keras.saving.serialize_keras_object(theirs)
        assert get_metric(serialized).get_config() == theirs.get_config()
        assert get_metric(theirs).get_config() == theirs.get_config()
        assert get_metric(theirs).serialize()["config"] == serialized["config"]
    # tf-keras training_config: MeanMetricWrapper with "fn" (accuracy re-resolved from the loss)
    wrapped = {"class_name": "MeanMetricWrapper", "config": {"name": "accuracy", "dtype": "float32",
                                                            "fn": "categorical_accuracy"}}
    metric = get_metric(wrapped, loss="sparse_categorical_crossentropy", output_type=(None, 3))
    assert isinstance(metric, M.SparseCategoricalAccuracy) and metric.name == "accuracy"
    mae = get_metric({"class_name": "MeanMetricWrapper", "config": {"name": "mae", "dtype": "float32",
                                                                    "fn": "mean_absolute_error"}})
    assert isinstance(mae, M.MeanAbsoluteError) and mae.name == "mae"
    assert isinstance(get_metric({"class_name": "function", "config": "mean_squared_error"}), M.MeanSquaredError)
    assert isinstance(get_metric(keras.metrics.AUC), M.AUC) and isinstance(get_metric(M.Recall), M.Recall)
    metric = get_metric("Precision")
    assert get_metric(metric) is metric and metric.serialize() == "Precision"
    with pytest.raises(KcompileError):
        get_metric("no_such_metric")
    with pytest.raises(KcompileError):
        get_metric(None)
