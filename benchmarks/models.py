"""The benchmarked models: the six seed models and ResNet50, with random weights."""
from __future__ import annotations

import numpy as np

MODELS = ["mnist_mlp", "mnist_cnn", "cifar10_cnn", "cifar10_resnet", "pretrained_word_embeddings", "antirectifier",
          "resnet50"]


def _randomize(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        leaf = (getattr(w, "path", None) or w.name).split("/")[-1]
        if leaf in ("moving_variance", "gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) <= 1:
            value = rng.normal(0, 0.1, shape)
        else:
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / max(int(np.prod(shape[:-1])), 1))
        w.assign(value.astype(np.float32))
    return model


def build_model(name: str):
    """(keras model, custom_objects for kcompile)."""
    import keras

    from kcompile import zoo

    custom = None
    if name == "resnet50":
        model = keras.applications.ResNet50(weights=None)
    elif name == "antirectifier":
        layer_class = zoo.antirectifier_layer_class(keras)
        model = zoo.antirectifier(keras, layer_class=layer_class)
        custom = {"Antirectifier": layer_class}
    else:
        model = zoo.SEED_MODELS[name](keras)
    return _randomize(model), custom


def model_inputs(model, batch: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    arrays = []
    for t in model.inputs:
        shape = (batch,) + tuple(t.shape[1:])
        if "int" in str(t.dtype):
            arrays.append(rng.integers(0, 20000, shape).astype(np.int32))
        else:
            arrays.append(rng.random(shape).astype(np.float32))
    return arrays
