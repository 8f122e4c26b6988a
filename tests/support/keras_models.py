"""Building Keras models with random weights, saving them in every format, and
comparing kcompile against Keras. Imported only by tests (it imports TensorFlow)."""
from __future__ import annotations

import os

import numpy as np

TOLERANCE = dict(atol=1e-5, rtol=1e-4)  # DESIGN.md: |y - y_keras| <= 1e-5 + 1e-4 |y_keras|


def keras3():
    import keras

    return keras


def tf_keras():
    import tf_keras

    return tf_keras


def _weight_name(w) -> str:
    return getattr(w, "path", None) or w.name


def randomize(model, seed: int = 0):
    """Random weights with unit-variance-preserving scales; BatchNorm statistics non-trivial."""
    rng = np.random.default_rng(seed)
    # Adapted preprocessing layers keep derived tensors: leave their weights as adapted.
    skip = {id(w) for layer in _all_layers(model) if type(layer).__name__ == "Normalization" for w in layer.weights}
    for w in model.weights:
        if id(w) in skip:
            continue
        name = _weight_name(w)
        shape = tuple(w.shape)
        leaf = name.split("/")[-1].split(":")[0]
        if "int" in str(w.dtype):
            continue
        if leaf in ("moving_variance", "variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("gamma",):
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("moving_mean", "mean", "beta", "bias") or len(shape) <= 1:
            value = rng.normal(0, 0.2, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            bound = np.sqrt(3.0 / max(fan_in, 1))
            value = rng.uniform(-bound, bound, shape)
        w.assign(value.astype(np.float32))
    return model


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def random_inputs(model, batch: int, seed: int = 1, int_high: int | None = None):
    rng = np.random.default_rng(seed)
    arrays = []
    for t in model.inputs:
        shape = (batch,) + tuple(t.shape[1:])
        dtype = str(t.dtype.name if hasattr(t.dtype, "name") else t.dtype)
        if "int" in dtype:
            arrays.append(rng.integers(0, int_high or 10, shape).astype(dtype))
        else:
            arrays.append(rng.normal(0, 1, shape).astype(np.float32))
    return arrays


def keras_outputs(model, inputs) -> list:
    out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    if isinstance(out, dict):
        out = [out[k] for k in model.output_names]
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(o) for o in out]


def save_all(model, folder, name: str, legacy: bool = False) -> dict:
    """Save in every format this Keras writes: {format: path}."""
    paths = {}
    if legacy:
        paths["tf_keras.h5"] = os.path.join(folder, f"{name}.tfk.h5")
        model.save(paths["tf_keras.h5"])
        return paths
    paths["keras"] = os.path.join(folder, f"{name}.keras")
    model.save(paths["keras"])
    paths["h5"] = os.path.join(folder, f"{name}.h5")
    model.save(paths["h5"])
    return paths


def assert_close(actual, expected, what: str = ""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != Keras {expected.shape}"
    err = np.abs(actual - expected) - (TOLERANCE["atol"] + TOLERANCE["rtol"] * np.abs(expected))
    worst = float(err.max()) if err.size else 0.0
    assert worst <= 0, (
        f"{what}: max |diff| {float(np.abs(actual - expected).max()):.3g} exceeds tolerance "
        f"(Keras max |y| {float(np.abs(expected).max()):.3g})"
    )


def build_case(case, K, k3: bool, form: str):
    """A Keras model for a layer case: form is "sequential" or "functional"."""
    L = K.layers
    dtypes = case.dtypes or ["float32"] * len(case.shapes)
    if form == "sequential":
        return K.Sequential([K.Input(case.shapes[0], dtype=dtypes[0])] + case.chain(L, k3))
    inputs = [K.Input(s, dtype=d, name=f"in{i}") for i, (s, d) in enumerate(zip(case.shapes, dtypes))]
    if case.chain is not None:
        x = inputs[0]
        for layer in case.chain(L, k3):
            x = layer(x)
        outputs = x
    else:
        outputs = case.graph(L, k3, inputs)
    if isinstance(outputs, tuple):
        outputs = list(outputs)
    return K.Model(inputs, outputs)


def case_inputs(case, model, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    if case.inputs is not None:
        return case.inputs(batch, rng)
    return random_inputs(model, batch, seed)


def case_models(case, folder):
    """Yield (description, keras model, {format: path}) for every form and Keras flavour."""
    forms = ["sequential", "functional"] if case.chain is not None else ["functional"]
    flavours = []
    if case.keras3:
        flavours.append((keras3(), True))
    if case.tf_keras:
        flavours.append((tf_keras(), False))
    for K, k3 in flavours:
        for form in forms:
            model = randomize(build_case(case, K, k3, form), seed=len(case.name))
            name = f"{case.name}-{form}-{'k3' if k3 else 'tfk'}"
            yield name, model, save_all(model, str(folder), name, legacy=not k3)


def check_against_keras(case, folder, run, batches=(1, 7)):
    """For every saved form of the case: run(path) -> callable(inputs) -> outputs matches Keras."""
    checked = 0
    for name, model, paths in case_models(case, folder):
        for fmt, path in paths.items():
            predict = run(path)
            for batch in batches:
                inputs = case_inputs(case, model, batch, seed=batch)
                expected = keras_outputs(model, inputs)
                got = predict(inputs)
                assert len(got) == len(expected), f"{name} [{fmt}]: {len(got)} outputs, Keras has {len(expected)}"
                for i, (g, e) in enumerate(zip(got, expected)):
                    assert_close(g, e, f"{name} [{fmt}] batch {batch} output {i}")
                checked += 1
    assert checked, "nothing was checked"
