"""Winograd convolutions (kernels/winograd.py): both tile sizes against im2col on whole and
edge tiles, in the generated programs (weights packed once when constant, transformed on
each call when they change, the stride-1 input gradient), kernel gradients, the
fall-back where the method does not apply, and the tuner's candidates."""
import numpy as np
import pytest

from kcompile.codegen.numba_cpu import lowerings, tuning
from kcompile.codegen.numba_cpu.compiler import compile_graph
from kcompile.codegen.numba_cpu.kernels import conv as C
from kcompile.codegen.numba_cpu.kernels import grad as D
from kcompile.codegen.numba_cpu.kernels import winograd as WG
from kcompile.codegen.numba_cpu.kernels.epilogue import NO_CHANNELS, NO_EPILOGUE, NO_RESIDUAL, RESIDUAL
from kcompile.codegen.numba_cpu.kernels.igemm import W as VECTOR_WIDTH
from kcompile.codegen.numba_cpu.kernels.scalar import OPCODES
from kcompile.ir import GraphBuilder, interpret

METHODS = {"F(2x2,3x3)": C.WINOGRAD_2, "F(4x4,3x3)": C.WINOGRAD_4}
CASES = {  # name: (batch, H, W, channel vectors, filter vectors, (top pad, left pad)); output H + 2 * pad - 2
    "same, whole tiles": (2, 8, 8, 1, 1, (1, 1)),
    "same, edge tiles, partial second panel": (3, 9, 7, 1, 3, (1, 1)),
    "valid, two channel vectors": (1, 11, 6, 2, 2, (0, 0)),
    "uneven pads, a wide image": (2, 5, 13, 1, 4, (1, 0)),
}


def _case(name, rng):
    n, h, w, cv, fv, (ph, pw) = CASES[name]
    c, f = cv * VECTOR_WIDTH, fv * VECTOR_WIDTH
    x = rng.normal(size=(n, 1, h, w, c)).astype(np.float32)
    w2d = (rng.normal(size=(9 * c, f)) / np.sqrt(9 * c)).astype(np.float32)
    geometry = (1, 3, 3, 1, 1, 1, 1, 1, 1, 0, ph, pw)
    return x, w2d, geometry, (n, 1, h + 2 * ph - 2, w + 2 * pw - 2, f)


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
@pytest.mark.parametrize("case", list(CASES))
def test_winograd_matches_im2col_with_a_residual_epilogue(case, method):
    """Every output written once (NaN-filled before), edge tiles cut at the image's
    border, the epilogue (bias, residual, relu) on each job's rows; weights transformed
    on the call and packed once (`pack`) give the same result."""
    rng = np.random.default_rng(0)
    x, w2d, geometry, out_shape = _case(case, rng)
    f = out_shape[-1]
    steps = np.array([[OPCODES["add"], 0, 0], [OPCODES["add"], RESIDUAL, 0], [OPCODES["relu"], -1, 0]], np.int32)
    chan = rng.normal(size=(1, f)).astype(np.float32)
    res = rng.normal(size=(int(np.prod(out_shape[:-1])), f)).astype(np.float32)
    expected = np.empty(out_shape, np.float32)
    C.conv(x, w2d, expected, geometry, 1, C.IM2COL, steps, chan, res)
    got = np.full(out_shape, np.nan, np.float32)
    C.conv(x, w2d, got, geometry, 1, method, steps, chan, res)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    tile = 2 if method == C.WINOGRAD_2 else 4
    packed = np.full(out_shape, np.nan, np.float32)
    WG.conv_winograd_packed(x, WG.pack(w2d, tile), packed, geometry, tile, steps, chan, res)
    np.testing.assert_array_equal(packed, got)


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
@pytest.mark.parametrize("case", list(CASES))
def test_winograd_kernel_gradient_matches_im2col(case, method):
    """Edge tiles of the output gradient (zeros past the image), several jobs' partial sums
    (the batch of 40 over WGRAD_JOBS), channel rows past the last register tile."""
    rng = np.random.default_rng(5)
    x, _, geometry, out_shape = _case(case, rng)
    x = np.concatenate([x] * (40 // x.shape[0] + 1))[:40]
    g = rng.normal(size=(40,) + out_shape[1:]).astype(np.float32)
    results = []
    for algorithm in (C.IM2COL, method):
        out = np.full((9 * x.shape[-1], out_shape[-1]), np.nan, np.float32)
        D.conv_weight_grad(x, g, out, geometry, algorithm)
        results.append(out)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4, atol=1e-4 * np.abs(results[0]).max())


def test_a_winograd_method_that_does_not_apply_falls_back_to_im2col():
    rng = np.random.default_rng(1)
    c = VECTOR_WIDTH
    for window, strides, channels in (((1, 5, 5), (1, 1, 1), c), ((1, 3, 3), (1, 2, 2), c), ((1, 3, 3), (1, 1, 1), 3)):
        geometry = window + strides + (1, 1, 1) + (0, 1, 1)
        assert not WG.applies(geometry, 1, channels, VECTOR_WIDTH)
        x = rng.normal(size=(2, 1, 9, 9, channels)).astype(np.float32)
        w2d = rng.normal(size=(int(np.prod(window)) * channels, VECTOR_WIDTH)).astype(np.float32)
        oh = (9 + 2 - window[1]) // strides[1] + 1
        g = rng.normal(size=(2, 1, oh, oh, VECTOR_WIDTH)).astype(np.float32)
        results, gradients = [], []
        for method in (C.IM2COL, C.WINOGRAD_4):
            out = np.full((2, 1, oh, oh, VECTOR_WIDTH), np.nan, np.float32)
            C.conv(x, w2d, out, geometry, 1, method, NO_EPILOGUE, NO_CHANNELS, NO_RESIDUAL)
            results.append(out)
            gradients.append(np.full_like(w2d, np.nan))
            D.conv_weight_grad(x, g, gradients[-1], geometry, method)
        np.testing.assert_array_equal(results[1], results[0])
        np.testing.assert_array_equal(gradients[1], gradients[0])


def test_tuning_offers_winograd_only_where_it_applies():
    c = f = VECTOR_WIDTH
    plain = (1, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 1)
    assert {C.WINOGRAD_2, C.WINOGRAD_4} <= set(tuning.conv_candidates(plain, 9 * c, f, 1))
    others = [
        (plain[:3] + (1, 2, 2) + plain[6:], 9 * c, f, 1),  # strided
        (plain[:6] + (1, 2, 2) + plain[9:], 9 * c, f, 1),  # dilated
        ((1, 3, 3) + plain[3:], 9 * 3, f, 1),  # 3 channels
        (plain, 9 * c, f + 1, 1),  # filters not in whole vectors
        ((1, 5, 5) + plain[3:], 25 * c, f, 1),  # 5x5
        (plain, 9 * c // 2, f, 2),  # grouped
    ]
    for shapes in others:
        assert C.WINOGRAD_2 not in tuning.conv_candidates(*shapes), shapes
    assert {C.WINOGRAD_2, C.WINOGRAD_4} <= set(tuning.weight_grad_candidates(plain, c, f))
    for geometry, k, filters, groups in others[:-1]:
        channels = k // (geometry[0] * geometry[1] * geometry[2])
        assert C.WINOGRAD_2 not in tuning.weight_grad_candidates(geometry, channels, filters), geometry


def _conv_graph(constant: bool, transpose: bool):
    """A 3x3 'same' conv (or stride-1 conv_transpose, as the input gradient) with a bias
    and relu: constant weights, or weights as an input (a training step's)."""
    rng = np.random.default_rng(2)
    c = f = 2 * VECTOR_WIDTH
    b = GraphBuilder("winograd_case")
    x = b.input("x", (None, 7, 10, c))
    kernel = (rng.normal(size=(3, 3, c, f)) / np.sqrt(9 * c)).astype(np.float32)
    w = b.param(kernel, "w") if constant else b.input("w", kernel.shape)
    if transpose:
        y = b.conv_transpose(x, w, strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)))
    else:
        y = b.conv(x, w, strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)), groups=1)
    bias = b.param(rng.normal(size=(f,)).astype(np.float32), "bias")
    b.output([b.relu(b.add(y, bias))])
    return b.graph, kernel


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("constant", [True, False], ids=["constant weights", "weights as an input"])
@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
def test_generated_programs_match_the_interpreter(method, constant, transpose, monkeypatch):
    monkeypatch.setattr(lowerings, "conv_method", lambda *shapes: method)
    graph, kernel = _conv_graph(constant, transpose)
    # Weights as an input are bound to the caller's array, as a training step's are.
    program = compile_graph(graph, external=None if constant else {"w": kernel})
    if constant:  # transformed and packed once, when the program is bound
        assert "WG.pack(" in program.source and "WG.conv_winograd_packed" in program.source
    else:
        assert f", 1, {method}, " in program.source  # groups, then the algorithm
    rng = np.random.default_rng(3)
    for batch in (1, 3):
        x = rng.normal(size=(batch,) + graph.inputs[0].shape[1:]).astype(np.float32)
        (got,) = program([x], batch)
        (expected,) = interpret(graph, [x] if constant else [x, kernel])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=f"batch {batch}")
