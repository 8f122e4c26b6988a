"""The Numba CPU backend's convolution algorithms (im2col + GEMM, direct accumulation,
one GEMM per tap, implicit GEMM) and kernel-gradient algorithms (im2col, taps, implicit
GEMM) each match the interpreter, and the choice between them is measured once per
shape and then read back from the cache (tuning.py)."""
import json

import numpy as np
import pytest

from kcompile.codegen.numba_cpu import lowerings, tuning
from kcompile.codegen.numba_cpu.compiler import compile_graph
from kcompile.codegen.numba_cpu.kernels import conv as C
from kcompile.codegen.numba_cpu.kernels import winograd
from kcompile.codegen.numba_cpu.kernels.igemm import W as VECTOR_WIDTH
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


@pytest.mark.parametrize("method", [C.IM2COL, C.DIRECT, C.TAPS, C.IGEMM], ids=["im2col", "direct", "taps", "igemm"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_algorithm_matches_the_interpreter(case, method, monkeypatch):
    """(TAPS falls back to im2col at strides above 1.)"""
    monkeypatch.setattr(lowerings, "conv_method", lambda *shapes: method)
    graph = conv_graph(case)
    program = compile_graph(graph)
    if method == C.IGEMM:  # constant weights: packed once, when the program is bound
        assert "I.pack(" in program.source and "I.conv_packed" in program.source
    else:
        assert f", 1, {method}, " in program.source  # groups, then the algorithm
    x = np.random.default_rng(1).normal(size=(3,) + graph.inputs[0].shape[1:]).astype(np.float32)
    for batch in (1, 3):
        (got,) = program([x[:batch]], batch)
        (expected,) = interpret(graph, [x[:batch]])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"{case}, batch {batch}")


@pytest.mark.parametrize("method", [C.IM2COL, C.TAPS, C.IGEMM], ids=["im2col", "taps", "igemm"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_kernel_gradient_algorithm_matches_the_interpreter(case, method, monkeypatch):
    monkeypatch.setattr(lowerings, "weight_grad_method", lambda *shapes: method)
    (h, w, c), kernel, strides, dilations, pads = CASES[case]
    b = GraphBuilder("conv_weight_grad_case")
    x = b.input("x", (None, h, w, c))
    probe = conv_graph(case).nodes[0].output  # the convolution's output type
    g = b.input("g", probe.shape)
    b.output([b.conv_weight_grad(x, g, window=kernel[:2], strides=strides, dilations=dilations, pads=pads)])
    graph = b.graph
    program = compile_graph(graph)
    assert f", {method})" in program.source
    rng = np.random.default_rng(2)
    for batch in (1, 3):
        inputs = [rng.normal(size=(batch,) + v.shape[1:]).astype(np.float32) for v in graph.inputs]
        (got,) = program(inputs, batch)
        (expected,) = interpret(graph, inputs)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=f"{case}, batch {batch}")


def test_choice_is_measured_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KCOMPILE_CACHE", str(tmp_path))
    monkeypatch.setattr(tuning, "_choices", None)
    shapes = ((None, 1, 12, 12, 2), (18, 8), (None, 1, 10, 10, 8), (1, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0))
    measured = []
    real = tuning._seconds

    def counting(fn):
        if fn not in measured:  # each candidate is timed over several rounds
            measured.append(fn)
        return real(fn)

    monkeypatch.setattr(tuning, "_seconds", counting)
    method = tuning.conv_method(*shapes, 1)
    assert method in (C.IM2COL, C.DIRECT, C.TAPS, C.IGEMM) and len(measured) == 4  # each algorithm timed
    with open(tmp_path / "tuning.json") as f:
        assert list(json.load(f).values()) == [method]

    monkeypatch.setattr(tuning, "_choices", None)  # a new process: only the file remains
    assert tuning.conv_method(*shapes, 1) == method and len(measured) == 4
    # Grouped convolutions are not measured: im2col. Large windows: no direct accumulation.
    assert tuning.conv_method(shapes[0], (18, 8), shapes[2], shapes[3], 2) == C.IM2COL
    assert len(measured) == 4
    wide = (shapes[0][:-1] + (tuning.MEASURE_MAX_K,), (9 * tuning.MEASURE_MAX_K, 8), shapes[2], shapes[3])
    # ... and Winograd where its vectors fit the channels (8 filters: AVX2's 8-float vectors, not AVX-512's 16)
    wide_winograd = winograd.applies(wide[3], 1, tuning.MEASURE_MAX_K, 8)
    expected = (C.IM2COL, C.TAPS, C.IGEMM) + ((C.WINOGRAD_2, C.WINOGRAD_4) if wide_winograd else ())
    assert tuning.conv_method(*wide, 1) in expected and len(measured) == 7 + 2 * wide_winograd
    measured_before = len(measured)
    # A 1x1 window at stride 1 is one GEMM (not measured); at stride 2, im2col or igemm.
    strided = shapes[3][:3] + (2, 2, 2) + shapes[3][6:]
    one_by_one = (1, 1, 1) + shapes[3][3:]
    assert tuning.conv_method(shapes[0], (2, 8), shapes[0][:-1] + (8,), one_by_one, 1) == C.IM2COL
    assert len(measured) == measured_before
    half = (None, 1, 6, 6, 8)
    assert tuning.conv_method(shapes[0], (2, 8), half, one_by_one[:3] + (2, 2, 2) + one_by_one[6:], 1) in (
        C.IM2COL, C.IGEMM) and len(measured) == measured_before + 2
    # Kernel gradients: im2col, taps at stride 1, igemm with filters in whole vectors.
    measured_before = len(measured)
    candidates = 3 if shapes[2][-1] % VECTOR_WIDTH == 0 else 2
    assert tuning.weight_grad_method(shapes[0], shapes[2], shapes[3]) in (C.IM2COL, C.TAPS, C.IGEMM)
    assert len(measured) == measured_before + candidates
    wide_g = shapes[2][:-1] + (2 * VECTOR_WIDTH,)
    assert tuning.weight_grad_method(shapes[0], wide_g, shapes[3]) in (C.IM2COL, C.TAPS, C.IGEMM)
    assert len(measured) == measured_before + candidates + 3
    measured_before = len(measured)
    narrow = (None, 1, 5, 5, VECTOR_WIDTH // 2)
    assert tuning.weight_grad_method(shapes[0], narrow, strided) == C.IM2COL and len(measured) == measured_before
    assert tuning.weight_grad_method(shapes[0], narrow[:-1] + (VECTOR_WIDTH,), strided) in (C.IM2COL, C.IGEMM)
    assert len(measured) == measured_before + 2
    measured_before = len(measured)
    # KCOMPILE_TUNE=0: no timing, im2col, even for a shape never seen.
    monkeypatch.setenv("KCOMPILE_TUNE", "0")
    assert tuning.conv_method(shapes[0], (27, 8), shapes[2], shapes[3], 1) == C.IM2COL
    assert tuning.weight_grad_method(shapes[0], (None, 1, 11, 11, 8), shapes[3]) == C.IM2COL
    assert len(measured) == measured_before


@pytest.mark.parametrize("filters", [3, 16, 40, 64])  # under one vector, one, a partial second panel, two
def test_implicit_gemm_matches_im2col_in_3d_with_a_residual_epilogue(filters):
    """Every (kd, kh, kw) window row a segment of the micro-kernel, dilation along W
    (one segment per tap), strides, uneven pads, a tile of rows past the last output,
    and the epilogue (bias add, residual add, relu) on the kernel's rows."""
    from kcompile.codegen.numba_cpu.kernels.epilogue import RESIDUAL
    from kcompile.codegen.numba_cpu.kernels.scalar import OPCODES

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 7, 6, 4)).astype(np.float32)
    w2d = rng.normal(size=(2 * 3 * 2 * 4, filters)).astype(np.float32)
    geometry = (2, 3, 2, 1, 2, 1, 2, 1, 2, 1, 1, 0)  # window, strides, dilations, leading pads
    out_shape = (3, 4, 4, 4, filters)  # D: (5 + 1 - 2 - 1) + 1; H: (7 + 1 + 1 - 3) // 2 + 1; W: 6 - 2
    steps = np.array([[OPCODES["add"], 0, 0], [OPCODES["add"], RESIDUAL, 0], [OPCODES["relu"], -1, 0]], np.int32)
    chan = rng.normal(size=(1, filters)).astype(np.float32)
    res = rng.normal(size=(int(np.prod(out_shape[:-1])), filters)).astype(np.float32)
    results = []
    for method in (C.IM2COL, C.IGEMM):
        out = np.full(out_shape, np.nan, np.float32)
        # Trailing H pad of 1: the im2col kernel reads the window's outside as zeros.
        C.conv(x, w2d, out, geometry, 1, method, steps, chan, res)
        results.append(out)
    assert not np.isnan(results[1]).any()
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-5)


def test_implicit_gemm_keeps_its_padded_copy_alive():
    """The micro-kernel reads the zero-padded copy of the input through raw addresses; a
    copy freed after its address was taken (Numba frees an array after its last use)
    read reused memory and crashed at this size (a training step's input gradient)."""
    from kcompile.codegen.numba_cpu.kernels.epilogue import NO_CHANNELS, NO_EPILOGUE, NO_RESIDUAL

    rng = np.random.default_rng(4)
    x = rng.random((128, 1, 24, 24, 64), dtype=np.float32)
    w2d = rng.random((9 * 64, 32), dtype=np.float32)
    geometry = (1, 3, 3, 1, 1, 1, 1, 1, 1, 0, 2, 2)
    results = []
    for method in (C.IM2COL, C.IGEMM):
        out = np.empty((128, 1, 26, 26, 32), np.float32)
        C.conv(x, w2d, out, geometry, 1, method, NO_EPILOGUE, NO_CHANNELS, NO_RESIDUAL)
        results.append(out)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-4)


KERNEL_GRADIENT_CASES = {  # input, output gradient (its filters replaced), geometry
    # 3-D, dilation, uneven pads, every window inside the padded input
    "3-D": ((5, 3, 9, 8, 5), (5, 3, 7, 7, 1), (2, 3, 2, 1, 1, 1, 1, 2, 1, 1, 2, 0)),
    # lines in several bands of a micro-kernel call, the last band shorter
    "banded": ((3, 1, 40, 20, 3), (3, 1, 40, 20, 1), (1, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 1)),
    # strides 2 and 3, a leading pad, windows past the input's far edge in H
    "strided": ((3, 1, 17, 16, 5), (3, 1, 9, 5, 1), (1, 3, 3, 1, 2, 3, 1, 1, 1, 0, 1, 0)),
}


@pytest.mark.parametrize("case", list(KERNEL_GRADIENT_CASES))
@pytest.mark.parametrize("vectors", [1, 2, 3, 4])  # one panel of one vector, of two, three of one, two of two
def test_implicit_gemm_kernel_gradient_matches_im2col(vectors, case):
    """The kernel-gradient micro-kernel (filters in whole vectors) with dilation, uneven
    pads, a last tile of (tap, channel) rows past the end, and bands of output lines
    split over jobs."""
    from kcompile.codegen.numba_cpu.kernels import grad as D

    x_shape, g_shape, geometry = KERNEL_GRADIENT_CASES[case]
    filters = vectors * VECTOR_WIDTH
    rng = np.random.default_rng(5)
    x = rng.normal(size=x_shape).astype(np.float32)
    g = rng.normal(size=g_shape[:-1] + (filters,)).astype(np.float32)
    taps = geometry[0] * geometry[1] * geometry[2]
    results = []
    for method in (C.IM2COL, C.IGEMM):
        out = np.full((taps * x_shape[-1], filters), np.nan, np.float32)
        D.conv_weight_grad(x, g, out, geometry, method)
        results.append(out)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4, atol=1e-3)
