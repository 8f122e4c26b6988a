"""The seed's experiments in examples/ run end to end.

Every example runs with --quick in a subprocess (on its stand-in data); its outputs are
checked: a trained model file that Keras loads and whose predictions the kcompile
artifact and ONNX Runtime reproduce, and results.json. The MNIST-shaped examples run
their defaults too and must reach 95% test accuracy on the digits stand-in. The data
loaders read small files written in Keras's cache formats."""
from __future__ import annotations

import importlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from support.keras_models import TOLERANCE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")

QUICK_ARGS = {  # extra arguments of each --quick run: every option gets exercised somewhere
    "mnist_mlp": ["--compare-keras"],
    "mnist_cnn": [],
    "antirectifier": ["--compare-keras"],
    "cifar10_cnn": ["--augment"],
    "cifar10_resnet": [],
    "pretrained_word_embeddings": [],
}
MNIST_SHAPED = ["mnist_mlp", "mnist_cnn", "antirectifier"]


def example_module(name: str):
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


def run_example(name: str, out, *args) -> tuple[str, dict]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, os.path.join(EXAMPLES, f"{name}.py"), "--out", str(out), *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=str(out.parent), env=env)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    with open(out / "results.json") as f:
        return proc.stdout, json.load(f)


def assert_close(actual, expected, what):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), err_msg=what, **TOLERANCE)


def sample_inputs(keras_model, n=7, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(keras_model.inputs[0].shape[1:])
    if "int" in str(keras_model.inputs[0].dtype):
        vocabulary = keras_model.layers[1].input_dim  # the Embedding after the Input
        return rng.integers(0, vocabulary, shape).astype("int32")
    return rng.random(shape, dtype=np.float32)


@pytest.mark.parametrize("name", list(QUICK_ARGS))
def test_quick_run_writes_models_that_keras_kcompile_and_onnx_runtime_agree_on(name, tmp_path):
    import keras
    import onnxruntime

    import kcompile

    out = tmp_path / name
    stdout, results = run_example(name, out, "--quick", *QUICK_ARGS[name])

    assert "STAND-IN DATA" in stdout and results["stand_in"] and results["quick"]
    assert results["epochs"] == 1
    trained = results["kcompile"]
    assert 0.0 <= trained["test_accuracy"] <= 1.0 and np.isfinite(trained["test_loss"])
    assert len(trained["history"]["loss"]) == 1 and trained["epoch_s"] > 0
    if "--compare-keras" in QUICK_ARGS[name]:
        assert len(results["keras"]["history"]["loss"]) == 1 and 0.0 <= results["keras"]["test_accuracy"] <= 1.0
        assert "kcompile       keras" in stdout
    assert set(results["latency_ms"]) == set(results["max_difference"])
    assert all(d < 1e-4 for d in results["max_difference"].values()), results["max_difference"]

    files = results["files"]
    custom_objects = {"Antirectifier": example_module("antirectifier").Antirectifier} if name == "antirectifier" else None
    reloaded = keras.models.load_model(files["keras"], custom_objects=custom_objects)
    initial = keras.models.load_model(str(out / "initial.keras"), custom_objects=custom_objects)
    x = sample_inputs(reloaded)
    expected = reloaded.predict(x, verbose=0)
    assert expected.shape == (len(x), reloaded.outputs[0].shape[-1])
    assert np.max(np.abs(initial.predict(x, verbose=0) - expected)) > 1e-4, "training left the weights unchanged"

    assert_close(kcompile.load(files["artifact"]).predict(x, verbose=0), expected, f"{name}: kcompile artifact")
    session = onnxruntime.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x})
    assert_close(onnx_out, expected, f"{name}: ONNX Runtime")


@pytest.mark.parametrize("name", MNIST_SHAPED)
def test_mnist_shaped_defaults_reach_95_percent_on_the_digits_stand_in(name, tmp_path):
    stdout, results = run_example(name, tmp_path / name)
    assert "STAND-IN DATA" in stdout and results["stand_in"] and not results["quick"]
    assert results["kcompile"]["test_accuracy"] >= 0.95, results["kcompile"]["test_accuracy"]


# -- the real data sets' formats (tiny files written here) ----------------------------------------
def test_mnist_loader_reads_mnist_npz(tmp_path):
    common = example_module("common")
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_train=np.arange(20) % 10,
             x_test=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), y_test=np.arange(6))
    args = common.parse_args("mnist_mlp", "", argv=["--data", str(path)])
    data = common.load_mnist(args)
    assert not data.stand_in and data.x_train.shape == (20, 28, 28) and data.x_test.shape == (6, 28, 28)
    assert common.settings(args, data, {"epochs": 20, "batch_size": 128}, {"epochs": 3, "batch_size": 32}) == (20, 128)


def test_cifar10_loader_reads_the_python_batches(tmp_path):
    common = example_module("common")
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images[name] = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": images[name], b"labels": [1, 2, 3, 4]}, f)
    data = common.load_cifar10(common.parse_args("cifar10_cnn", "", argv=["--data", str(tmp_path)]))
    assert not data.stand_in and data.x_train.shape == (20, 32, 32, 3) and data.y_test.shape == (4, 1)
    # channels last, as keras.datasets.cifar10 gives them: red plane first in the file
    np.testing.assert_array_equal(data.x_test[0, :, :, 0].reshape(-1), images["test_batch"][0, :1024])


def test_text_loader_reads_glove_and_the_newsgroups_folder(tmp_path):
    example = example_module("pretrained_word_embeddings")
    (tmp_path / "glove.6B").mkdir()
    (tmp_path / "glove.6B" / "glove.6B.100d.txt").write_text(
        "hello " + " ".join(["0.5"] * 100) + "\nworld " + " ".join(["-1"] * 100) + "\n")
    for group, text in [("alt.atheism", "Hello, world! hello"), ("sci.space", "World of space")]:
        (tmp_path / "20_newsgroup" / group).mkdir(parents=True)
        (tmp_path / "20_newsgroup" / group / "101").write_text("From: someone\nSubject: x\n\n" + text)
        (tmp_path / "20_newsgroup" / group / "README.txt").write_text("not a message")
    args = example.common.parse_args("pretrained_word_embeddings", "", example.add_arguments,
                                     argv=["--data", str(tmp_path)])
    texts, labels, labels_index, embeddings, _, stand_in = example.load_texts(args)
    assert not stand_in and labels == [0, 1] and labels_index == {"alt.atheism": 0, "sci.space": 1}
    assert "Subject" not in texts[0] and embeddings["world"].shape == (100,)
    tokenizer = example.text_data.Tokenizer(num_words=3)
    tokenizer.fit_on_texts(texts)
    assert tokenizer.word_index == {"hello": 1, "world": 2, "of": 3, "space": 4}  # by count, ties in order
    assert tokenizer.texts_to_sequences(["space hello world"]) == [[1, 2]]  # indices below num_words
