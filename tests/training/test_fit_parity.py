"""Training parity with Keras: from identical weights on the same batches (no shuffle,
Dropout rate 0), kcompile's per-step loss follows Keras's fit within 1e-4 relative over
20 steps, and BatchNormalization's moving statistics follow too."""
import numpy as np
import pytest

import kcompile
from kcompile import zoo
from support.keras_models import keras3, randomize

MODELS = {
    "mnist_mlp": lambda K: zoo.mnist_mlp(K, dropout=0.0),
    "mnist_cnn": lambda K: zoo.mnist_cnn(K, dropout=0.0),
    "resnet20": lambda K: zoo.cifar10_resnet_v1(K),
}
OPTIMIZERS = {
    "sgd": {"class_name": "SGD", "config": {"learning_rate": 0.05, "momentum": 0.9}},
    "adam": {"class_name": "Adam", "config": {"learning_rate": 1e-3}},
    "rmsprop": {"class_name": "RMSprop", "config": {"learning_rate": 1e-3}},
}
STEPS, BATCH = 20, 16


def batches(model, seed=0):
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    for _ in range(STEPS):
        yield rng.normal(size=(BATCH,) + shape).astype(np.float32), rng.integers(0, 10, BATCH)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    paths = {}
    for name, build in MODELS.items():
        model = randomize(build(keras3()), seed=11)
        paths[name] = str(folder / f"{name}.keras")
        model.save(paths[name])
    return paths


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("name", list(MODELS))
def test_per_step_loss_follows_keras(saved, name, optimizer):
    K = keras3()
    reference = K.models.load_model(saved[name])
    reference.compile(optimizer=K.optimizers.deserialize(OPTIMIZERS[optimizer]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    compiled = kcompile.compile(saved[name])
    compiled.compile(optimizer=OPTIMIZERS[optimizer], loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for step, (x, y) in enumerate(batches(reference)):
        expected = reference.train_on_batch(x, y, return_dict=True)
        got = compiled.train_on_batch(x, y, return_dict=True)
        assert abs(got["loss"] - expected["loss"]) <= 1e-4 * abs(expected["loss"]), (step, got, expected)
        assert abs(got["accuracy"] - expected["accuracy"]) < 1e-6, (step, got, expected)
    for ours, theirs, variable in zip(compiled.get_weights(), reference.get_weights(), reference.weights):
        scale = np.abs(theirs).max() + 1e-6
        assert np.abs(ours - theirs).max() <= 1e-3 * scale, f"{variable.path} after {STEPS} steps"
