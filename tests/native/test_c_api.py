"""The C API: bad input gives error codes and messages (checked by a C program linked
against the library through its generated header), shapes and names are reported,
integer inputs are checked, and large batches run in slices with the same results."""
import os
import subprocess

import numpy as np
import pytest

from kcompile import InputError
from kcompile.codegen.native import NativeLibrary, build_library, run_library
from kcompile.codegen.native.build import compiler
from kcompile.ir import GraphBuilder, interpret

HERE = os.path.dirname(os.path.abspath(__file__))


def small_graph():
    """x (batch, 5) -> relu(x @ W + b); tokens (batch, 3) -> rows of a 10-row table."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("small")
    x = b.input("x", (None, 5))
    tokens = b.input("tokens", (None, 3), "int32")
    dense = b.relu(b.add(b.matmul(x, b.param(rng.normal(size=(5, 7)).astype(np.float32), "w")),
                         b.param(rng.normal(size=7).astype(np.float32), "b")))
    rows = b.gather(b.param(rng.normal(size=(10, 4)).astype(np.float32), "table"), tokens)
    b.output([dense, rows], ["dense", "rows"])
    return b.graph


@pytest.fixture(scope="module")
def small_library(native_tmp):
    folder = native_tmp / "small"
    folder.mkdir()
    graph = small_graph()
    build = build_library(graph, str(folder / "libsmall.so"))
    return graph, build


def test_bad_input_to_the_c_api_returns_error_codes(small_library, tmp_path):
    _, build = small_library
    folder = os.path.dirname(build.library)
    exe = str(tmp_path / "c_api_checks")
    subprocess.run([compiler(), "-O1", "-Wall", "-Werror", f'-DMODEL_HEADER="{build.header}"', "-o", exe,
                    os.path.join(HERE, "c_api_checks.c"), f"-L{folder}", "-lsmall", f"-Wl,-rpath,{folder}"],
                   check=True, capture_output=True, text=True)
    result = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_names_shapes_and_dtypes(small_library):
    _, build = small_library
    with NativeLibrary(build.library) as lib:
        assert [(s.name, s.shape, np.dtype(s.dtype).name) for s in lib.inputs] == [
            ("x", (None, 5), "float32"), ("tokens", (None, 3), "int32")]
        assert [(s.name, s.shape) for s in lib.outputs] == [("dense", (None, 7)), ("rows", (None, 3, 4))]
        assert lib.has_batch and lib.name == "small"
    header = open(build.header).read()
    assert "kc_model_run" in header and "tokens: int32 [batch, 3]" in header


def test_python_runner_checks_inputs(small_library):
    graph, build = small_library
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    tokens = rng.integers(0, 10, (4, 3)).astype(np.int32)
    got = run_library(build.library, {"x": x, "tokens": tokens})
    for g, e in zip(got, interpret(graph, [x, tokens])):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    with NativeLibrary(build.library) as lib:
        with pytest.raises(InputError, match="expects shape"):
            lib([x[:, :4], tokens])
        with pytest.raises(InputError, match="takes 2 inputs"):
            lib([x])
        with pytest.raises(InputError, match="KC_ERROR_INPUT_VALUE"):
            lib([x, np.full((4, 3), 10, np.int32)])
        again = lib([x, tokens])  # the handle still works
        np.testing.assert_array_equal(again[0], got[0])


def test_large_batches_run_in_slices(small_library, run_c, tmp_path):
    graph, build = small_library
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 5)).astype(np.float32)
    tokens = rng.integers(0, 10, (10, 3)).astype(np.int32)
    expected = interpret(graph, [x, tokens])
    for slice_size in ("3", "0"):
        got = run_c(build.library, [x, tokens], [e.shape for e in expected], env={"KC_MICROBATCH": slice_size},
                    folder=str(tmp_path))
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6, err_msg=f"slices of {slice_size}")
