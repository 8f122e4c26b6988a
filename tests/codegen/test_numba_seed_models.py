"""The seed models and Keras Applications compile and match Keras, with every pass on
and with each pass switched off (so a wrong rewrite shows)."""
import numpy as np
import pytest

import kcompile
from kcompile import zoo
from kcompile.passes import PASSES
from support.keras_models import assert_close, keras3, keras_outputs, randomize

SEEDS = {
    "mnist_mlp": lambda K: zoo.mnist_mlp(K),
    "mnist_cnn": lambda K: zoo.mnist_cnn(K),
    "cifar10_cnn": lambda K: zoo.cifar10_cnn(K),
    "resnet20_v1": lambda K: zoo.cifar10_resnet_v1(K),
    "resnet29_v2": lambda K: zoo.cifar10_resnet_v2(K),
    "text_cnn": lambda K: zoo.pretrained_word_embeddings(K, num_words=500, sequence_length=200),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    result = {}
    for name, build in SEEDS.items():
        model = randomize(build(keras3()), seed=5)
        path = str(folder / f"{name}.keras")
        model.save(path)
        result[name] = (model, path)
    return result


def inputs_for(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    t = model.inputs[0]
    shape = (batch,) + tuple(t.shape[1:])
    if "int" in str(t.dtype):
        return rng.integers(0, 500, shape).astype(np.int32)
    return rng.normal(size=shape).astype(np.float32)


def check(model, compiled, what):
    for batch in (1, 7):
        x = inputs_for(model, batch, seed=batch)
        assert_close(compiled(x), keras_outputs(model, [x])[0], f"{what} batch {batch}")


@pytest.mark.parametrize("name", list(SEEDS))
def test_seed_model_compiles_and_matches(saved, name):
    model, path = saved[name]
    check(model, kcompile.compile(path), name)


@pytest.mark.parametrize("disabled", sorted(PASSES))
def test_seed_models_with_one_pass_off(saved, disabled):
    for name in ("mnist_cnn", "resnet20_v1", "text_cnn"):
        model, path = saved[name]
        check(model, kcompile.compile(path, disable_passes={disabled}), f"{name} without {disabled}")


APPLICATIONS = {
    "Xception": (71, 71), "VGG16": (32, 32), "VGG19": (32, 32), "ResNet50": (32, 32), "InceptionV3": (75, 75),
}


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_keras_applications(name, tmp_path):
    """Each architecture without its classifier head, at a small input size (the head
    adds only Dense layers; the full-size models are in the benchmark)."""
    K = keras3()
    size = APPLICATIONS[name]
    model = randomize(getattr(K.applications, name)(weights=None, include_top=False, pooling="avg",
                                                      input_shape=size + (3,)), seed=1)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    compiled = kcompile.compile(path)
    x = np.random.default_rng(0).normal(size=(2,) + size + (3,)).astype(np.float32)
    assert_close(compiled(x), keras_outputs(model, [x])[0], name)
