"""kcompile.training.callbacks against keras.callbacks: the same hook sequences on a
fake model, compared by hook order, logs, stopping decisions, learning rates, files
written and printed output."""
import contextlib
import io
import math
import os
import re

import numpy as np
import pytest

from kcompile.training import callbacks as C
from kcompile.training import metrics as M
from kcompile.training import optimizers as O

keras = pytest.importorskip("keras")
KC = keras.callbacks


class FakeModel:
    """What callbacks see of a model: stop_training, weights, save, optimizer, metrics."""

    def __init__(self, optimizer=None, metrics=()):
        self.stop_training = False
        self.weights = [np.zeros(3, np.float32)]
        self.optimizer = optimizer if optimizer is not None else O.SGD(learning_rate=0.1)
        self.metrics = list(metrics)
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path, overwrite=True):
        with open(path, "w") as f:
            f.write(f"model {self.weights[0][0]}")
        self.saved.append(os.path.basename(path))

    def save_weights(self, path, overwrite=True):
        with open(path, "w") as f:
            f.write("weights")
        self.saved.append(os.path.basename(path))


def run_epochs(callback_list, model, epoch_logs, batches=0, batch_logs=None):
    """Drive fit's hook sequence; each epoch's weights are [epoch] * 3."""
    callback_list.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        callback_list.on_epoch_begin(epoch)
        for batch in range(batches):
            callback_list.on_train_batch_begin(batch)
            callback_list.on_train_batch_end(batch, batch_logs(epoch, batch) if batch_logs else {"loss": 1.0})
        model.weights = [np.full(3, epoch, np.float32)]
        callback_list.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    callback_list.on_train_end()
    return epoch


def _record(self, name):
    if name.startswith("on_"):
        events = object.__getattribute__(self, "events")
        return lambda *args, **kwargs: events.append((name, args, kwargs))
    return object.__getattribute__(self, name)


class Recorder(C.Callback):
    """Records every hook call as (name, positional args, keyword args)."""

    __getattribute__ = _record

    def __init__(self, events):
        super().__init__()
        self.events = events


class KerasRecorder(KC.Callback):
    __getattribute__ = _record

    def __init__(self, events):
        super().__init__()
        self.events = events


def drive_all_hooks(callback_list):
    callback_list.on_train_begin({"b": 1})
    callback_list.on_epoch_begin(0)
    callback_list.on_train_batch_begin(0)
    callback_list.on_train_batch_end(0, {"loss": np.float32(0.5), "accuracy": 0.25})
    callback_list.on_test_begin()
    callback_list.on_test_batch_begin(0)
    callback_list.on_test_batch_end(0, {"loss": 0.7})
    callback_list.on_test_end({"loss": 0.7})
    callback_list.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.7, "accuracy": np.float64(0.25)})
    callback_list.on_train_end()
    callback_list.on_predict_begin()
    callback_list.on_predict_batch_begin(0)
    callback_list.on_predict_batch_end(0, {"outputs": 1.0})
    callback_list.on_predict_end()


def test_callback_list_hook_order_logs_and_defaults_match_keras():
    ours_events, keras_events, theirs_events = [], [], []
    model = FakeModel()
    ours = C.CallbackList([Recorder(ours_events), KerasRecorder(keras_events)], add_history=True, add_progbar=False,
                          model=model, verbose=1, epochs=1, steps=1)
    theirs = KC.CallbackList([KerasRecorder(theirs_events)], add_history=True, add_progbar=False, model=FakeModel(),
                             verbose=1, epochs=1, steps=1)
    drive_all_hooks(ours)
    drive_all_hooks(theirs)
    theirs._flush_futures() if hasattr(theirs, "_flush_futures") else None
    assert ours_events == theirs_events == keras_events
    epoch_end = [e for e in ours_events if e[0] == "on_epoch_end"][0]
    assert list(epoch_end[1][1]) == ["accuracy", "loss", "val_loss"]  # sorted, as pythonify_logs
    # a Keras callback instance gets the kcompile model and the params
    keras_recorder = ours.callbacks[1]
    assert keras_recorder.model is model and keras_recorder.params == {"verbose": 1, "epochs": 1, "steps": 1}
    assert [type(c).__name__ for c in ours.callbacks] == ["Recorder", "KerasRecorder", "History"]
    assert model.history is ours.history and ours.history.history == {"accuracy": [0.25], "loss": [0.5],
                                                                       "val_loss": [0.7]}
    assert ours.history.epoch == [0]
    with_bar = C.CallbackList([Recorder([])], add_progbar=True, verbose=1, epochs=1, steps=1)
    assert [type(c).__name__ for c in with_bar.callbacks] == ["Recorder", "History", "ProgbarLogger"]
    # user-supplied History/ProgbarLogger (ours or Keras's) are not duplicated
    history = KC.History()
    assert C.CallbackList([history, C.ProgbarLogger()], add_progbar=True).callbacks[0] is history
    assert len(C.CallbackList([history, C.ProgbarLogger()], add_progbar=True).callbacks) == 2


def test_base_callback_batch_hooks_delegate_like_keras():
    calls = []

    class OnBatch(C.Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch))

    C.CallbackList([OnBatch()]).on_train_batch_begin(3)
    C.CallbackList([OnBatch()]).on_train_batch_end(3, {"loss": 1})
    assert calls == [("begin", 3), ("end", 3)]


EARLY_STOPPING_CASES = [
    (dict(monitor="val_loss", patience=2), [0.9, 0.8, 0.85, 0.81, 0.7, 0.6]),
    (dict(monitor="val_loss", patience=1, min_delta=0.05), [0.9, 0.87, 0.86, 0.5, 0.49, 0.2]),
    (dict(monitor="val_loss", patience=3, restore_best_weights=True), [0.9, 0.5, 0.6, 0.7, 0.8, 0.9]),
    (dict(monitor="val_loss", patience=2, baseline=0.4), [0.9, 0.5, 0.45, 0.41, 0.3, 0.1]),
    (dict(monitor="val_loss", patience=1, start_from_epoch=3), [0.9, 1.0, 1.1, 1.2, 1.3, 1.4]),
    (dict(monitor="loss", patience=0), [1.0, 0.9, 0.95, 0.8]),
    (dict(monitor="val_accuracy", mode="max", patience=1, restore_best_weights=True), [0.1, 0.5, 0.4, 0.3, 0.9]),
    (dict(monitor="val_missing", mode="min", patience=1), [0.5, 0.6]),
]


@pytest.mark.filterwarnings("ignore:Early stopping conditioned on metric")
@pytest.mark.parametrize("kwargs, values", EARLY_STOPPING_CASES)
def test_early_stopping_matches_keras(kwargs, values):
    key = kwargs["monitor"]
    logs = [{"loss": v if key == "loss" else 1.0, key: v} for v in values]
    results = []
    for module in (C, KC):
        model = FakeModel()
        callback = module.EarlyStopping(**kwargs)
        callback_list = module.CallbackList([callback], model=model)
        last = run_epochs(callback_list, model, logs)
        results.append((last, callback.stopped_epoch, callback.best, callback.wait, model.stop_training,
                        model.weights[0].tolist(), callback.best_epoch))
    assert results[0] == results[1]


def test_early_stopping_auto_mode_uses_the_models_metrics():
    model = FakeModel(metrics=[M.get_metric("accuracy", output_type=(None, 1)), M.get_metric("mse")])
    callback = C.EarlyStopping(monitor="val_accuracy", patience=0)
    run_epochs(C.CallbackList([callback], model=model), model,
               [{"val_accuracy": v, "val_mse": 1.0} for v in (0.5, 0.6, 0.55, 0.9)])
    assert callback.stopped_epoch == 2 and callback.best == 0.6
    callback = C.EarlyStopping(monitor="val_mse", patience=0)
    model = FakeModel(metrics=[M.get_metric("mse")])
    run_epochs(C.CallbackList([callback], model=model), model, [{"val_mse": v} for v in (0.5, 0.4, 0.45)])
    assert callback.stopped_epoch == 2 and callback.best == 0.4
    with pytest.raises(ValueError):
        model = FakeModel()
        run_epochs(C.CallbackList([C.EarlyStopping(monitor="val_custom")], model=model), model,
                   [{"val_custom": 1.0}])


@pytest.mark.parametrize("kwargs", [dict(patience=1, factor=0.5), dict(patience=2, factor=0.2, cooldown=1,
                                                                       min_lr=0.005),
                                    dict(monitor="accuracy", mode="max", patience=1, min_delta=0.01)])
def test_reduce_lr_on_plateau_matches_keras(kwargs):
    values = [1.0, 0.9, 0.95, 0.96, 0.97, 0.85, 0.86, 0.87, 0.88, 0.89]
    key = kwargs.get("monitor", "val_loss")
    results = []
    for module, optimizer in ((C, O.SGD(learning_rate=0.1)), (KC, keras.optimizers.SGD(learning_rate=0.1))):
        model = FakeModel(optimizer=optimizer)
        callback_list = module.CallbackList([module.ReduceLROnPlateau(**kwargs)], add_history=True, model=model)
        run_epochs(callback_list, model, [{key: v} for v in values])
        results.append((callback_list.callbacks[-1].history["learning_rate"],
                        float(np.asarray(model.optimizer.learning_rate))))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-7)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-7)
    assert len(set(results[0][0])) > 1


def test_learning_rate_scheduler_matches_keras():
    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * 0.5

    results = []
    for module, optimizer in ((C, O.Adam(learning_rate=0.01)), (KC, keras.optimizers.Adam(learning_rate=0.01))):
        model = FakeModel(optimizer=optimizer)
        callback_list = module.CallbackList([module.LearningRateScheduler(schedule)], add_history=True, model=model)
        run_epochs(callback_list, model, [{"loss": 1.0}] * 5)
        results.append(callback_list.callbacks[-1].history)
    assert results[0].keys() == results[1].keys() == {"learning_rate", "loss"}
    np.testing.assert_allclose(results[0]["learning_rate"], results[1]["learning_rate"], rtol=1e-7)
    model = FakeModel()
    run_epochs(C.CallbackList([C.LearningRateScheduler(lambda epoch: 0.5 / (epoch + 1))], model=model), model,
               [{}] * 2)
    assert model.optimizer.learning_rate == pytest.approx(0.25)


def _listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("kwargs, filename", [
    (dict(), "m-{epoch:02d}.keras"),
    (dict(save_best_only=True), "best.keras"),
    (dict(save_best_only=True, monitor="val_loss", mode="max"), "m-{epoch}-{val_loss:.2f}.keras"),
    (dict(save_weights_only=True, save_best_only=True), "w-{epoch}.weights.h5"),
    (dict(save_freq=2), "b-{epoch}-{batch}.keras"),
    (dict(initial_value_threshold=0.55, save_best_only=True), "t-{epoch}.keras"),
])
def test_model_checkpoint_matches_keras_and_writes_atomically(tmp_path, kwargs, filename):
    logs = [{"loss": 1.0, "val_loss": v} for v in (0.6, 0.5, 0.7, 0.4)]
    saved = []
    for module in (C, KC):
        folder = tmp_path / module.__name__.split(".")[0]
        model = FakeModel()
        callback = module.ModelCheckpoint(str(folder / "sub" / filename), **kwargs)
        run_epochs(module.CallbackList([callback], model=model), model, logs, batches=3)
        saved.append(_listing(folder / "sub"))
        if module is C:
            assert not [name for name in saved[-1] if name.startswith(".tmp")]
            assert all(name.startswith(".tmp") for name in model.saved)  # written aside, then moved
    assert saved[0] == saved[1] and saved[0]
    with pytest.raises(ValueError):
        C.ModelCheckpoint(str(tmp_path / "x.h5"), save_weights_only=True)
    with pytest.raises(ValueError):
        C.ModelCheckpoint(str(tmp_path / "x.txt"))


def test_model_checkpoint_keeps_the_old_file_when_saving_fails(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("previous")

    class Failing(FakeModel):
        def save(self, path, overwrite=True):
            with open(path, "w") as f:
                f.write("half")
            raise OSError("disk full")

    model = Failing()
    with pytest.raises(OSError):
        run_epochs(C.CallbackList([C.ModelCheckpoint(str(target))], model=model), model, [{"val_loss": 1.0}])
    assert target.read_text() == "previous" and _listing(tmp_path) == ["model.keras"]


@pytest.mark.parametrize("kwargs", [dict(), dict(separator=";"), dict(append=True)])
def test_csv_logger_matches_keras(tmp_path, kwargs):
    logs = [{"loss": 0.5 + i, "accuracy": 0.25 * i, "val_loss": 1.5} for i in range(3)]
    contents = []
    for module in (C, KC):
        path = tmp_path / f"{module.__name__.split('.')[0]}.csv"
        if kwargs.get("append"):
            path.write_text("")
        for _ in range(2 if kwargs.get("append") else 1):
            model = FakeModel()
            run_epochs(module.CallbackList([module.CSVLogger(str(path), **kwargs)], model=model), model, logs)
        contents.append(path.read_text())
    assert contents[0] == contents[1]
    assert contents[0].splitlines()[0].split(kwargs.get("separator", ","))[:2] == ["epoch", "accuracy"]


def test_terminate_on_nan_and_lambda_callback(capsys):
    model = FakeModel()
    seen = []
    callbacks = [C.TerminateOnNaN(),
                 C.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["loss"])),
                                  on_train_begin=lambda logs: seen.append("begin"))]
    run_epochs(C.CallbackList(callbacks, model=model), model, [{"loss": 1.0}] * 3, batches=3,
               batch_logs=lambda epoch, batch: {"loss": math.nan if (epoch, batch) == (1, 2) else 1.0})
    assert model.stop_training and seen == ["begin", (0, 1.0), (1, 1.0)]
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError):
        C.CallbackList([C.TerminateOnNaN(raise_error=True)], model=FakeModel()).on_train_batch_end(
            0, {"loss": math.inf})


def _mask_times(text):
    text = re.sub(r"\d+(us|ms|s)/step", "T/step", text)
    text = re.sub(r"\x1b\[1m\d+s\x1b\[0m", "\x1b[1mTs\x1b[0m", text)
    text = re.sub(r" - \d+s -", " - Ts -", text)
    return re.sub(r"\x08+", "\x08", text)


@pytest.mark.parametrize("verbose, epochs, steps", [(1, 2, 3), (2, 2, 3), (1, 1, 12), (0, 2, 2), (1, 1, None)])
def test_progress_output_matches_keras(verbose, epochs, steps):
    outputs = []
    for module in (C, KC):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            model = FakeModel()
            callback_list = module.CallbackList([], add_history=True, add_progbar=True, model=model,
                                                verbose=verbose, epochs=epochs, steps=steps)
            run_epochs(callback_list, model,
                       [{"loss": 0.5, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 1e-4}] * epochs,
                       batches=steps or 4,
                       batch_logs=lambda epoch, batch: {"loss": 1.0 / (batch + 1), "accuracy": 0.25 * batch})
        outputs.append(_mask_times(buffer.getvalue()))
    assert outputs[0] == outputs[1]
    if verbose == 1:
        assert "━" in outputs[0] and " - accuracy: 0.5000 - loss: 0.5000" in outputs[0]
    if verbose == 2:
        assert outputs[0].splitlines()[1].startswith("3/3 - Ts - T/step - accuracy: 0.5000")
