"""Keras's metrics on NumPy arrays: running state updated batch by batch.

    acc = get_metric("accuracy", loss=get_loss("sparse_categorical_crossentropy"),
                     output_type=TensorType((None, 10)))
    acc.update_state(y_true, y_pred)          # NumPy arrays, one batch
    acc.result()                              # a float, Keras's running value
    acc.reset_state()

Semantics follow Keras 3 (keras.src.metrics): a MeanMetricWrapper averages its
function's per-sample values weighted by `sample_weight` (reduce_to_samplewise_values);
AUC/Precision/Recall accumulate confusion counts over thresholds exactly as
keras.src.metrics.metrics_utils does (the bucketed path for evenly spaced thresholds).
"accuracy"/"acc" (and tf-keras's "crossentropy"/"ce") are resolved like
keras.src.trainers.compile_utils.get_metric: from the label and prediction shapes; the
label shape comes from `label_type`, else from the loss's label spec, else from the
first batch seen. A metric made from a string is named by that string (the log key).

Metrics that wrap a loss (mse, crossentropies, hinge, ...) evaluate the same IR recipe
as kcompile.training.losses with the reference interpreter.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import KcompileError
from ..ir import GraphBuilder, TensorType, interpret
from . import losses as losses_module
from .serialization import keras_serialized

NEG_INF = -1e10
EPSILON = 1e-7


# -- helpers mirroring keras.src.losses.loss / metrics_utils ---------------------------------------------


def squeeze_or_expand(x1: np.ndarray, x2: np.ndarray, expand_rank_1: bool = True):
    """keras.losses.loss.squeeze_or_expand_to_same_rank on arrays."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def reduce_to_samplewise_values(values, sample_weight, reduce_fn):
    """keras.src.metrics.reduction_metrics.reduce_to_samplewise_values."""
    values = np.asarray(values, dtype=np.float32)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float32)
        values, sample_weight = squeeze_or_expand(values, sample_weight)
        weight_ndim, values_ndim = sample_weight.ndim, values.ndim
        if values_ndim > weight_ndim:
            values = reduce_fn(values, axis=tuple(range(weight_ndim, values_ndim)))
        sample_weight = np.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, weight_ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


def _divide_no_nan(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


def _to_result(value):
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value


# -- base classes -------------------------------------------------------------------------------------


class Metric:
    """A Keras metric: `update_state`, `result`, `reset_state`, `name`, `get_config`."""

    keras_class = "Metric"
    default_name = "metric"
    direction = None  # "up" (maximize), "down" (minimize) or None

    def __init__(self, name=None, dtype=None):
        self.name = name or self.default_name
        self.dtype = "float32" if dtype is None else dtype
        self._direction = self.direction
        self.identifier = None  # the string the user compiled with, when it was one

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def serialize(self):
        """What Keras writes in a compile config: the string given, else the class dict."""
        if self.identifier is not None:
            return self.identifier
        return keras_serialized("keras.metrics", self)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """The weighted mean of the values seen (keras.metrics.Mean)."""

    keras_class, default_name = "Mean", "mean"

    def __init__(self, name=None, dtype=None):
        super().__init__(name, dtype)
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        if np.ndim(values) == 0 and np.ndim(sample_weight) == 0:  # a step's loss: float32 value x weight
            weight = np.float32(1.0 if sample_weight is None else sample_weight)
            self.total += float(np.float32(values) * weight)
            self.count += float(weight)
            return
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, np.mean)
        self.total += float(np.sum(values, dtype=np.float64))
        if sample_weight is not None:
            self.count += float(np.sum(sample_weight, dtype=np.float64))
        elif values.ndim >= 1:
            self.count += values.shape[0]
        else:
            self.count += 1

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    keras_class, default_name = "Sum", "sum"

    def __init__(self, name=None, dtype=None):
        super().__init__(name, dtype)
        self.reset_state()

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        values, _ = reduce_to_samplewise_values(values, sample_weight, np.sum)
        self.total += float(np.sum(values, dtype=np.float64))

    def result(self):
        return self.total


class MeanMetricWrapper(Mean):
    """The weighted mean of `fn(y_true, y_pred, **kwargs)` (keras.metrics.MeanMetricWrapper)."""

    keras_class = "MeanMetricWrapper"

    def __init__(self, fn=None, name=None, dtype=None, **kwargs):
        super().__init__(name or getattr(fn, "__name__", None), dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def values(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.values(np.asarray(y_true), np.asarray(y_pred)), sample_weight=sample_weight)


# -- accuracy functions (NumPy, as keras.src.metrics.accuracy_metrics) ------------------------------------


def accuracy(y_true, y_pred):
    y_pred = np.asarray(y_pred, np.float32)
    y_true = np.asarray(y_true).astype(y_pred.dtype)
    y_true, y_pred = squeeze_or_expand(y_true, y_pred)
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_pred = np.asarray(y_pred, np.float32)
    y_true = np.asarray(y_true)
    y_true, y_pred = squeeze_or_expand(y_true, y_pred)
    y_pred = (y_pred > np.float32(threshold)).astype(y_true.dtype)
    return (y_true == y_pred).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    y_true = np.argmax(np.asarray(y_true), axis=-1)
    y_pred = np.asarray(y_pred, np.float32)
    y_true = y_true.astype(y_pred.dtype)
    original_shape = y_true.shape
    reshape_matches = False
    if y_true.ndim == y_pred.ndim:
        y_true = np.squeeze(y_true, -1)
        reshape_matches = True
    y_pred = np.argmax(y_pred, axis=-1).astype(y_true.dtype)
    matches = (y_true == y_pred).astype(np.float32)
    return matches.reshape(original_shape) if reshape_matches else matches


def sparse_categorical_accuracy(y_true, y_pred):
    y_pred = np.asarray(y_pred, np.float32)
    y_true = np.asarray(y_true).astype(y_pred.dtype)
    original_shape = y_true.shape
    reshape_matches = False
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = np.squeeze(y_true, -1)
        reshape_matches = True
    y_pred = np.argmax(y_pred, axis=-1).astype(y_true.dtype)
    matches = (y_true == y_pred).astype(np.float32)
    if reshape_matches:
        matches = matches.reshape(original_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = np.squeeze(matches, -1)
    return matches


def in_top_k(targets, predictions, k):
    """tf.math.in_top_k: the target's score is beaten by fewer than k scores (ties
    straddling the boundary count as in); rows with a non-finite score are False."""
    predictions = np.asarray(predictions, np.float32)
    targets = np.asarray(targets).astype(np.int64)
    rows = np.arange(predictions.shape[0])
    valid = (targets >= 0) & (targets < predictions.shape[1])
    target_scores = predictions[rows, np.clip(targets, 0, predictions.shape[1] - 1)]
    beaten = np.sum(predictions > target_scores[:, None], axis=1)
    finite = np.all(np.isfinite(predictions), axis=1)
    return (beaten < k) & finite & valid


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_pred = np.asarray(y_pred, np.float32)
    y_true = np.argmax(np.asarray(y_true), axis=-1)
    original_shape = y_true.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    reshape = y_true.ndim > 1
    matches = in_top_k(y_true.reshape(-1), y_pred, k).astype(np.float32)
    return matches.reshape(original_shape) if reshape else matches


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    y_true = y_true.astype(y_pred.dtype if from_sorted_ids else np.int32)
    original_shape = y_true.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    reshape = y_true.ndim > 1
    flat = y_true.reshape(-1)
    if from_sorted_ids:
        matches = np.any(flat[:, None] == y_pred[:, :k], axis=1)
    else:
        matches = in_top_k(flat, y_pred.astype(np.float32), k)
    matches = matches.astype(np.float32)
    return matches.reshape(original_shape) if reshape else matches


# -- accuracy metrics -----------------------------------------------------------------------------------


class Accuracy(MeanMetricWrapper):
    keras_class, default_name, direction = "Accuracy", "accuracy", "up"

    def __init__(self, name=None, dtype=None):
        super().__init__(accuracy, name or self.default_name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    keras_class, default_name, direction = "BinaryAccuracy", "binary_accuracy", "up"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name or self.default_name, dtype, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    keras_class, default_name, direction = "CategoricalAccuracy", "categorical_accuracy", "up"

    def __init__(self, name=None, dtype=None):
        super().__init__(categorical_accuracy, name or self.default_name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    keras_class, default_name, direction = "SparseCategoricalAccuracy", "sparse_categorical_accuracy", "up"

    def __init__(self, name=None, dtype=None):
        super().__init__(sparse_categorical_accuracy, name or self.default_name, dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    keras_class, default_name, direction = "TopKCategoricalAccuracy", "top_k_categorical_accuracy", "up"

    def __init__(self, k=5, name=None, dtype=None):
        super().__init__(top_k_categorical_accuracy, name or self.default_name, dtype, k=k)
        self.k = k

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    keras_class, default_name, direction = ("SparseTopKCategoricalAccuracy", "sparse_top_k_categorical_accuracy",
                                            "up")

    def __init__(self, k=5, name=None, dtype=None, from_sorted_ids=False):
        super().__init__(sparse_top_k_categorical_accuracy, name or self.default_name, dtype, k=k,
                         from_sorted_ids=from_sorted_ids)
        self.k = k
        self.from_sorted_ids = from_sorted_ids

    def get_config(self):
        config = {**super().get_config(), "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config


# -- metrics that average a loss function ---------------------------------------------------------------


class LossMetric(MeanMetricWrapper):
    """The weighted mean of a Keras loss function's values, from the kcompile loss recipe
    run by the reference interpreter (one small graph per input signature)."""

    loss_class = None
    loss_kwargs: tuple = ()
    direction = "down"

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(None, name or self.default_name, dtype)
        self._loss_kwargs = kwargs
        self._loss = self.loss_class(**kwargs)
        self._graphs = {}

    def get_config(self):
        return {**super().get_config(), **self._loss_kwargs}

    def values(self, y_true, y_pred):
        y_pred = np.asarray(y_pred, np.float32)
        y_true = np.asarray(y_true)
        spec = self._loss.label_spec(TensorType((None,) + y_pred.shape[1:]), y_true.shape)
        key = (y_pred.shape[1:], y_true.shape[1:], spec.dtype)
        graph = self._graphs.get(key)
        if graph is None:
            b = GraphBuilder(f"metric_{self.name}")
            p = b.input("y_pred", (None,) + y_pred.shape[1:])
            t = b.input("y_true", (None,) + y_true.shape[1:], spec.dtype)
            b.output([self._loss.values(b, p, t)], ["values"])
            graph = self._graphs[key] = b.graph
        return interpret(graph, [y_pred, y_true.astype(spec.dtype)])[0]


def _loss_metric(keras_class, default_name, loss_class, direction="down", **defaults):
    def __init__(self, name=None, dtype=None, **kwargs):
        LossMetric.__init__(self, name, dtype, **{**defaults, **kwargs})

    return type(keras_class, (LossMetric,), dict(
        keras_class=keras_class, default_name=default_name, loss_class=loss_class, direction=direction,
        __init__=__init__, __doc__=f"keras.metrics.{keras_class}",
    ))


L = losses_module
MeanSquaredError = _loss_metric("MeanSquaredError", "mean_squared_error", L.MeanSquaredError)
MeanAbsoluteError = _loss_metric("MeanAbsoluteError", "mean_absolute_error", L.MeanAbsoluteError)
MeanAbsolutePercentageError = _loss_metric("MeanAbsolutePercentageError", "mean_absolute_percentage_error",
                                           L.MeanAbsolutePercentageError)
MeanSquaredLogarithmicError = _loss_metric("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
                                           L.MeanSquaredLogarithmicError)
LogCoshError = _loss_metric("LogCoshError", "logcosh", L.LogCosh)
KLDivergence = _loss_metric("KLDivergence", "kl_divergence", L.KLDivergence)
Poisson = _loss_metric("Poisson", "poisson", L.Poisson)
Hinge = _loss_metric("Hinge", "hinge", L.Hinge)
SquaredHinge = _loss_metric("SquaredHinge", "squared_hinge", L.SquaredHinge)
CategoricalHinge = _loss_metric("CategoricalHinge", "categorical_hinge", L.CategoricalHinge)
BinaryCrossentropy = _loss_metric("BinaryCrossentropy", "binary_crossentropy", L.BinaryCrossentropy,
                                  from_logits=False, label_smoothing=0)
CategoricalCrossentropy = _loss_metric("CategoricalCrossentropy", "categorical_crossentropy",
                                       L.CategoricalCrossentropy, from_logits=False, label_smoothing=0, axis=-1)
SparseCategoricalCrossentropy = _loss_metric("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
                                             L.SparseCategoricalCrossentropy, from_logits=False, axis=-1)


class CosineSimilarity(LossMetric):
    """keras.metrics.CosineSimilarity: the mean cosine similarity (not its negative)."""

    keras_class, default_name, direction, loss_class = "CosineSimilarity", "cosine_similarity", "up", \
        L.CosineSimilarity

    def __init__(self, name=None, dtype=None, axis=-1):
        super().__init__(name, dtype, axis=axis)

    def get_config(self):
        return Metric.get_config(self)

    def values(self, y_true, y_pred):
        return -super().values(y_true, y_pred)


class RootMeanSquaredError(Mean):
    keras_class, default_name, direction = "RootMeanSquaredError", "root_mean_squared_error", "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = np.asarray(y_true, np.float32)
        y_pred = np.asarray(y_pred, np.float32)
        y_true, y_pred = squeeze_or_expand(y_true, y_pred)
        super().update_state(np.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self):
        return math.sqrt(super().result())


# -- confusion-matrix metrics (keras.src.metrics.metrics_utils) --------------------------------------------


def is_evenly_distributed_thresholds(thresholds) -> bool:
    thresholds = np.asarray(thresholds)
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=EPSILON))


def _filter_top_k(x, k):
    """Keep each row's k largest scores (first occurrences on ties, as top_k), the rest
    set to NEG_INF."""
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    mask = np.zeros_like(x)
    np.put_along_axis(mask, order, 1.0, axis=-1)
    return (x * mask + np.float32(NEG_INF) * (1 - mask)).astype(np.float32)


def update_confusion_matrix(counts: dict, y_true, y_pred, thresholds, thresholds_distributed_evenly=False,
                            top_k=None, class_id=None, sample_weight=None, multi_label=False,
                            label_weights=None):
    """Add this batch's confusion counts ("tp", "fp", "tn", "fn": arrays over thresholds,
    by label when multi_label) into `counts`, as update_confusion_matrix_variables."""
    thresholds_with_epsilon = bool(thresholds[0] < 0.0 or thresholds[-1] > 1.0)
    y_true = np.asarray(y_true, dtype=np.float32)
    y_pred = np.asarray(y_pred, dtype=np.float32)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    y_pred, y_true = squeeze_or_expand(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float32)[..., None]
        _, sample_weight = squeeze_or_expand(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        y_true = y_true[..., class_id, None]
        y_pred = y_pred[..., class_id, None]
    if label_weights is not None:
        label_weights = np.asarray(label_weights, dtype=np.float32)
    if thresholds_distributed_evenly:
        result = _confusion_bucketed(y_true, y_pred, len(thresholds), sample_weight, multi_label, label_weights,
                                     thresholds_with_epsilon)
    else:
        result = _confusion_general(y_true, y_pred, thresholds, sample_weight, multi_label, label_weights)
    for key in counts:
        counts[key] += result[key]


def _confusion_bucketed(y_true, y_pred, num_thresholds, sample_weight, multi_label, label_weights, with_epsilon):
    weights = np.float32(1.0)
    if sample_weight is not None:
        weights = np.broadcast_to(sample_weight, y_pred.shape)
        if not multi_label:
            weights = weights.reshape(-1)
    if label_weights is not None:
        lw = np.broadcast_to(label_weights[None], y_pred.shape)
        weights = weights * (lw if multi_label else lw.reshape(-1))
    y_pred = np.clip(y_pred, 0.0, 1.0)
    y_true = (y_true != 0).astype(np.float32)
    if not multi_label:
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
    true_labels = (y_true * weights).astype(np.float32)
    false_labels = ((1.0 - y_true) * weights).astype(np.float32)
    buckets = np.ceil(y_pred * np.float32(num_thresholds - 1)) - np.float32(1)
    if with_epsilon:
        buckets = np.maximum(buckets, 0)
    buckets = buckets.astype(np.int64)

    def segment_sum(data, ids):
        keep = ids >= 0
        return np.bincount(ids[keep], weights=data[keep].astype(np.float64), minlength=num_thresholds)

    def reverse_cumsum(v, axis=0):
        return np.flip(np.cumsum(np.flip(v, axis), axis=axis), axis)

    if multi_label:
        labels = y_true.shape[1]
        tp = np.stack([reverse_cumsum(segment_sum(true_labels[:, j], buckets[:, j])) for j in range(labels)], 1)
        fp = np.stack([reverse_cumsum(segment_sum(false_labels[:, j], buckets[:, j])) for j in range(labels)], 1)
        total_true = true_labels.sum(axis=0, dtype=np.float64)
        total_false = false_labels.sum(axis=0, dtype=np.float64)
    else:
        tp = reverse_cumsum(segment_sum(true_labels, buckets))
        fp = reverse_cumsum(segment_sum(false_labels, buckets))
        total_true = true_labels.sum(dtype=np.float64)
        total_false = false_labels.sum(dtype=np.float64)
    return {"tp": tp, "fp": fp, "tn": total_false - fp, "fn": total_true - tp}


def _confusion_general(y_true, y_pred, thresholds, sample_weight, multi_label, label_weights):
    labels_pos = y_true.astype(bool)
    if multi_label:
        preds = y_pred[None]  # (1, batch, labels)
        labels = labels_pos[None]
        thresh = thresholds.reshape(-1, 1, 1)
    else:
        preds = y_pred.reshape(1, -1)
        labels = labels_pos.reshape(1, -1)
        thresh = thresholds.reshape(-1, 1)
    pred_pos = preds > thresh
    weights = None
    if sample_weight is not None:
        weights = np.broadcast_to(sample_weight, y_pred.shape).astype(np.float32)
        weights = weights[None] if multi_label else weights.reshape(1, -1)
    if label_weights is not None and not multi_label:
        lw = np.broadcast_to(label_weights[None], y_pred.shape).reshape(1, -1)
        weights = lw if weights is None else weights * lw

    def count(label, pred):
        both = label & pred
        if weights is None:
            return both.sum(axis=1, dtype=np.float64)
        return np.where(both, weights, 0.0).sum(axis=1, dtype=np.float64)

    return {"tp": count(labels, pred_pos), "fp": count(~labels, pred_pos),
            "tn": count(~labels, ~pred_pos), "fn": count(labels, ~pred_pos)}


def _parse_thresholds(thresholds, default):
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    bad = [t for t in values if t is None or t < 0 or t > 1]
    if bad:
        raise KcompileError(f"Threshold values must be in [0, 1]. Received: {bad}")
    return values


class _ConfusionMetric(Metric):
    """Counts over thresholds; subclasses pick which counts and the result."""

    counts_kept = ("tp", "fp", "tn", "fn")
    direction = "up"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name, dtype)
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self.thresholds = _parse_thresholds(thresholds, 0.5 if top_k is None else NEG_INF)
        self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(self.thresholds)
        self.reset_state()

    def reset_state(self):
        self.counts = {k: np.zeros(len(self.thresholds)) for k in self.counts_kept}

    def update_state(self, y_true, y_pred, sample_weight=None):
        update_confusion_matrix(self.counts, y_true, y_pred, self.thresholds,
                                thresholds_distributed_evenly=self._thresholds_distributed_evenly,
                                top_k=self.top_k, class_id=self.class_id, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}

    def _single(self, value):
        return _to_result(value[0] if len(self.thresholds) == 1 else value)


class Precision(_ConfusionMetric):
    keras_class, default_name = "Precision", "precision"
    counts_kept = ("tp", "fp")

    def result(self):
        c = self.counts
        return self._single(_divide_no_nan(c["tp"], c["tp"] + c["fp"]))


class Recall(_ConfusionMetric):
    keras_class, default_name = "Recall", "recall"
    counts_kept = ("tp", "fn")

    def result(self):
        c = self.counts
        return self._single(_divide_no_nan(c["tp"], c["tp"] + c["fn"]))


class _Count(_ConfusionMetric):
    """TruePositives / FalsePositives / TrueNegatives / FalseNegatives."""

    key = "tp"
    direction = None

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, None, None, name, dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}

    def result(self):
        return self._single(self.counts[self.key])


class TruePositives(_Count):
    keras_class, default_name, key, counts_kept = "TruePositives", "true_positives", "tp", ("tp",)


class FalsePositives(_Count):
    keras_class, default_name, key, counts_kept = "FalsePositives", "false_positives", "fp", ("fp",)


class TrueNegatives(_Count):
    keras_class, default_name, key, counts_kept = "TrueNegatives", "true_negatives", "tn", ("tn",)


class FalseNegatives(_Count):
    keras_class, default_name, key, counts_kept = "FalseNegatives", "false_negatives", "fn", ("fn",)


class AUC(Metric):
    """keras.metrics.AUC: ROC or PR area from confusion counts at `num_thresholds`
    evenly spaced thresholds (0 - eps, ..., 1 + eps), Riemann-summed by
    `summation_method` ("interpolation", "minoring", "majoring")."""

    keras_class, default_name, direction = "AUC", "auc", "up"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        super().__init__(name, dtype)
        curve = str(curve).upper()
        if curve not in ("ROC", "PR", "PRGAIN"):
            raise KcompileError(f'Invalid AUC curve "{curve}"; expected ROC, PR or PRGAIN')
        summation_method = str(summation_method).lower()
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise KcompileError(f'Invalid AUC summation_method "{summation_method}"')
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            self.num_thresholds = len(thresholds) + 2
            thresholds = sorted(thresholds)
            self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(
                np.array([0.0] + list(thresholds) + [1.0]))
        else:
            if num_thresholds <= 1:
                raise KcompileError(f"Argument `num_thresholds` must be an integer > 1. Received: {num_thresholds}")
            self.num_thresholds = num_thresholds
            thresholds = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._thresholds_distributed_evenly = True
        self._thresholds = np.array([0.0 - EPSILON] + list(thresholds) + [1.0 + EPSILON])
        self.curve = curve
        self.summation_method = summation_method
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, np.float32)
        self._from_logits = from_logits
        self._num_labels = num_labels
        self.reset_state()

    @property
    def thresholds(self):
        return list(self._thresholds)

    def reset_state(self):
        self.counts = None if (self.multi_label and self._num_labels is None) else self._zeros()

    def _zeros(self):
        shape = (self.num_thresholds, self._num_labels) if self.multi_label else (self.num_thresholds,)
        return {k: np.zeros(shape) for k in ("tp", "fp", "tn", "fn")}

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, np.float32)
        if self.counts is None:
            if y_pred.ndim != 2:
                raise KcompileError(f"`y_pred` must have rank 2 when `multi_label=True`; got {y_pred.shape}")
            self._num_labels = y_pred.shape[1]
            self.counts = self._zeros()
        if self._from_logits:
            y_pred = (1.0 / (1.0 + np.exp(-y_pred.astype(np.float64)))).astype(np.float32)
        update_confusion_matrix(self.counts, y_true, y_pred, self._thresholds,
                                thresholds_distributed_evenly=self._thresholds_distributed_evenly,
                                sample_weight=sample_weight, multi_label=self.multi_label,
                                label_weights=None if self.multi_label else self.label_weights)

    def _by_label(self, per_label):
        if not self.multi_label:
            return float(np.sum(per_label))
        by_label = np.sum(per_label, axis=0)
        if self.label_weights is None:
            return float(np.mean(by_label))
        return float(_divide_no_nan(np.sum(by_label * self.label_weights), np.sum(self.label_weights)))

    def _interpolate_pr_auc(self):
        c, n = self.counts, self.num_thresholds
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        dtp = tp[: n - 1] - tp[1:]
        p = tp + fp
        dp = p[: n - 1] - p[1:]
        prec_slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        both = (p[: n - 1] > 0) & (p[1:] > 0)
        safe_p_ratio = np.where(both, _divide_no_nan(p[: n - 1], np.maximum(p[1:], 0)), np.ones_like(p[1:]))
        with np.errstate(divide="ignore"):
            log_ratio = np.log(safe_p_ratio)
        increment = _divide_no_nan(prec_slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))
        return self._by_label(increment)

    def result(self):
        if self.counts is None:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        c, n = self.counts, self.num_thresholds
        tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scaling = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scaling * _divide_no_nan(fn, tp)
            precision_gain = 1.0 - scaling * _divide_no_nan(fp, tp)
            recall_gain = np.where(tp == 0, 0.0, recall_gain)
            precision_gain = np.where(tp == 0, 1.0, precision_gain)
            x, y = np.maximum(recall_gain, 0.0), precision_gain
        if self.summation_method == "interpolation":
            heights = (y[: n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[: n - 1], y[1:])
        else:
            heights = np.maximum(y[: n - 1], y[1:])
        return self._by_label((x[: n - 1] - x[1:]) * heights)

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


# -- "accuracy" / "crossentropy": resolved from shapes ------------------------------------------------------


AUTO_NAMES = {"accuracy": "accuracy", "acc": "accuracy", "crossentropy": "crossentropy", "ce": "crossentropy"}


def resolve_auto(kind: str, y_true_shape, y_pred_shape) -> type:
    """The class Keras picks for "accuracy" (compile_utils.get_metric) or tf-keras's
    "crossentropy", given label and prediction shapes (batch dimension included)."""
    is_binary, is_sparse = losses_module.is_binary_or_sparse(tuple(y_true_shape), tuple(y_pred_shape))
    if kind == "accuracy":
        if is_binary:
            return BinaryAccuracy
        return SparseCategoricalAccuracy if is_sparse else CategoricalAccuracy
    if is_binary:
        return BinaryCrossentropy
    return SparseCategoricalCrossentropy if is_sparse else CategoricalCrossentropy


class AutoMetric(Metric):
    """"accuracy" (or "crossentropy") whose Keras class is picked from the shapes of the
    first batch, as Keras does when it builds its compiled metrics."""

    def __init__(self, kind: str, name: str):
        super().__init__(name)
        self.kind = kind
        self.resolved = None
        self.direction = self._direction = "up" if kind == "accuracy" else "down"

    @property
    def keras_class(self):
        return self.resolved.keras_class if self.resolved is not None else "Metric"

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.resolved is None:
            cls = resolve_auto(self.kind, np.shape(y_true), np.shape(y_pred))
            self.resolved = cls(name=self.name)
        self.resolved.update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self):
        return self.resolved.result() if self.resolved is not None else 0.0

    def reset_state(self):
        if self.resolved is not None:
            self.resolved.reset_state()

    def get_config(self):
        return self.resolved.get_config() if self.resolved is not None else super().get_config()


# -- lookup ----------------------------------------------------------------------------------------------

METRIC_CLASSES = {cls.keras_class: cls for cls in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, RootMeanSquaredError, CosineSimilarity, LogCoshError, KLDivergence, Poisson,
    Hinge, SquaredHinge, CategoricalHinge, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, AUC, Precision, Recall, TruePositives, FalsePositives, TrueNegatives,
    FalseNegatives,
)}


def _snake(name: str) -> str:
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# Keras 3's metrics.ALL_OBJECTS_DICT: class names, their snake_case forms, the metric
# functions and the short aliases.
METRIC_NAMES = {**METRIC_CLASSES, **{_snake(k): v for k, v in METRIC_CLASSES.items()}}
METRIC_NAMES.update({
    "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy, "kld": KLDivergence, "KLD": KLDivergence,
    "log_cosh": LogCoshError, "logcosh": LogCoshError, "kullback_leibler_divergence": KLDivergence,
})
# Metric functions by the name Keras serializes them under (MeanMetricWrapper "fn").
METRIC_FUNCTIONS = {
    "accuracy": Accuracy, "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    **{name: METRIC_NAMES[name] for name in (
        "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error", "log_cosh", "logcosh", "kl_divergence", "kullback_leibler_divergence",
        "poisson", "hinge", "squared_hinge", "categorical_hinge", "binary_crossentropy",
        "categorical_crossentropy", "sparse_categorical_crossentropy", "cosine_similarity",
        "mse", "mae", "mape", "msle")},
}


def _shape_of(t):
    if t is None:
        return None
    return tuple(t.shape) if hasattr(t, "shape") else tuple(t)


def _auto(kind, name, loss, output_type, label_type):
    y_pred_shape = _shape_of(output_type)
    y_true_shape = _shape_of(label_type)
    if y_true_shape is None and y_pred_shape is not None:
        if loss is not None:
            loss = losses_module.get_loss(loss, y_pred_type=TensorType(y_pred_shape))
            y_true_shape = loss.label_spec(TensorType(y_pred_shape)).shape
        else:
            y_true_shape = y_pred_shape
    if y_pred_shape is None:
        metric = AutoMetric(kind, name)
    else:
        metric = resolve_auto(kind, y_true_shape, y_pred_shape)(name=name)
    return metric


def _kwargs_for(cls, config: dict) -> dict:
    import inspect

    config = {k: v for k, v in (config or {}).items() if k not in ("fn",)}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    if "kwargs" in accepted:
        return config
    unknown = set(config) - accepted
    if unknown:
        raise KcompileError(f"metric {cls.keras_class}: unsupported arguments {sorted(unknown)}")
    return config


def get_metric(identifier, loss=None, output_type=None, label_type=None) -> Metric:
    """A kcompile Metric from what Keras accepts in `compile(metrics=...)`.

    identifier: a name ("accuracy"/"acc", "binary_accuracy", "top_k_categorical_accuracy",
        "mse", "AUC", "Precision", ...), a Keras-serialized dict (Keras 3 or tf-keras,
        including MeanMetricWrapper with "fn"), a kcompile Metric (returned as is) or a
        keras.metrics.Metric instance (converted by class name and get_config()).
    loss, output_type, label_type: for "accuracy"/"acc" and "crossentropy"/"ce": the
        compiled loss, the model output's TensorType (or shape) and the labels' type
        (or shape); the labels default to the loss's label spec. Without an output
        type the choice is made from the first batch's shapes.
    """
    if identifier is None:
        raise KcompileError("Expected metric, received `None`")
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        kind = AUTO_NAMES.get(identifier.lower())
        if kind is not None:
            metric = _auto(kind, identifier, loss, output_type, label_type)
        elif identifier in METRIC_NAMES:
            metric = METRIC_NAMES[identifier](name=identifier)
        else:
            raise KcompileError(f"unknown metric {identifier!r}; kcompile knows {sorted(METRIC_NAMES)}")
        metric.identifier = identifier
        return metric
    if isinstance(identifier, dict):
        return _from_dict(identifier, loss, output_type, label_type)
    return _from_keras_object(identifier, loss, output_type, label_type)


def _from_dict(config: dict, loss=None, output_type=None, label_type=None) -> Metric:
    class_name = config.get("class_name")
    inner = config.get("config", {})
    if class_name == "function":
        return get_metric(inner, loss, output_type, label_type)
    if class_name == "MeanMetricWrapper":
        fn = inner.get("fn")
        if isinstance(fn, dict):
            fn = fn.get("config") if fn.get("class_name") == "function" else fn.get("class_name")
        name = inner.get("name", fn)
        kind = AUTO_NAMES.get(str(name).lower())
        if kind == "accuracy" and str(fn).endswith("accuracy") or kind == "crossentropy":
            return _auto(kind, name, loss, output_type, label_type)
        if fn not in METRIC_FUNCTIONS:
            raise KcompileError(f"unknown metric function {fn!r} in a serialized MeanMetricWrapper")
        kwargs = {k: v for k, v in inner.items() if k not in ("fn", "name", "dtype")}
        return METRIC_FUNCTIONS[fn](name=name, **kwargs)
    if class_name not in METRIC_CLASSES:
        raise KcompileError(f"unknown metric class {class_name!r}; kcompile knows {sorted(METRIC_CLASSES)}")
    cls = METRIC_CLASSES[class_name]
    return cls(**_kwargs_for(cls, inner))


def _from_keras_object(obj, loss=None, output_type=None, label_type=None) -> Metric:
    if isinstance(obj, type):  # a metric class: Keras instantiates it with defaults
        if issubclass(obj, Metric):
            return obj()
        if obj.__name__ in METRIC_CLASSES:
            return METRIC_CLASSES[obj.__name__]()
        raise KcompileError(f"unknown metric class {obj.__name__!r}; kcompile knows {sorted(METRIC_CLASSES)}")
    if hasattr(obj, "get_config") and hasattr(obj, "update_state"):
        class_name = type(obj).__name__
        config = dict(obj.get_config())
        if class_name == "MeanMetricWrapper" or (class_name not in METRIC_CLASSES and "fn" in config):
            fn = getattr(obj, "_fn", None)
            config["fn"] = getattr(fn, "__name__", config.get("fn"))
            return _from_dict({"class_name": "MeanMetricWrapper", "config": config}, loss, output_type, label_type)
        if class_name == "AUC" and isinstance(config.get("label_weights"), np.ndarray):
            config["label_weights"] = config["label_weights"].tolist()
        return _from_dict({"class_name": class_name, "config": config}, loss, output_type, label_type)
    if callable(obj) and getattr(obj, "__name__", None) in METRIC_FUNCTIONS:
        return METRIC_FUNCTIONS[obj.__name__](name=obj.__name__)
    raise KcompileError(f"cannot interpret {obj!r} as a metric")


__all__ = [
    "AUC", "Accuracy", "AutoMetric", "BinaryAccuracy", "BinaryCrossentropy", "CategoricalAccuracy",
    "CategoricalCrossentropy", "CategoricalHinge", "CosineSimilarity", "FalseNegatives", "FalsePositives",
    "Hinge", "KLDivergence", "LogCoshError", "Mean", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanMetricWrapper", "MeanSquaredError", "MeanSquaredLogarithmicError", "Metric", "METRIC_CLASSES",
    "Poisson", "Precision", "Recall", "RootMeanSquaredError", "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy", "SparseTopKCategoricalAccuracy", "SquaredHinge", "Sum",
    "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives", "get_metric", "resolve_auto",
    "update_confusion_matrix",
]
