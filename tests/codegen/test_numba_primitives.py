"""Every primitive has a Numba CPU lowering, and each example matches the reference."""
import numpy as np
import pytest

from kcompile.codegen.numba_cpu.compiler import compile_graph
from kcompile.codegen.numba_cpu.lowerings import missing_lowerings
from kcompile.ir import interpret
from support.primitive_examples import build_combined_graph


def test_every_primitive_has_a_lowering():
    assert missing_lowerings() == []


def test_every_primitive_example_matches_the_interpreter():
    graph, arrays, spans = build_combined_graph(batch=2)
    program = compile_graph(graph)  # unoptimized: each primitive lowered on its own
    for batch in (1, 2):
        inputs = [a[:batch] for a in arrays]
        expected = interpret(graph, inputs)
        got = program(inputs, batch)
        for name, start, stop in spans:
            for k in range(start, stop):
                np.testing.assert_allclose(got[k], expected[k], rtol=1e-4, atol=1e-5, err_msg=f"{name} batch {batch}")


def test_count_nonfinite_counts_nan_and_both_infinities():
    from kcompile.codegen.numba_cpu.kernels.reduce import count_nonfinite

    x = np.linspace(-1e30, 1e30, 100_003, dtype=np.float32)
    assert count_nonfinite(x) == 0
    x[[0, 5, 50_000, 100_002]] = [np.nan, np.inf, -np.inf, np.nan]
    assert count_nonfinite(x) == 4


@pytest.mark.parametrize("shape", [(1, 40_000, 3), (2, 9_000, 16), (1, 70_000, 1), (3, 64, 5)])
def test_reductions_split_over_the_reduced_axis_match_numpy(shape):
    """Few outer rows (the backward pass's sums over the batch): jobs take parts of the
    reduced axis and their partial results are combined."""
    from kcompile.codegen.numba_cpu.kernels import reduce as R

    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    out = np.empty((shape[0], shape[2]), np.float32)
    for kind, expected in ((R.SUM, x.sum(1)), (R.MEAN, x.mean(1)), (R.MAX, x.max(1)), (R.MIN, x.min(1))):
        R.reduce(x, out, kind)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3, err_msg=f"kind {kind}")


def test_elementwise_kernels_match_on_one_thread_and_over_threads():
    """Generated kernels loop on one thread below PARALLEL_MIN output elements and over
    threads above it: batch 1 takes the first branch, batch 4 the second. (Outputs
    small per sample get no threaded loop at all: see
    test_small_elementwise_kernels_are_not_parallel.)"""
    from kcompile.codegen.numba_cpu.elementwise import PARALLEL_MIN
    from kcompile.ir import GraphBuilder

    per_sample = (40, 250)
    assert np.prod(per_sample) < PARALLEL_MIN <= 4 * np.prod(per_sample)
    b = GraphBuilder("elementwise_sizes")
    x, y = b.input("x", (None,) + per_sample), b.input("y", (None,) + per_sample)
    bias = b.param(np.random.default_rng(0).normal(size=(1, 250)).astype(np.float32))
    b.output([b.mul(x, y), b.tanh(b.add(x, bias)), b.where(b.greater(x, y), x, bias)])
    graph = b.graph
    program = compile_graph(graph)
    assert program.source.count("in prange(") == len(graph.nodes)  # one threaded loop a kernel
    rng = np.random.default_rng(1)
    for batch in (1, 4):
        inputs = [rng.normal(size=(batch,) + per_sample).astype(np.float32) for _ in range(2)]
        for got, expected in zip(program(inputs, batch), interpret(graph, inputs)):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"batch {batch}")


def test_small_elementwise_kernels_are_not_parallel():
    """A parallel kernel takes Numba several times as long to compile."""
    from kcompile.ir import GraphBuilder

    b = GraphBuilder("small_features")
    x = b.input("x", (None, 16))
    b.output([b.tanh(b.add(x, b.param(np.ones(16, np.float32))))])
    program = compile_graph(b.graph)
    assert "parallel=True" not in program.source and "prange(" not in program.source.split("def bind")[0]
    x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    np.testing.assert_allclose(program([x], 3)[0], np.tanh(x + 1), rtol=1e-5)


def test_identical_elementwise_kernels_are_written_once():
    """Layers that repeat (a ResNet's blocks, their backward passes) repeat kernel bodies:
    each distinct body is generated and compiled once, and called once per node."""
    import re

    from kcompile.ir import GraphBuilder

    rng = np.random.default_rng(0)
    b = GraphBuilder("repeated_blocks")
    x = b.input("x", (None, 6, 6, 16))
    h = x
    for _ in range(3):  # the same body over different parameters
        scale, shift = (b.param(rng.normal(size=16).astype(np.float32)) for _ in range(2))
        h = b.relu(b.add(b.mul(h, scale), shift))
    other = b.tanh(b.reduce_sum(h, axes=(1,)))  # a different shape: a kernel of its own
    b.output([h, other])
    graph = b.graph
    program = compile_graph(graph)
    kernels, bind = program.source.split("def bind")
    names = re.findall(r"^def (k_\w+)\(", kernels, re.M)
    assert len(names) == 4, names  # mul, add, relu (unfused: compile_graph runs no passes), tanh
    assert [bind.count(f"({name}, ") for name in names] == [3, 3, 3, 1]  # one step a node
    inputs = [rng.normal(size=(5, 6, 6, 16)).astype(np.float32)]
    for got, expected in zip(program(inputs, 5), interpret(graph, inputs)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
