"""G.matmul: tiles of BLAS over threads, either operand a transposed view, the epilogue
on each tile; and the backward pass's transposes read in place rather than copied."""
import numba
import numpy as np
import pytest

from kcompile.codegen.numba_cpu.compiler import compile_graph
from kcompile.codegen.numba_cpu.kernels import gemm as G
from kcompile.codegen.numba_cpu.kernels.epilogue import NO_CHANNELS, NO_EPILOGUE, NO_RESIDUAL, RESIDUAL
from kcompile.codegen.numba_cpu.kernels.scalar import OPCODES
from kcompile.codegen.numba_cpu.threads import configure_threading
from kcompile.ir import GraphBuilder, interpret

SHAPES = [(1, 5, 7), (9, 1, 3), (40, 3, 1), (128, 10, 512), (64, 33, 200), (300, 70, 130), (777, 19, 17),
          (31, 300, 513)]


def _layouts(x):
    """x as a C-contiguous array and as a transposed view of one."""
    return [x, np.ascontiguousarray(x.T).T]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul_with_transposed_operands_matches_numpy(m, k, n, threads):
    configure_threading()
    rng = np.random.default_rng(m * 1000 + n)
    a, b = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
    expected = a.astype(np.float64) @ b
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for a_view in _layouts(a):
            for b_view in _layouts(b):
                out = np.full((m, n), np.nan, np.float32)
                G.matmul(a_view, b_view, out, NO_EPILOGUE, NO_CHANNELS, NO_RESIDUAL)
                np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4,
                                           err_msg=f"a {a_view.flags['C_CONTIGUOUS']}, b {b_view.flags['C_CONTIGUOUS']}")
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_priming_blas_keeps_the_thread_count():
    """prime_blas runs on every thread of the pool, then gives back the caller's count."""
    from kcompile.codegen.numba_cpu.threads import prime_blas

    configure_threading()
    numba.set_num_threads(1)
    try:
        prime_blas()
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize("m,n", [(300, 130), (40, 200), (5, 9)])
def test_epilogue_covers_every_tile(m, n):
    """bias per column, then a residual per element: each tile reads its own columns and rows."""
    configure_threading()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(m, 24)).astype(np.float32), rng.normal(size=(24, n)).astype(np.float32)
    bias, residual = rng.normal(size=n).astype(np.float32), rng.normal(size=(m, n)).astype(np.float32)
    steps = np.array([[OPCODES["add"], 0, 0], [OPCODES["mul"], RESIDUAL, 0], [OPCODES["relu"], -1, 0]], np.int32)
    out = np.empty((m, n), np.float32)
    G.matmul(np.ascontiguousarray(a.T).T, b, out, steps, bias[None, :], residual)
    np.testing.assert_allclose(out, np.maximum((a @ b + bias) * residual, 0), rtol=1e-4, atol=1e-4)


def test_transposes_feeding_matmuls_are_views_not_copies():
    b = GraphBuilder("dense_grads")
    x, g = b.input("x", (None, 37)), b.input("g", (None, 20))
    w = b.param(np.random.default_rng(1).normal(size=(37, 20)).astype(np.float32))
    x_t = b.transpose(x, perm=(1, 0))
    dw = b.matmul(x_t, g)  # x^T @ g
    dx = b.matmul(g, b.transpose(w, perm=(1, 0)))  # g @ W^T
    both = b.transpose(g, perm=(1, 0))  # also an output: stays a copy
    b.output([dw, dx, both, b.neg(x_t)])  # x^T also feeds an elementwise op: stays a copy
    graph = b.graph
    program = compile_graph(graph)
    kinds = {name: storage[0] for name, storage in program.plan.storage.items()}
    transposed = [node.output.name for node in graph.nodes if node.op == "transpose"]
    assert [kinds[name] for name in transposed] == ["buffer", "transposed", "buffer"]
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=(9, 37)).astype(np.float32), rng.normal(size=(9, 20)).astype(np.float32)]
    for got, expected in zip(program(inputs, 9), interpret(graph, inputs)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_tiles_split_the_longer_side_of_the_output():
    """A band of rows repeats the packing of all of b, a band of columns all of a: the
    split repeats the smaller operand, and keeps tiles above the minimum size."""
    assert G._tile_grid(128, 512, 2) == (1, 2)  # x @ W, few rows: columns
    assert G._tile_grid(784, 512, 2) == (2, 1)  # x^T @ g: rows
    assert G._tile_grid(128, 40, 4) == (4, 1)  # too few columns to split
    assert G._tile_grid(40, 9216, 4) == (1, 4)  # too few rows to split
    assert G._tile_grid(512, 512, 4) == (4, 1)


BINARY_NUMPY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "maximum": np.maximum,
                "minimum": np.minimum, "greater": np.greater, "less_equal": np.less_equal,
                "relu_grad": lambda a, b: np.where(b > 0, a, 0)}


@pytest.mark.parametrize("op", sorted(BINARY_NUMPY))
@pytest.mark.parametrize("rev", [0, 1])
def test_epilogue_binary_steps_match_numpy(op, rev):
    """Each binary step on a per-channel vector and on a residual, operands in either
    order, on a block that is a strided view (a tile of a wider output)."""
    from kcompile.codegen.numba_cpu.kernels.epilogue import apply

    rng = np.random.default_rng(1)
    low = -2 if op == "relu_grad" else 0.5  # both signs where the sign decides; else no zero divisor
    out = rng.uniform(low, 2, size=(7, 40)).astype(np.float32)
    chan = rng.uniform(low, 2, size=(2, 16)).astype(np.float32)
    res = rng.uniform(low, 2, size=(9, 16)).astype(np.float32)
    fn = BINARY_NUMPY[op]
    for operand, other in ((1, chan[1][None, :]), (RESIDUAL, res[2:9])):
        block = out.copy()
        apply(block[:, 8:24], np.array([[OPCODES[op], operand, rev]], np.int32), chan, res, 2)
        a = out[:, 8:24]
        want = fn(other, a) if rev else fn(a, other)
        np.testing.assert_allclose(block[:, 8:24], want.astype(np.float32), rtol=1e-6, err_msg=f"{op} {operand}")
        np.testing.assert_array_equal(block[:, :8], out[:, :8])  # the rest of the row is not touched
        np.testing.assert_array_equal(block[:, 24:], out[:, 24:])
