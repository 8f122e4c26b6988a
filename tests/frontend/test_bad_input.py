"""Bad model files give kcompile errors that name the problem; the CLI exits 2 with
one line and no traceback."""
import json
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import kcompile
from support.keras_models import keras3, randomize


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    K = keras3()
    model = randomize(K.Sequential([K.Input((4,)), K.layers.Dense(3, name="dense_a"), K.layers.Dense(2, name="dense_b")]))
    paths = {"keras": str(folder / "m.keras"), "h5": str(folder / "m.h5")}
    model.save(paths["keras"])
    model.save(paths["h5"])
    return paths


def cli(*args):
    return subprocess.run([sys.executable, "-m", "kcompile.cli", *args], capture_output=True, text=True)


def expect_error(path, error, *words):
    with pytest.raises(error) as info:
        kcompile.load_graph(path)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
    result = cli("inspect", path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("kcompile: error:") and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_truncated_file(good_files, tmp_path, fmt):
    data = open(good_files[fmt], "rb").read()
    path = str(tmp_path / f"truncated.{fmt}")
    open(path, "wb").write(data[: len(data) // 2])
    expect_error(path, kcompile.ModelFileError, path)


def test_hdf5_that_is_not_a_model(tmp_path):
    path = str(tmp_path / "data.h5")
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    expect_error(path, kcompile.ModelFileError, "model_config", path)


def test_not_a_model_at_all(tmp_path):
    path = str(tmp_path / "notes.h5")
    open(path, "w").write("hello")
    expect_error(path, kcompile.ModelFileError, "not a Keras model file")


@pytest.mark.parametrize("member", ["config.json", "model.weights.h5"])
def test_keras_zip_missing_member(good_files, tmp_path, member):
    path = str(tmp_path / "missing.keras")
    with zipfile.ZipFile(good_files["keras"]) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            if name != member:
                dst.writestr(name, src.read(name))
    expect_error(path, kcompile.ModelFileError, member)


def test_weights_that_do_not_match_the_config(good_files, tmp_path):
    path = str(tmp_path / "mismatch.keras")
    with zipfile.ZipFile(good_files["keras"]) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["config"]["units"] = 5
                data = json.dumps(config)
            dst.writestr(name, data)
    expect_error(path, kcompile.LayerConfigError, "dense_a", "(4, 3)", "(4, 5)")


def test_h5_missing_weight(good_files, tmp_path):
    path = str(tmp_path / "missing_weight.h5")
    data = open(good_files["h5"], "rb").read()
    open(path, "wb").write(data)
    with h5py.File(path, "a") as f:
        group = f["model_weights/dense_b"]
        name = [n for n in group.attrs["weight_names"]][0]
        name = name.decode() if isinstance(name, bytes) else name
        del group[name]
    expect_error(path, kcompile.ModelFileError, "dense_b")


def test_unsupported_dtype_policy(tmp_path):
    K = keras3()
    model = K.Sequential([K.Input((4,)), K.layers.Dense(3, dtype="mixed_float16", name="half")])
    path = str(tmp_path / "half.keras")
    model.save(path)
    expect_error(path, kcompile.LayerConfigError, "half", "mixed_float16")


def test_cli_inspect_prints_the_layer_table(good_files):
    result = cli("inspect", good_files["keras"], "--ir")
    assert result.returncode == 0, result.stderr
    assert "dense_a" in result.stdout and "matmul, add" in result.stdout and "Total params: 23" in result.stdout
    assert "graph " in result.stdout and "return" in result.stdout
