"""Tensors whose batch axis is not the first, the depthwise kernel, and the functions behind
`kcompile MODEL --target native` and `kcompile run LIB --input x.npy -o y.npy`."""
import numpy as np
import pytest

from kcompile import InputError
from kcompile.codegen.native import NativeLibrary, build_library, run_library
from kcompile.codegen.native.cli import build_file, default_library_name, run_files
from kcompile.ir import GraphBuilder, interpret
from support.keras_models import assert_close, keras3, keras_outputs, randomize


def test_batch_axis_in_the_middle(native_tmp):
    b = GraphBuilder("middle")
    x = b.input("x", (None, 6, 5))
    t = b.transpose(x, perm=(1, 0, 2))  # (6, batch, 5)
    sliced = b.slice(t, axes=(0, 2), starts=(1, 1), stops=(5, 4), steps=(2, 1))  # offset: batch-sized + fixed
    padded = b.pad(t, pads=((1, 0), (0, 0), (0, 2)), value=0.5)
    joined = b.concat(t, t, axis=2)
    summed = b.reduce_sum(t, axes=(0,), keepdims=False)
    soft = b.softmax(t, axis=0)
    b.output([sliced, padded, joined, summed, soft])
    graph = b.graph
    library = str(native_tmp / "libmiddle.so")
    build_library(graph, library, optimize=False)
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        x_ = rng.normal(size=(batch, 6, 5)).astype(np.float32)
        for got, expected in zip(run_library(library, [x_]), interpret(graph, [x_])):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_build_and_run_files(tmp_path):
    K = keras3()
    model = randomize(K.Sequential([K.Input((6,)), K.layers.Dense(5, activation="tanh"),
                                    K.layers.Dense(3, activation="softmax")]), seed=1)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    assert default_library_name(path) == "libtiny.so"
    build = build_file(path, str(tmp_path / "libtiny.so"))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    summary = run_files(build.library, [str(tmp_path / "x.npy")], [str(tmp_path / "y.npy")], threads=1)
    assert "[4, 3]" in summary and "y.npy" in summary
    (expected,) = keras_outputs(model, [x])
    assert_close(np.load(tmp_path / "y.npy"), expected, "kcompile run")
    with NativeLibrary(build.library) as lib:
        name = lib.inputs[0].name
    run_files(build.library, [f"{name}={tmp_path / 'x.npy'}"], [str(tmp_path / "all.npz")])
    with np.load(tmp_path / "all.npz") as data:
        assert_close(data[data.files[0]], expected, "kcompile run (npz)")
    np.savez(tmp_path / "inputs.npz", **{name: x})  # all inputs by name in one file
    run_files(build.library, [str(tmp_path / "inputs.npz")], [str(tmp_path / "y2.npy")])
    assert_close(np.load(tmp_path / "y2.npy"), expected, "kcompile run (inputs from npz)")
    with pytest.raises(InputError, match="expects shape"):
        np.save(tmp_path / "bad.npy", x[:, :5])
        run_files(build.library, [str(tmp_path / "bad.npy")])
    with pytest.raises(InputError, match="unknown inputs"):
        run_files(build.library, [f"nope={tmp_path / 'x.npy'}"])


def test_depthwise_convolution_has_its_own_kernel(native_tmp):
    from kcompile.codegen.native.build import generate, host_isa
    from kcompile.passes import run_pipeline

    rng = np.random.default_rng(0)
    b = GraphBuilder("depthwise")
    x = b.input("x", (None, 9, 9, 20))
    w = b.param(rng.normal(size=(3, 3, 1, 20)).astype(np.float32), "w")
    y = b.clip(b.add(b.conv(x, w, strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)), groups=20),
                     b.param(rng.normal(size=20).astype(np.float32), "b")), low=0.0, high=6.0)
    w2 = b.param(rng.normal(size=(3, 3, 1, 20)).astype(np.float32), "w2")
    z = b.add(b.conv(y, w2, strides=(2, 2), dilations=(1, 1), pads=((0, 1), (0, 1)), groups=20),
              b.param(rng.normal(size=(1, 1, 20)).astype(np.float32), "shift"))
    b.output([z])
    graph = run_pipeline(b.graph)
    labels = [s.label for s in generate(graph, host_isa()).steps]
    assert sum("depthwise" in label for label in labels) == 2, labels
    library = str(native_tmp / "libdepthwise.so")
    build_library(graph, library, optimize=False)
    x_ = rng.normal(size=(3, 9, 9, 20)).astype(np.float32)
    (got,) = run_library(library, [x_])
    np.testing.assert_allclose(got, interpret(graph, [x_])[0], rtol=1e-5, atol=1e-5)


def test_command_line_builds_and_runs_a_library(tmp_path, capsys):
    from kcompile.cli import main

    K = keras3()
    model = randomize(K.Sequential([K.Input((6,)), K.layers.Dense(3, activation="relu")]), seed=2)
    path = str(tmp_path / "cli.keras")
    model.save(path)
    library = str(tmp_path / "libcli.so")
    assert main([path, "--target", "native", "-o", library]) == 0
    assert "libcli.so" in capsys.readouterr().out and (tmp_path / "cli.h").exists()
    x = np.random.default_rng(3).normal(size=(5, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", library, "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"),
                 "--threads", "1"]) == 0
    (expected,) = keras_outputs(model, [x])
    assert_close(np.load(tmp_path / "y.npy"), expected, "kcompile run")

    np.save(tmp_path / "bad.npy", x[:, :4])
    assert main(["run", library, "--input", str(tmp_path / "bad.npy"), "-o", str(tmp_path / "z.npy")]) == 2
    err = capsys.readouterr().err
    assert "expects shape" in err and "Traceback" not in err and not (tmp_path / "z.npy").exists()
    assert main(["run", str(tmp_path / "missing.so"), "--input", str(tmp_path / "x.npy")]) == 2
    assert "missing.so" in capsys.readouterr().err

    assert main(["bench", path, "--target", "native", "--batch", "1,3", "--seconds", "0.05"]) == 0
    assert "(native)" in capsys.readouterr().out
