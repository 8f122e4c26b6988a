"""Artifacts (kcompile MODEL -o OUT, CompiledModel.save, kcompile.load) and the CLI."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import kcompile
from kcompile import zoo
from support.keras_models import assert_close, keras3, keras_outputs, randomize
from support.no_tensorflow import run_without_tensorflow


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn")
    model = randomize(zoo.mnist_cnn(keras3()))
    path = str(folder / "cnn.keras")
    model.save(path)
    x = np.random.default_rng(0).normal(size=(5, 28, 28, 1)).astype(np.float32)
    return model, path, x, folder


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "kcompile.cli", *args], capture_output=True, text=True, **kw)


def test_cli_builds_an_artifact_that_loads_without_tensorflow_or_recompiling(cnn):
    model, path, x, folder = cnn
    out = str(folder / "cnn.kc")
    result = cli(path, "-o", out)
    assert result.returncode == 0, result.stderr
    assert os.path.exists(os.path.join(out, "kernels.py")) and os.path.exists(os.path.join(out, "meta.json"))
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", keras_outputs(model, [x])[0])
    moved = str(folder / "moved.kc")
    shutil.copytree(out, moved)  # a copy gets new timestamps; loading must still hit the cache
    result = run_without_tensorflow(
        """
        import sys, numpy as np, kcompile
        model = kcompile.load(sys.argv[1] if len(sys.argv) > 1 else "moved.kc")
        y = model.predict(np.load("x.npy"), verbose=0)
        expected = np.load("y.npy")
        assert np.all(np.abs(y - expected) <= 1e-5 + 1e-4 * np.abs(expected))
        assert model.program.compiled_now() == [], model.program.compiled_now()
        assert "tensorflow" not in sys.modules
        print("ok")
        """,
        cwd=folder,
    )
    assert result.stdout.strip() == "ok"


def test_save_and_load_round_trip(cnn, tmp_path):
    model, path, x, _ = cnn
    compiled = kcompile.compile(path)
    compiled.save(str(tmp_path / "a.kc"))
    loaded = kcompile.load(str(tmp_path / "a.kc"))
    assert_close(loaded.predict(x, verbose=0), keras_outputs(model, [x])[0], "loaded artifact")
    with pytest.raises(kcompile.KcompileError, match="not a kcompile artifact"):
        kcompile.load(str(tmp_path))


def test_cli_inspect_source_and_bench(cnn):
    _, path, _, folder = cnn
    result = cli("inspect", path, "--source")
    assert result.returncode == 0, result.stderr
    assert "def bind(batch, arena, W, WI, WL, X)" in result.stdout
    # The convolution's step: C.conv, or the implicit GEMM on weights packed at bind time,
    # whichever this machine's tuning measured faster for the shape.
    assert "C.conv" in result.stdout or "I.conv_packed" in result.stdout
    result = cli("bench", path, "--batch", "1,4", "--seconds", "0.1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["1"] for line in lines) and any(line.split()[:1] == ["4"] for line in lines)
    assert "samples/s" in result.stdout


def test_cli_export_onnx(cnn):
    _, path, x, folder = cnn
    out = str(folder / "cnn.onnx")
    result = cli("export", path, "--onnx", out)
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(out) > 0 and "opset" in result.stdout


def test_cli_build_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("nope")
    result = cli(str(bad), "-o", str(tmp_path / "out.kc"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "out.kc"), "no half-written output"
