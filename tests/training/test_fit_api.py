"""Keras's training API on a CompiledModel: fit/evaluate/History, callbacks, weights in
and out (Keras loads what kcompile saves), seeded Dropout, bad input."""
import os
import signal
import threading

import numpy as np
import pytest

import kcompile
from kcompile import zoo
from kcompile.training import callbacks as kc_callbacks
from support.keras_models import assert_close, keras3, keras_outputs, randomize, tf_keras


def digits(n=96, seed=0, features=784):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, (x[:, :10].argmax(axis=1)).astype(np.int64)  # learnable labels


@pytest.fixture()
def mlp_path(tmp_path):
    K = keras3()
    model = randomize(zoo.mnist_mlp(K, dropout=0.2), seed=1)
    path = str(tmp_path / "mlp.keras")
    model.save(path)
    return path


def test_fit_returns_keras_history_and_learns(mlp_path):
    model = kcompile.compile(mlp_path)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], seed=0)
    x, y = digits(256)
    history = model.fit(x, y, batch_size=32, epochs=4, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 4 and history.epoch == [0, 1, 2, 3]
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.5 and np.isfinite(loss)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}


def test_profile_times_every_step_and_leaves_the_model_alone(mlp_path):
    model = kcompile.compile(mlp_path)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", seed=0)
    x, y = digits(32)
    model.train_on_batch(x, y)
    weights, iterations = model.get_weights(), model.optimizer.iterations
    steps = model.trainer.profile([x], [y.astype(np.int32)], 32, repeats=3)
    labels = [label for label, _ in steps]
    assert len(steps) == len(model.trainer.program.bound(32)[1]) + 1  # each program step, then the update
    assert labels[-1] == "optimizer (Adam)" and any("@" in label for label in labels[:-1])
    assert all(seconds > 0 for _, seconds in steps)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert model.optimizer.iterations == iterations
    assert np.isfinite(model.train_on_batch(x, y))


def test_training_step_threads_small_elementwise_kernels_and_matches_the_interpreter(mlp_path):
    """A training program threads elementwise kernels from 256 features per sample
    (inference, from 4096): at batch 128 the MLP's 512-wide ones take the threaded loop."""
    from kcompile.ir import interpret

    model = kcompile.compile(mlp_path)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", seed=0)
    x, y = digits(128)
    model.train_on_batch(x, y)
    trainer = model.trainer
    relu_grads = [k for k in trainer.program.source.split("@njit")[1:] if "relu_grad" in k]
    assert relu_grads and all("parallel=True" in kernel and "prange" in kernel for kernel in relu_grads)
    inputs = [np.array(a) for a in trainer._program_inputs([x], [y.astype(np.int32)], trainer._weights(None, 128)[1], 128)]
    got = trainer.program(inputs, 128)
    external = set(trainer.arrays)
    arrays = dict(zip([v.name for v in trainer.graph.inputs if v.name not in external], inputs), **trainer.arrays)
    expected = interpret(trainer.graph, [arrays[v.name] for v in trainer.graph.inputs])
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_keras_loads_what_kcompile_trained_and_predicts_the_same(mlp_path, tmp_path):
    K = keras3()
    model = kcompile.compile(mlp_path)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = digits(64)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for name in ("trained.keras", "trained.h5"):
        out = str(tmp_path / name)
        model.save(out)
        reloaded = K.models.load_model(out)
        assert_close(model.predict(x, verbose=0), keras_outputs(reloaded, [x])[0], name)
    weights = str(tmp_path / "trained.weights.h5")
    model.save_weights(weights)
    fresh = kcompile.compile(mlp_path)
    fresh.load_weights(weights)
    assert_close(fresh.predict(x, verbose=0), model.predict(x, verbose=0), "load_weights")


def test_get_and_set_weights_follow_keras_order(mlp_path):
    K = keras3()
    reference = K.models.load_model(mlp_path)
    model = kcompile.compile(mlp_path)
    ours, theirs = model.get_weights(), reference.get_weights()
    assert [w.shape for w in ours] == [w.shape for w in theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    scaled = [w * 0.5 for w in theirs]
    model.set_weights(scaled)
    reference.set_weights(scaled)
    x, _ = digits(5)
    assert_close(model.predict(x, verbose=0), keras_outputs(reference, [x])[0], "after set_weights")
    with pytest.raises(kcompile.KcompileError, match="has shape"):
        model.set_weights([w.T for w in scaled])


def test_trained_h5_from_tf_keras_with_training_config(tmp_path):
    T = tf_keras()
    model = randomize(T.Sequential([T.layers.Dense(8, activation="relu", input_shape=(4,)), T.layers.Dense(3, activation="softmax")]))
    model.compile(optimizer=T.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = str(tmp_path / "tfk.h5")
    model.save(path)
    compiled = kcompile.compile(path)
    compiled.compile()  # the file's training_config: Adam(0.01), crossentropy, accuracy
    assert type(compiled.optimizer).__name__ == "Adam" and abs(compiled.optimizer.learning_rate - 0.01) < 1e-9
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    history = compiled.fit(x, (x[:, 0] > 0).astype(np.int64), epochs=2, verbose=0)
    assert "accuracy" in history.history
    compiled.save(str(tmp_path / "tfk_trained.h5"))
    reloaded = T.models.load_model(str(tmp_path / "tfk_trained.h5"))
    assert_close(compiled.predict(x, verbose=0), keras_outputs(reloaded, [x])[0], "tf-keras reload")


def test_seeded_dropout_is_reproducible(mlp_path):
    x, y = digits(64)
    runs = []
    for _ in range(2):
        model = kcompile.compile(mlp_path)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=42)
        runs.append([model.train_on_batch(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)])
    assert runs[0] == runs[1]
    other = kcompile.compile(mlp_path)
    other.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=7)
    assert [other.train_on_batch(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)] != runs[0]


@pytest.mark.parametrize("layer", ["Dropout", "SpatialDropout1D", "AlphaDropout"])
def test_training_dropout_follows_keras_formulas(layer):
    """Training mode with the masks a step draws: Dropout keeps x / (1 - rate) (its mask
    holds that scale, one multiply), AlphaDropout keeps x and sets the rest to alpha',
    both then as Keras writes them."""
    from kcompile.ir import interpret
    from kcompile.training.trainer import draw_random_inputs

    K = keras3()
    rate = 0.3
    model = K.Sequential([K.Input((6, 8)), getattr(K.layers, layer)(rate)])
    graph = kcompile.load_graph(model, training=True)
    specs = graph.meta["random_inputs"]
    masks = [np.empty(v.type.concrete(32), np.float32) for v in graph.inputs[1:]]
    draw_random_inputs(specs, masks, np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(32, 6, 8)).astype(np.float32)
    (out,) = interpret(graph, [x] + masks)
    kept = np.broadcast_to(masks[0] != 0, x.shape)
    assert 0.6 < kept.mean() < 0.8
    if layer == "AlphaDropout":
        alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        expected = a * np.where(kept, x, alpha_p) - a * alpha_p * rate
    else:
        expected = np.where(kept, x / (1 - rate), 0.0)
        if layer == "SpatialDropout1D":  # one draw per sample and channel, shared over the steps
            assert masks[0].shape == (32, 1, 8)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.8, 1.0])
def test_dropout_masks_keep_the_asked_share(keep):
    from kcompile.training.trainer import bernoulli_mask

    mask = bernoulli_mask(np.random.default_rng(0), (200, 501), keep)
    assert mask.dtype == np.float32 and mask.shape == (200, 501)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert abs(mask.mean() - keep) < 0.005  # 100k draws: a standard error near 0.0015
    np.testing.assert_array_equal(mask, bernoulli_mask(np.random.default_rng(0), (200, 501), keep))
    if 0 < keep < 1:  # neighbours independent: correlation within a few standard errors of 0
        flat = mask.reshape(-1)
        assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
        assert abs(np.corrcoef(mask[:-1].reshape(-1), mask[1:].reshape(-1))[0, 1]) < 0.01


def test_dropout_masks_fill_a_given_array_in_place():
    """The training step draws its masks straight into the program's input views."""
    from kcompile.training.trainer import bernoulli_mask

    expected = bernoulli_mask(np.random.default_rng(5), (64, 100), 0.7)
    out = np.full((64, 100), 7.0, np.float32)
    assert bernoulli_mask(np.random.default_rng(5), out.shape, 0.7, out=out) is out
    np.testing.assert_array_equal(out, expected)
    strided = np.full((64, 200), 7.0, np.float32)[:, ::2]  # not contiguous: filled all the same
    bernoulli_mask(np.random.default_rng(5), strided.shape, 0.7, out=strided)
    np.testing.assert_array_equal(strided, expected)
    bernoulli_mask(np.random.default_rng(5), out.shape, 1.0, out=out)
    assert np.all(out == 1.0)


def test_dropout_masks_do_not_depend_on_the_thread_count():
    import numba

    from kcompile.codegen.numba_cpu.threads import configure_threading
    from kcompile.training.trainer import bernoulli_mask

    configure_threading()
    masks = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            masks.append(bernoulli_mask(np.random.default_rng(3), (64, 1000), 0.5))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(masks[0], masks[1])


def test_callbacks_run_in_keras_order_with_keras_log_keys(mlp_path, tmp_path):
    K = keras3()
    model = kcompile.compile(mlp_path)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    events = []

    class Recorder(K.callbacks.Callback):  # a user's own Keras callback
        def on_train_begin(self, logs=None):
            events.append(("train_begin", self.model is model))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch))

    checkpoint = str(tmp_path / "best.keras")
    x, y = digits(128)
    model.fit(x, y, batch_size=64, epochs=3, verbose=0, validation_data=(x[:32], y[:32]),
              callbacks=[Recorder(), kc_callbacks.ModelCheckpoint(checkpoint, save_best_only=True),
                         kc_callbacks.CSVLogger(str(tmp_path / "log.csv")),
                         kc_callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)])
    assert events[0] == ("train_begin", True)
    assert events[1:4] == [("batch_end", 0), ("batch_end", 1), ("epoch_end", 0, ["accuracy", "loss", "val_accuracy", "val_loss"])]
    assert os.path.exists(checkpoint) and K.models.load_model(checkpoint) is not None
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".kcompile-") or ".tmp" in f]
    assert open(tmp_path / "log.csv").read().startswith("epoch,accuracy,loss,val_accuracy,val_loss")


def test_reduce_lr_and_scheduler_change_the_optimizer(mlp_path):
    model = kcompile.compile(mlp_path)
    model.compile(optimizer={"class_name": "SGD", "config": {"learning_rate": 0.1}}, loss="sparse_categorical_crossentropy")
    x, y = digits(32)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[kc_callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert abs(model.optimizer.learning_rate - 0.1 / 3) < 1e-7


def test_terminate_on_nan_stops_and_weights_stay_finite(mlp_path):
    model = kcompile.compile(mlp_path)
    model.compile(optimizer={"class_name": "SGD", "config": {"learning_rate": 1e12}}, loss="mse")
    x, _ = digits(64)
    y = np.full((64, 10), 1e30, np.float32)
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[kc_callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) < 5 or not np.isfinite(history.history["loss"][-1])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_bad_training_input_gives_clear_errors(mlp_path):
    model = kcompile.compile(mlp_path)
    with pytest.raises(kcompile.KcompileError, match="compile"):
        model.fit(*digits(8), verbose=0)
    for bad, what in (({"optimizer": "adamm", "loss": "mse"}, "adamm"), ({"loss": "msee"}, "msee"),
                      ({"loss": "mse", "metrics": ["acurracy"]}, "acurracy")):
        with pytest.raises(Exception, match=what):
            model.compile(**bad)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = digits(16)
    with pytest.raises(kcompile.InputError, match="expects shape"):
        model.fit(x, np.zeros((16, 3)), verbose=0)
    with pytest.raises(kcompile.InputError, match="whole numbers"):
        model.fit(x, y + 0.5, verbose=0)
    with pytest.raises(kcompile.InputError, match="samples"):
        model.fit(x, y[:8], verbose=0)


def test_ctrl_c_during_fit_leaves_consistent_weights(mlp_path):
    model = kcompile.compile(mlp_path)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = digits(512)
    model.train_on_batch(x[:16], y[:16])  # compile the training step before the clock starts
    done = threading.Event()

    def interrupt(sig, frame):  # Python's own behaviour, minus presses that come too late
        if not done.is_set():
            raise KeyboardInterrupt

    def press_ctrl_c():  # like a user: again and again until fit stops
        while not done.wait(0.3):
            os.kill(os.getpid(), signal.SIGINT)

    original = signal.signal(signal.SIGINT, interrupt)
    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, epochs=1000, batch_size=16, verbose=0)
    finally:
        done.set()
        presser.join()
        signal.signal(signal.SIGINT, original)
    weights = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in weights)
    loss = model.evaluate(x, y, verbose=0)  # the model still works
    assert np.isfinite(loss)
    model.fit(x[:32], y[:32], epochs=1, verbose=0)


def test_antirectifier_custom_layer_trains_and_exports(tmp_path):
    """The seed's custom layer, traced through TensorFlow: fit on compiled kernels, then
    ONNX Runtime runs the exported model and Keras loads the saved one."""
    import onnxruntime as ort

    K = keras3()
    layer_class = zoo.antirectifier_layer_class(K)
    model = randomize(zoo.antirectifier(K, dropout=0.0, layer_class=layer_class), seed=3)
    path = str(tmp_path / "antirectifier.keras")
    model.save(path)
    compiled = kcompile.compile(path, custom_objects={"Antirectifier": layer_class})
    compiled.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = digits(128)
    history = compiled.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    onnx_path = str(tmp_path / "antirectifier.onnx")
    compiled.export_onnx(onnx_path)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x[:7]})
    assert_close(onnx_out, compiled.predict(x[:7], verbose=0), "ONNX Runtime on the trained export")
    saved = str(tmp_path / "trained.keras")
    compiled.save(saved)
    reloaded = K.models.load_model(saved, custom_objects={"Antirectifier": layer_class})
    assert_close(keras_outputs(reloaded, [x[:7]])[0], compiled.predict(x[:7], verbose=0), "Keras reload")
