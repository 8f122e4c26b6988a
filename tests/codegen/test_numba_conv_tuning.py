"""The Numba CPU backend's convolution algorithms (im2col + GEMM, direct accumulation)
each match the interpreter, and the choice between them is measured once per shape and
then read back from the cache (tuning.py)."""
import json

import numpy as np
import pytest

from kcompile.codegen.numba_cpu import lowerings, tuning
from kcompile.codegen.numba_cpu.compiler import compile_graph
from kcompile.codegen.numba_cpu.kernels import conv as C
from kcompile.ir import GraphBuilder, interpret

CASES = {  # name: (input (H, W, C), kernel (KH, KW, C, F), strides, dilations, pads)
    "3x3 valid": ((9, 8, 2), (3, 3, 2, 5), (1, 1), (1, 1), ((0, 0), (0, 0))),
    "3x3 same, strided": ((9, 8, 3), (3, 3, 3, 4), (2, 2), (1, 1), ((1, 1), (1, 1))),
    "dilated, uneven pads": ((10, 9, 1), (3, 2, 1, 6), (1, 2), (2, 1), ((2, 0), (0, 1))),
}


def conv_graph(case):
    (h, w, c), kernel, strides, dilations, pads = CASES[case]
    b = GraphBuilder("conv_case")
    x = b.input("x", (None, h, w, c))
    weights = np.random.default_rng(0).normal(size=kernel).astype(np.float32)
    y = b.conv(x, b.param(weights, "w"), strides=strides, dilations=dilations, pads=pads, groups=1)
    b.output([b.relu(y)])
    return b.graph


@pytest.mark.parametrize("method", [C.IM2COL, C.DIRECT], ids=["im2col", "direct"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_algorithm_matches_the_interpreter(case, method, monkeypatch):
    monkeypatch.setattr(lowerings, "conv_method", lambda *shapes: method)
    graph = conv_graph(case)
    program = compile_graph(graph)
    assert f", 1, {method}, " in program.source  # groups, then the algorithm
    x = np.random.default_rng(1).normal(size=(3,) + graph.inputs[0].shape[1:]).astype(np.float32)
    for batch in (1, 3):
        (got,) = program([x[:batch]], batch)
        (expected,) = interpret(graph, [x[:batch]])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"{case}, batch {batch}")


def test_choice_is_measured_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KCOMPILE_CACHE", str(tmp_path))
    monkeypatch.setattr(tuning, "_choices", None)
    shapes = ((None, 1, 12, 12, 2), (18, 8), (None, 1, 10, 10, 8), (1, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0))
    measured = []
    real = tuning._best_seconds

    def counting(fn):
        measured.append(fn)
        return real(fn)

    monkeypatch.setattr(tuning, "_best_seconds", counting)
    method = tuning.conv_method(*shapes, 1)
    assert method in (C.IM2COL, C.DIRECT) and len(measured) == 2  # both algorithms timed
    with open(tmp_path / "tuning.json") as f:
        assert list(json.load(f).values()) == [method]

    monkeypatch.setattr(tuning, "_choices", None)  # a new process: only the file remains
    assert tuning.conv_method(*shapes, 1) == method and len(measured) == 2
    # Grouped convolutions and large windows are not measured: im2col.
    assert tuning.conv_method(shapes[0], (18, 8), shapes[2], shapes[3], 2) == C.IM2COL
    assert tuning.conv_method(shapes[0], (tuning.MEASURE_MAX_K + 1, 8), shapes[2], shapes[3], 1) == C.IM2COL
    # KCOMPILE_TUNE=0: no timing, im2col, even for a shape never seen.
    monkeypatch.setenv("KCOMPILE_TUNE", "0")
    assert tuning.conv_method(shapes[0], (27, 8), shapes[2], shapes[3], 1) == C.IM2COL
    assert len(measured) == 2
