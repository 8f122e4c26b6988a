"""Keras's compile / fit / evaluate / train_on_batch / test_on_batch for CompiledModel.

Semantics follow Keras 3: validation_split takes the last fraction of the data before
shuffling; epochs run over range(initial_epoch, epochs); logs hold running means over
the epoch ("loss", metric names, "val_"-prefixed after validation); History and the
progress bar come after the user's callbacks."""
from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

from ..codegen.numba_cpu.kernels.reduce import weighted_sum
from ..errors import InputError, KcompileError
from ..runtime.inputs import batch_size_of, normalize_inputs


# -- compile ------------------------------------------------------------------------------------
def _per_output(value, names, what):
    """A loss or loss_weights argument as one entry per output: a single value (every
    output), a list in output order, or a dict by output name."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise KcompileError(f"{what} names unknown outputs {unknown}; the outputs are {names}")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise KcompileError(f"{what} has {len(value)} entries for {len(names)} outputs")
        return list(value)
    return [value] * len(names)


def _metrics_per_output(metrics, names):
    """metrics: a list (every output), a list of lists in output order, or a dict by name."""
    if not metrics:
        return [[] for _ in names]
    if isinstance(metrics, dict):
        per = _per_output(metrics, names, "metrics")
        return [list(m) if isinstance(m, (list, tuple)) else ([] if m is None else [m]) for m in per]
    if all(isinstance(m, (list, tuple)) for m in metrics) and len(metrics) == len(names):
        return [list(m) for m in metrics]  # one list per output (also how .h5 files store them)
    return [list(metrics) for _ in names]


def compile_model(model, optimizer, loss, metrics, loss_weights, seed=None, **kwargs):
    from .losses import get_loss
    from .metrics import Mean, get_metric
    from .optimizers import get_optimizer

    stored = model.graph.meta.get("training_config") or {}
    if loss is None:
        if not stored:
            raise KcompileError("compile() needs a loss (the model file stores no training configuration)")
        loss = stored.get("loss")
        metrics = metrics if metrics is not None else stored.get("metrics")
        loss_weights = loss_weights if loss_weights is not None else stored.get("loss_weights")
        if optimizer in (None, "rmsprop") and stored.get("optimizer_config"):
            optimizer = stored["optimizer_config"]
    names = model.output_names
    losses = [get_loss(l) if l is not None else None for l in _per_output(loss, names, "loss")]
    weights = [1.0 if w is None else float(w) for w in _per_output(loss_weights, names, "loss_weights")]
    types = [v.type for v in model.graph.outputs]
    metric_lists = [[get_metric(m, loss=losses[k], output_type=types[k]) for m in entry]
                    for k, entry in enumerate(_metrics_per_output(metrics, names))]
    model.optimizer = get_optimizer(optimizer)
    model.losses = losses
    model.loss_weights = weights
    model.compiled_metrics = metric_lists
    model.loss_tracker = Mean(name="loss")
    model.train_seed = seed
    model.trainer = None  # built on the first step (it compiles the training kernels)


def _trainer(model):
    from .trainer import Trainer

    if getattr(model, "optimizer", None) is None:
        raise KcompileError("call compile(optimizer, loss, metrics) before training")
    if model.trainer is None:
        model.trainer = Trainer(model, model.optimizer, model.losses, model.loss_weights, seed=model.train_seed)
        model.trainer.evaluator = None
    return model.trainer


# -- data -----------------------------------------------------------------------------------------
def _targets(model, y) -> list:
    """Targets per output that has a loss (a single array, a list, or a dict by name)."""
    names = [n for n, l in zip(model.output_names, model.losses) if l is not None]
    if isinstance(y, dict):
        missing = [n for n in names if n not in y]
        if missing:
            raise InputError(f"targets missing for outputs {missing}")
        return [np.asarray(y[n]) for n in names]
    if isinstance(y, (list, tuple)) and (len(names) > 1 or (len(y) == 1 and hasattr(y[0], "shape"))):
        if len(y) != len(names):
            raise InputError(f"the model has {len(names)} outputs with losses, got {len(y)} target arrays")
        return [np.asarray(a) for a in y]
    if y is None:
        raise InputError("fit/evaluate need targets y")
    return [np.asarray(y)]


def _sample_weights(y0, sample_weight, class_weight, n):
    weights = np.ones(n, np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32).reshape(-1)
    if weights.shape[0] != n:
        raise InputError(f"sample_weight has {weights.shape[0]} entries for {n} samples")
    if class_weight:
        labels = y0.reshape(n, -1)
        labels = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0].round().astype(np.int64)
        weights = weights * np.array([class_weight.get(int(c), 1.0) for c in labels], np.float32)
    return weights


def _check_lengths(xs, ys, n):
    for a in list(xs) + list(ys):
        if a.shape[0] != n:
            raise InputError(f"inputs and targets disagree on the number of samples: {a.shape[0]} vs {n}")


def _batches(n, batch_size, order=None, steps=None):
    order = np.arange(n) if order is None else order
    starts = list(range(0, n, batch_size))
    if steps is not None:
        starts = starts[:steps]
    for start in starts:
        yield order[start : start + batch_size]


# -- interrupts -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _atomic_step():
    """Ctrl-C during an optimizer update waits for the update to finish, so the weights
    are never half-updated."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda sig, frame: pending.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


# -- metrics and logs ----------------------------------------------------------------------------------
def _metric_key(model, k, metric):
    if len(model.output_names) > 1:
        return f"{model.output_names[k]}_{metric.name}"
    return metric.name


def _reset(model):
    model.loss_tracker.reset_state()
    for metrics in model.compiled_metrics:
        for m in metrics:
            m.reset_state()


def _update(model, loss, batch, predictions, targets, weights):
    model.loss_tracker.update_state(loss, sample_weight=batch)
    target_iter = iter(targets)
    for k, (metrics, loss_fn) in enumerate(zip(model.compiled_metrics, model.losses)):
        y_true = next(target_iter) if loss_fn is not None else None
        for m in metrics:
            m.update_state(y_true, predictions[k], sample_weight=weights)


def _logs(model) -> dict:
    logs = {"loss": float(model.loss_tracker.result())}
    for k, metrics in enumerate(model.compiled_metrics):
        for m in metrics:
            logs[_metric_key(model, k, m)] = float(m.result())
    return logs


# -- evaluation graph -------------------------------------------------------------------------------
class Evaluator:
    """Inference-mode forward + per-sample loss, compiled (the weights as constants;
    rebuilt after they change)."""

    def __init__(self, model):
        from ..api import TARGETS
        from ..passes import run_pipeline

        from .trainer import with_loss

        graph, _ = with_loss(model.graph.copy(), model.losses, model.loss_weights)
        self.program = TARGETS[model.target](run_pipeline(graph, disable=model.disable_passes))

    def regularization(self, model) -> float:
        trainer = model.trainer
        if trainer is None:
            return 0.0
        return sum(r.loss(p) for name, p in zip(trainer.wrt, trainer.params)
                   if (r := trainer.penalties.get(name, (None, None))[0]) is not None)

    def run(self, inputs, targets, weights, batch):
        outputs = self.program(list(inputs) + list(targets), batch)
        return weighted_sum(outputs[0], weights) / batch, outputs[1:]


def _evaluator(model):
    model._refresh()
    trainer = _trainer(model)
    if trainer.evaluator is None:
        trainer.evaluator = Evaluator(model)
    return trainer.evaluator


# -- the loops --------------------------------------------------------------------------------------
def _prepare(model, x, y, sample_weight, class_weight):
    xs = normalize_inputs(x, model.inputs)
    n = batch_size_of(xs, model.inputs)
    ys = _targets(model, y)
    _check_lengths(xs, ys, n)
    weights = _sample_weights(ys[0], sample_weight, class_weight, n)
    return xs, ys, weights, n


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
        class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_batch_size, validation_freq):
    from .callbacks import CallbackList

    trainer = _trainer(model)
    xs, ys, weights, n = _prepare(model, x, y, sample_weight, class_weight)
    batch_size = batch_size or 32
    if validation_split and validation_data is None:
        cut = int(n * (1.0 - validation_split))
        validation_data = ([a[cut:] for a in xs], [a[cut:] for a in ys], weights[cut:])
        xs, ys, weights, n = [a[:cut] for a in xs], [a[:cut] for a in ys], weights[:cut], cut
    elif validation_data is not None:
        vx, vy, *vw = validation_data
        vxs = normalize_inputs(vx, model.inputs)
        vys = _targets(model, vy)
        validation_data = (vxs, vys, _sample_weights(vys[0], vw[0] if vw else None, None, batch_size_of(vxs, model.inputs)))
    steps = steps_per_epoch or -(-n // batch_size)
    show = 1 if verbose == "auto" else verbose
    history_callbacks = CallbackList(callbacks, add_history=True, add_progbar=bool(show), model=model,
                                     verbose=show, epochs=epochs, steps=steps)
    model.stop_training = False
    rng = np.random.default_rng(model.train_seed)
    uniform = sample_weight is None and not class_weight  # the step then reuses its own weights
    history_callbacks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        _reset(model)
        history_callbacks.on_epoch_begin(epoch)
        order = rng.permutation(n) if shuffle else None
        for step, index in enumerate(_batches(n, batch_size, order, steps_per_epoch)):
            history_callbacks.on_train_batch_begin(step)
            batch = len(index)
            inputs = [a[index] for a in xs]
            targets = trainer.check_targets([a[index] for a in ys], batch)
            with _atomic_step():
                loss, predictions = trainer.step(inputs, targets, None if uniform else weights[index], batch)
            _update(model, loss, batch, predictions, [a[index] for a in ys], weights[index])
            logs = _logs(model)
            if not np.isfinite(loss):
                logs["loss"] = loss
            history_callbacks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation_data is not None and (epoch + 1 - initial_epoch) % validation_freq == 0:
            vxs, vys, vw = validation_data
            val = evaluate(model, vxs, vys, validation_batch_size or batch_size, 0, vw, None, None, True,
                           _inner=True)
            epoch_logs.update({f"val_{k}": v for k, v in val.items()})
        history_callbacks.on_epoch_end(epoch, epoch_logs)
        logs = epoch_logs
        if model.stop_training:
            break
    history_callbacks.on_train_end(logs)
    model.history = history_callbacks.history
    return model.history


def evaluate(model, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict, _inner=False):
    from .callbacks import CallbackList

    evaluator = _evaluator(model)
    xs, ys, weights, n = _prepare(model, x, y, sample_weight, None)
    batch_size = batch_size or 32
    total = -(-n // batch_size) if steps is None else steps
    show = (1 if verbose == "auto" else verbose) if not _inner else 0
    hooks = None if _inner else CallbackList(callbacks, add_history=False, add_progbar=bool(show), model=model,
                                             verbose=show, epochs=1, steps=total)
    _reset(model)
    if hooks:
        hooks.on_test_begin()
    regularization = evaluator.regularization(model)
    for step, index in enumerate(_batches(n, batch_size, None, steps)):
        batch = len(index)
        if hooks:
            hooks.on_test_batch_begin(step)
        targets = model.trainer.check_targets([a[index] for a in ys], batch)
        loss, predictions = evaluator.run([a[index] for a in xs], targets, weights[index], batch)
        _update(model, loss + regularization, batch, predictions, [a[index] for a in ys], weights[index])
        if hooks:
            hooks.on_test_batch_end(step, _logs(model))
    logs = _logs(model)
    if hooks:
        hooks.on_test_end(logs)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def train_on_batch(model, x, y, sample_weight, class_weight, return_dict):
    trainer = _trainer(model)
    xs, ys, weights, n = _prepare(model, x, y, sample_weight, class_weight)
    _reset(model)
    targets = trainer.check_targets(ys, n)
    uniform = sample_weight is None and not class_weight  # the step then reuses its own weights
    with _atomic_step():
        loss, predictions = trainer.step(xs, targets, None if uniform else weights, n)
    _update(model, loss, n, predictions, ys, weights)
    return _result(_logs(model), return_dict)


def test_on_batch(model, x, y, sample_weight, return_dict):
    xs = normalize_inputs(x, model.inputs)
    n = batch_size_of(xs, model.inputs)
    return _result(evaluate(model, xs, y, n, 0, sample_weight, None, None, True, _inner=True), return_dict)


def _result(logs, return_dict):
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
