"""The six seed models load and match Keras (antirectifier fails with a clear error
until its custom layer is registered)."""
import numpy as np
import pytest

import kcompile
from kcompile import zoo
from kcompile.ir import interpret
from support.keras_models import assert_close, keras3, keras_outputs, randomize, save_all, tf_keras

SEEDS = {
    "mnist_mlp": zoo.mnist_mlp,
    "mnist_cnn": zoo.mnist_cnn,
    "cifar10_cnn": zoo.cifar10_cnn,
    "resnet20_v1": zoo.cifar10_resnet_v1,
    "resnet29_v2": zoo.cifar10_resnet_v2,
    "pretrained_word_embeddings": zoo.pretrained_word_embeddings,
}


def seed_inputs(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return [rng.integers(0, 20000, shape).astype(np.int32)]
    return [rng.normal(0, 1, shape).astype(np.float32)]


@pytest.mark.parametrize("legacy", [False, True], ids=["keras3", "tf_keras"])
@pytest.mark.parametrize("name", list(SEEDS))
def test_seed_model_matches_keras(name, legacy, tmp_path):
    if legacy and name == "resnet29_v2":
        pytest.skip("one Keras flavour is enough for the second ResNet variant")
    K = tf_keras() if legacy else keras3()
    model = randomize(SEEDS[name](K), seed=3)
    for fmt, path in save_all(model, str(tmp_path), name, legacy=legacy).items():
        graph = kcompile.load_graph(path)
        for batch in (1, 7):
            inputs = seed_inputs(model, batch, seed=batch)
            (expected,) = keras_outputs(model, inputs)
            (got,) = interpret(graph, inputs)
            assert_close(got, expected, f"{name} [{fmt}] batch {batch}")


def test_antirectifier_fails_with_a_clear_error(tmp_path):
    model = randomize(zoo.antirectifier(keras3()))
    path = str(tmp_path / "antirectifier.keras")
    model.save(path)
    with pytest.raises(kcompile.UnsupportedLayerError) as info:
        kcompile.load_graph(path)
    message = str(info.value)
    assert "Antirectifier" in message and "antirectifier" in message and "register_layer" in message
