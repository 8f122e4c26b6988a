"""Keras's losses as IR recipes.

    loss = get_loss("sparse_categorical_crossentropy")
    y_true = b.input("y_true", loss.label_spec(y_pred.type).shape, "int32")
    per_sample = loss.build(b, y_pred, y_true)       # shape (batch,)

`build` returns one value per example; the mean over the batch is Keras's
`sum_over_batch_size` reduction (what `fit` reports and differentiates). Losses whose
Keras value has extra axes (a sequence output) are averaged over them, so the mean of
the per-sample values is still Keras's loss. `objective` says how the caller combines
the per-sample values: "mean" (sum_over_batch_size, mean, none) or "sum".

Numerics follow Keras 3 on the TensorFlow backend:
- probabilities are clipped to [1e-7, 1 - 1e-7] (keras.backend.epsilon());
- a crossentropy of a softmax or sigmoid OUTPUT is computed from the logits that fed
  it (Keras caches them on the tensor as `_keras_logits`). Keras does this for any of
  the three crossentropies whichever of the two activations produced y_pred, so a
  binary crossentropy of a softmax output uses the softmax's logits as sigmoid logits,
  as Keras does;
- binary crossentropy from logits uses TensorFlow's stable formula
  relu(x) - x z + log1p(exp(-|x|)), written with the same `where`s so the gradient at
  x = 0 matches TensorFlow's.

TensorFlow is never imported here except lazily, to convert a keras.losses.Loss.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import KcompileError
from ..ir import GraphBuilder, TensorType, Value, interpret
from ..ir.shapes import normalize_axis
from .serialization import keras_serialized

EPSILON = 1e-7  # keras.backend.epsilon()
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# -- small IR helpers ---------------------------------------------------------------------------


def _const(b, value) -> Value:
    return b.const(np.float32(value))


def _to_float(b, v: Value) -> Value:
    return v if v.dtype == "float32" else b.cast(v, dtype="float32")


def _squeeze_last(b, v: Value) -> Value:
    return b.reshape(v, shape=v.shape[:-1])


def _expand_last(b, v: Value) -> Value:
    return b.reshape(v, shape=v.shape + (1,))


def match_rank(b, y_true: Value, y_pred: Value, expand_rank_1: bool = True):
    """keras.losses.loss.squeeze_or_expand_to_same_rank on IR values."""
    t_rank, p_rank = y_true.rank, y_pred.rank
    if t_rank == p_rank + 1 and y_true.shape[-1] == 1:
        if p_rank == 1 and expand_rank_1:
            y_pred = _expand_last(b, y_pred)
        else:
            y_true = _squeeze_last(b, y_true)
    if p_rank == t_rank + 1 and y_pred.shape[-1] == 1:
        if t_rank == 1 and expand_rank_1:
            y_true = _expand_last(b, y_true)
        else:
            y_pred = _squeeze_last(b, y_pred)
    return y_true, y_pred


def _mean_last(b, v: Value, axis: int = -1) -> Value:
    return b.reduce_mean(v, axes=(axis,), keepdims=False)


def _sum_last(b, v: Value, axis: int = -1, keepdims: bool = False) -> Value:
    return b.reduce_sum(v, axes=(axis,), keepdims=keepdims)


def _sum_everything(b, v: Value) -> Value:
    """The sum of all elements, batch included, kept with rank v.rank (all sizes 1)."""
    static = tuple(i for i, d in enumerate(v.shape) if d is not None)
    if static:
        v = b.reduce_sum(v, axes=static, keepdims=True)
    if v.type.dynamic_axis is not None:
        v = b.reduce_batch(v, axis=v.type.dynamic_axis, keepdims=True)
    return v


def _batch_axis(v: Value) -> int:
    axis = v.type.dynamic_axis
    return 0 if axis is None else axis


def per_sample(b, values: Value, how: str = "mean") -> Value:
    """Reduce every axis but the batch axis (mean or sum), giving shape (batch,)."""
    if values.rank == 0:
        raise KcompileError("a loss must keep the batch dimension; got a scalar")
    batch = _batch_axis(values)
    axes = tuple(i for i in range(values.rank) if i != batch)
    if not axes:
        return values
    if how == "sum":
        return b.reduce_sum(values, axes=axes, keepdims=False)
    return b.reduce_mean(values, axes=axes, keepdims=False)


def logits_source(b, y_pred: Value):
    """The logits behind y_pred when a softmax or sigmoid node produced it (through
    identity nodes), as Keras's `_keras_logits`; None otherwise."""
    producers = b.graph.producers()
    node = producers.get(y_pred.name)
    while node is not None and node.op == "identity":
        node = producers.get(node.inputs[0].name)
    if node is not None and node.op in ("softmax", "sigmoid"):
        return node.inputs[0]
    return None


# -- the base class ----------------------------------------------------------------------------


class Loss:
    """A Keras loss: configuration, label type and the IR recipe of its values."""

    keras_class = "Loss"  # the Keras 3 class name (for serialization)
    default_name = "loss"

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        if reduction == "auto":  # tf-keras
            reduction = "sum_over_batch_size"
        if reduction not in REDUCTIONS:
            raise KcompileError(f"invalid loss reduction {reduction!r}; expected one of {REDUCTIONS}")
        self.name = name or self.default_name
        self.reduction = reduction
        self.dtype = dtype
        self.identifier = None  # the string the user compiled with, when it was one

    # -- configuration -----------------------------------------------------------------
    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict) -> "Loss":
        return cls(**config)

    def serialize(self):
        """What Keras writes in a compile config: the string given, else the class dict."""
        if self.identifier is not None:
            return self.identifier
        return keras_serialized("keras.losses", self)

    @property
    def objective(self) -> str:
        """How the caller combines the per-sample values: "mean" or "sum"."""
        return "sum" if self.reduction == "sum" else "mean"

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"

    # -- types -------------------------------------------------------------------------
    def label_spec(self, y_pred_type: TensorType, y_true_shape=None) -> TensorType:
        """The y_true type this loss expects for predictions of `y_pred_type`.

        y_true_shape: optionally the shape of the label data (batch first); when its
        rank differs from the prediction's by a trailing 1 (Keras squeezes or expands
        those), the spec follows the data so that it binds as given."""
        shape = tuple(y_pred_type.shape)
        if y_true_shape is not None:
            data = tuple(y_true_shape)
            if len(data) == len(shape) - 1 and shape[-1] == 1:
                shape = shape[:-1]
            elif len(data) == len(shape) + 1 and data[-1] == 1:
                shape = shape + (1,)
        return TensorType(shape, "float32")

    # -- the recipe --------------------------------------------------------------------
    def values(self, b, y_pred: Value, y_true: Value) -> Value:
        """Keras's unreduced loss values (what the Keras loss function returns)."""
        y_true = _to_float(b, y_true)
        y_true, y_pred = match_rank(b, y_true, y_pred)
        return self.call(b, y_true, y_pred)

    def call(self, b, y_true: Value, y_pred: Value) -> Value:
        raise NotImplementedError

    def build(self, b, y_pred: Value, y_true: Value) -> Value:
        """Per-example loss of shape (batch,) whose mean over the batch (whose sum, for
        reduction="sum") is Keras's loss value."""
        return per_sample(b, self.values(b, y_pred, y_true), "sum" if self.reduction == "sum" else "mean")

    # -- NumPy convenience ---------------------------------------------------------------
    def graph(self, y_pred_shape, y_true_shape, y_true_dtype=None):
        """A small graph (inputs y_pred, y_true; outputs per-sample loss and values)."""
        b = GraphBuilder(f"loss_{self.name}")
        y_pred = b.input("y_pred", (None,) + tuple(y_pred_shape[1:]))
        spec = self.label_spec(y_pred.type, y_true_shape)
        y_true = b.input("y_true", (None,) + tuple(y_true_shape[1:]), y_true_dtype or spec.dtype)
        b.output([self.build(b, y_pred, y_true), self.values(b, y_pred, y_true)], ["per_sample", "values"])
        return b.graph

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """Keras's reduced loss on NumPy arrays (interpreted; for tests and tools)."""
        y_pred = np.asarray(y_pred, dtype=np.float32)
        y_true = np.asarray(y_true)
        spec = self.label_spec(TensorType((None,) + y_pred.shape[1:]), y_true.shape)
        graph = self.graph(y_pred.shape, y_true.shape, spec.dtype)
        per, _ = interpret(graph, [y_pred, y_true.astype(spec.dtype)])
        per = per.astype(np.float64)
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=np.float64).reshape(per.shape[0], -1).mean(axis=1)
            per = per * weights
            if self.reduction == "mean_with_sample_weight":
                total = weights.sum()
                return float(per.sum() / total) if total else 0.0
        if self.objective == "sum":
            return float(per.sum())
        return float(per.mean()) if per.size else 0.0


# -- regression losses ---------------------------------------------------------------------------


class MeanSquaredError(Loss):
    keras_class, default_name = "MeanSquaredError", "mean_squared_error"

    def call(self, b, y_true, y_pred):
        return _mean_last(b, b.square(b.sub(y_true, y_pred)))


class MeanAbsoluteError(Loss):
    keras_class, default_name = "MeanAbsoluteError", "mean_absolute_error"

    def call(self, b, y_true, y_pred):
        return _mean_last(b, b.abs(b.sub(y_true, y_pred)))


class MeanAbsolutePercentageError(Loss):
    keras_class, default_name = "MeanAbsolutePercentageError", "mean_absolute_percentage_error"

    def call(self, b, y_true, y_pred):
        diff = b.abs(b.div(b.sub(y_true, y_pred), b.maximum(b.abs(y_true), _const(b, EPSILON))))
        return b.mul(_const(b, 100.0), _mean_last(b, diff))


class MeanSquaredLogarithmicError(Loss):
    keras_class, default_name = "MeanSquaredLogarithmicError", "mean_squared_logarithmic_error"

    def call(self, b, y_true, y_pred):
        eps, one = _const(b, EPSILON), _const(b, 1.0)
        first = b.log(b.add(b.maximum(y_pred, eps), one))
        second = b.log(b.add(b.maximum(y_true, eps), one))
        return _mean_last(b, b.square(b.sub(first, second)))


def _l2_normalize(b, x: Value, axis: int) -> Value:
    """keras.ops.normalize(x, axis, order=2): x * min(rsqrt(sum(x^2)), 1/epsilon)."""
    square_sum = b.reduce_sum(b.square(x), axes=(axis,), keepdims=True)
    inv_norm = b.minimum(b.rsqrt(square_sum), _const(b, 1.0 / EPSILON))
    return b.mul(x, inv_norm)


class CosineSimilarity(Loss):
    keras_class, default_name = "CosineSimilarity", "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction, name, dtype)
        self.axis = axis

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

    def call(self, b, y_true, y_pred):
        axis = normalize_axis(self.axis, y_pred.rank)
        product = b.mul(_l2_normalize(b, y_true, axis), _l2_normalize(b, y_pred, axis))
        return b.neg(b.reduce_sum(product, axes=(axis,), keepdims=False))


class Huber(Loss):
    keras_class, default_name = "Huber", "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction, name, dtype)
        self.delta = delta

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}

    def call(self, b, y_true, y_pred):
        delta, half = _const(b, self.delta), _const(b, 0.5)
        error = b.sub(y_pred, y_true)
        abs_error = b.abs(error)
        quadratic = b.mul(half, b.square(error))
        linear = b.sub(b.mul(delta, abs_error), b.mul(half, b.square(delta)))
        return _mean_last(b, b.where(b.less_equal(abs_error, delta), quadratic, linear))


class LogCosh(Loss):
    keras_class, default_name = "LogCosh", "log_cosh"

    def call(self, b, y_true, y_pred):
        x = b.sub(y_pred, y_true)
        log_cosh = b.sub(b.add(x, b.softplus(b.mul(x, _const(b, -2.0)))), _const(b, math.log(2.0)))
        return _mean_last(b, log_cosh)


# -- hinge losses ----------------------------------------------------------------------------------


def _hinge_labels(b, y_true: Value) -> Value:
    """Keras's convert_binary_labels_to_hinge: 2y - 1 when every label of the batch is 0
    or 1, the labels unchanged otherwise."""
    zero, one = _const(b, 0.0), _const(b, 1.0)
    binary = b.add(b.equal(y_true, zero), b.equal(y_true, one))
    others = _sum_everything(b, b.sub(one, binary))
    converted = b.sub(b.mul(_const(b, 2.0), y_true), one)
    return b.where(b.equal(others, zero), converted, y_true)


class Hinge(Loss):
    keras_class, default_name = "Hinge", "hinge"

    def call(self, b, y_true, y_pred):
        y_true = _hinge_labels(b, y_true)
        margin = b.maximum(b.sub(_const(b, 1.0), b.mul(y_true, y_pred)), _const(b, 0.0))
        return _mean_last(b, margin)


class SquaredHinge(Loss):
    keras_class, default_name = "SquaredHinge", "squared_hinge"

    def call(self, b, y_true, y_pred):
        y_true = _hinge_labels(b, y_true)
        margin = b.maximum(b.sub(_const(b, 1.0), b.mul(y_true, y_pred)), _const(b, 0.0))
        return _mean_last(b, b.square(margin))


class CategoricalHinge(Loss):
    keras_class, default_name = "CategoricalHinge", "categorical_hinge"

    def call(self, b, y_true, y_pred):
        one = _const(b, 1.0)
        pos = _sum_last(b, b.mul(y_true, y_pred))
        neg = b.reduce_max(b.mul(b.sub(one, y_true), y_pred), axes=(-1,), keepdims=False)
        return b.maximum(b.add(b.sub(neg, pos), one), _const(b, 0.0))


# -- probabilistic losses ----------------------------------------------------------------------------


class KLDivergence(Loss):
    keras_class, default_name = "KLDivergence", "kl_divergence"

    def call(self, b, y_true, y_pred):
        y_true = b.clip(y_true, low=EPSILON, high=1.0)
        y_pred = b.clip(y_pred, low=EPSILON, high=1.0)
        return _sum_last(b, b.mul(y_true, b.log(b.div(y_true, y_pred))))


class Poisson(Loss):
    keras_class, default_name = "Poisson", "poisson"

    def call(self, b, y_true, y_pred):
        log = b.log(b.add(y_pred, _const(b, EPSILON)))
        return _mean_last(b, b.sub(y_pred, b.mul(y_true, log)))


class _Crossentropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(reduction, name, dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}

    def values(self, b, y_pred, y_true):
        logits = logits_source(b, y_pred)
        y_true = _to_float(b, y_true)
        y_true, y_pred = match_rank(b, y_true, y_pred)
        if logits is not None and logits.shape != y_pred.shape:
            logits = b.reshape(logits, shape=y_pred.shape)
        return self.call(b, y_true, y_pred, logits)


class BinaryCrossentropy(_Crossentropy):
    keras_class, default_name = "BinaryCrossentropy", "binary_crossentropy"

    def call(self, b, y_true, y_pred, logits=None):
        one = _const(b, 1.0)
        if self.label_smoothing:
            s = self.label_smoothing
            y_true = b.add(b.mul(y_true, _const(b, 1.0 - s)), _const(b, 0.5 * s))
        if logits is None and self.from_logits:
            logits = y_pred
        if logits is not None:
            # tf.nn.sigmoid_cross_entropy_with_logits, op for op.
            zero = _const(b, 0.0)
            positive = b.greater_equal(logits, zero)
            relu_logits = b.where(positive, logits, zero)
            neg_abs_logits = b.where(positive, b.neg(logits), logits)
            bce = b.add(b.sub(relu_logits, b.mul(logits, y_true)), b.log1p(b.exp(neg_abs_logits)))
        else:
            output = b.clip(y_pred, low=EPSILON, high=1.0 - EPSILON)
            bce = b.mul(y_true, b.log(output))
            bce = b.add(bce, b.mul(b.sub(one, y_true), b.log(b.sub(one, output))))
            bce = b.neg(bce)
        return b.reduce_mean(bce, axes=(self.axis,), keepdims=False)


class CategoricalCrossentropy(_Crossentropy):
    keras_class, default_name = "CategoricalCrossentropy", "categorical_crossentropy"

    def call(self, b, y_true, y_pred, logits=None):
        axis = normalize_axis(self.axis, y_pred.rank)
        if self.label_smoothing:
            s, classes = self.label_smoothing, y_true.shape[-1]
            y_true = b.add(b.mul(y_true, _const(b, 1.0 - s)), _const(b, np.float32(s) / np.float32(classes)))
        if logits is None and self.from_logits:
            logits = y_pred
        if logits is not None:
            # tf.nn.softmax_cross_entropy_with_logits
            return b.neg(_sum_last(b, b.mul(y_true, b.log_softmax(logits, axis=axis)), axis))
        output = b.div(y_pred, _sum_last(b, y_pred, axis, keepdims=True))
        output = b.clip(output, low=EPSILON, high=1.0 - EPSILON)
        return b.neg(_sum_last(b, b.mul(y_true, b.log(output)), axis))


class SparseCategoricalCrossentropy(Loss):
    keras_class, default_name = "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name=None, dtype=None):
        super().__init__(reduction, name, dtype)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class
        self.axis = axis

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}

    def label_spec(self, y_pred_type, y_true_shape=None):
        shape = tuple(y_pred_type.shape[:-1])
        if y_true_shape is not None and len(y_true_shape) == len(y_pred_type.shape) and y_true_shape[-1] == 1:
            shape = shape + (1,)
        return TensorType(shape, "int32")

    def values(self, b, y_pred, y_true):
        if y_true.rank == y_pred.rank and y_true.shape[-1] == 1:
            y_true = _squeeze_last(b, y_true)
        if y_true.rank != y_pred.rank - 1:
            raise KcompileError(f"sparse_categorical_crossentropy: labels {y_true.type} for predictions {y_pred.type}")
        labels = _to_float(b, y_true)
        logits = logits_source(b, y_pred)
        valid = None
        if self.ignore_class is not None:
            # Keras masks labels and predictions first; the masked predictions carry no
            # logits, so the probability path applies unless from_logits.
            ignore = _const(b, self.ignore_class)
            valid = b.not_equal(labels, ignore)
            labels = b.where(valid, labels, _const(b, 0.0))
            y_pred = b.where(_expand_last(b, valid), y_pred, _const(b, 0.0))
            logits = None
        if logits is None:
            logits = y_pred if self.from_logits else b.log(b.clip(y_pred, low=EPSILON, high=1.0 - EPSILON))
        classes = y_pred.shape[-1]
        onehot = b.equal(_expand_last(b, labels), b.const(np.arange(classes, dtype=np.float32)))
        result = b.neg(_sum_last(b, b.mul(onehot, b.log_softmax(logits, axis=-1))))
        if valid is not None:
            result = b.where(valid, result, _const(b, 0.0))
            result = self._mask_scale(b, result, valid)
        return result

    def _mask_scale(self, b, result: Value, valid: Value) -> Value:
        """Keras's apply_mask for sum_over_batch_size: valid entries weigh total/valid."""
        if self.reduction not in ("sum_over_batch_size", "mean"):
            return result
        one, zero = _const(b, 1.0), _const(b, 0.0)
        total = _sum_everything(b, b.where(valid, one, one))
        count = _sum_everything(b, valid)
        ratio = b.where(b.greater(count, zero), b.div(total, b.maximum(count, one)), zero)
        return b.mul(result, ratio)


# -- lookup -------------------------------------------------------------------------------------------

LOSS_CLASSES = {cls.keras_class: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
    CosineSimilarity, Huber, LogCosh, Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
)}

# Keras loss function names and aliases (Keras 3's ALL_OBJECTS_DICT plus tf-keras's
# legacy names) -> class. A loss made from one of these strings is named by the string.
LOSS_FUNCTIONS = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError, "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity,
    "huber": Huber, "huber_loss": Huber,
    "log_cosh": LogCosh, "logcosh": LogCosh,
    "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "KLD": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}

AUTO_CROSSENTROPY = ("crossentropy", "ce")


def is_binary_or_sparse(y_true_shape, y_pred_shape):
    """keras.src.trainers.compile_utils.is_binary_or_sparse_categorical on shapes."""
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
    return is_binary, is_sparse


def resolve_crossentropy(y_pred_shape, y_true_shape=None) -> str:
    """The loss Keras picks for "crossentropy"/"ce" (labels like the predictions when
    their shape is not given)."""
    y_true_shape = tuple(y_pred_shape) if y_true_shape is None else tuple(y_true_shape)
    is_binary, is_sparse = is_binary_or_sparse(y_true_shape, tuple(y_pred_shape))
    if is_binary:
        return "binary_crossentropy"
    return "sparse_categorical_crossentropy" if is_sparse else "categorical_crossentropy"


def _from_string(name: str, y_pred_type=None, y_true_shape=None) -> Loss:
    if str(name).lower() in AUTO_CROSSENTROPY:
        if y_pred_type is None:
            raise KcompileError(f"loss {name!r} needs the output type to pick a crossentropy; pass y_pred_type")
        shape = y_pred_type.shape if isinstance(y_pred_type, TensorType) else tuple(y_pred_type)
        loss = LOSS_FUNCTIONS[resolve_crossentropy(shape, y_true_shape)](name=name)
    elif name in LOSS_CLASSES:
        loss = LOSS_CLASSES[name]()
    elif name in LOSS_FUNCTIONS:
        loss = LOSS_FUNCTIONS[name](name=name)
    else:
        raise KcompileError(f"unknown loss {name!r}; kcompile knows {sorted(set(LOSS_CLASSES) | set(LOSS_FUNCTIONS))}")
    loss.identifier = name
    return loss


_IGNORED_CONFIG = ("fn", "dtype")
_WRAPPERS = ("LossFunctionWrapper", "function")


def _function_name(fn):
    """A wrapped loss function's name: a string, or Keras 3's serialized function dict."""
    if isinstance(fn, dict):
        return fn.get("config") if fn.get("class_name") == "function" else fn.get("class_name")
    return fn


def _from_class(class_name: str, config: dict) -> Loss:
    """A loss from a Keras class name and config (Keras 3 or tf-keras, which adds "fn")."""
    import inspect

    config = dict(config or {})
    kwargs = {k: v for k, v in config.items() if k not in _IGNORED_CONFIG}
    if class_name in LOSS_CLASSES:
        cls = LOSS_CLASSES[class_name]
    elif class_name in _WRAPPERS:
        fn = _function_name(config.get("fn"))
        if fn not in LOSS_FUNCTIONS:
            raise KcompileError(f"unknown loss function {fn!r} in a serialized {class_name}")
        cls = LOSS_FUNCTIONS[fn]
        kwargs.setdefault("name", fn)
    else:
        raise KcompileError(f"unknown loss class {class_name!r}; kcompile knows {sorted(LOSS_CLASSES)}")
    unknown = set(kwargs) - (set(inspect.signature(cls.__init__).parameters) - {"self"})
    if unknown:
        raise KcompileError(f"loss {class_name}: unsupported arguments {sorted(unknown)}")
    return cls(**kwargs)


def get_loss(identifier, y_pred_type=None, y_true_shape=None) -> Loss:
    """A kcompile Loss from what Keras accepts as a loss.

    identifier: a Keras name ("categorical_crossentropy", "mse", "Huber", ... and
        "crossentropy"/"ce", resolved from y_pred_type and y_true_shape as Keras does);
        a Keras-serialized dict ({"class_name", "config"} as in a compile or training
        config, Keras 3 or tf-keras, including {"class_name": "function", "config":
        name}); a kcompile Loss (returned as is); a keras.losses.Loss instance or a
        Keras loss function (converted by class name and get_config()).
    """
    if identifier is None:
        return None
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return _from_string(identifier, y_pred_type, y_true_shape)
    if isinstance(identifier, dict):
        class_name = identifier.get("class_name")
        if class_name is None:
            raise KcompileError(f"cannot read the loss {identifier!r}")
        if class_name == "function":
            return _from_string(identifier["config"], y_pred_type, y_true_shape)
        return _from_class(class_name, identifier.get("config", {}))
    return _from_keras_object(identifier)


def _from_keras_object(obj) -> Loss:
    """Convert a keras.losses.Loss instance or class, or a Keras loss function (duck-typed)."""
    if isinstance(obj, type):
        if issubclass(obj, Loss):
            return obj()
        if obj.__name__ in LOSS_CLASSES:
            return LOSS_CLASSES[obj.__name__]()
        raise KcompileError(f"unknown loss class {obj.__name__!r}; kcompile knows {sorted(LOSS_CLASSES)}")
    if callable(obj) and not hasattr(obj, "get_config") and getattr(obj, "__name__", None) in LOSS_FUNCTIONS:
        return LOSS_FUNCTIONS[obj.__name__](name=obj.__name__)
    if hasattr(obj, "get_config"):
        config = dict(obj.get_config())
        class_name = type(obj).__name__
        fn = getattr(getattr(obj, "fn", None), "__name__", None)
        if class_name not in LOSS_CLASSES and fn is not None:  # a LossFunctionWrapper
            return _from_class("LossFunctionWrapper", dict(config, fn=fn))
        return _from_class(class_name, config)
    raise KcompileError(f"cannot interpret {obj!r} as a loss")


def serialize_loss(loss: Loss):
    return loss.serialize()


__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "CategoricalHinge", "CosineSimilarity", "EPSILON", "Hinge",
    "Huber", "KLDivergence", "LOSS_CLASSES", "LOSS_FUNCTIONS", "LogCosh", "Loss", "MeanAbsoluteError",
    "MeanAbsolutePercentageError", "MeanSquaredError", "MeanSquaredLogarithmicError", "Poisson",
    "SparseCategoricalCrossentropy", "SquaredHinge", "get_loss", "is_binary_or_sparse", "logits_source",
    "match_rank", "per_sample", "resolve_crossentropy", "serialize_loss",
]
