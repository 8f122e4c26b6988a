"""Slices that only feed generated elementwise kernels are strided views of their
source (the backward pass's pieces of a concat's gradient), not copies; a concat's
inputs that such kernels compute are written straight into its buffer."""
import numpy as np

from kcompile.codegen.numba_cpu.compiler import compile_graph
from kcompile.codegen.numba_cpu.elementwise import PARALLEL_MIN, PARALLEL_MIN_PER_SAMPLE
from kcompile.ir import GraphBuilder, interpret
from kcompile.passes import fuse_elementwise

HALF = PARALLEL_MIN_PER_SAMPLE  # wide enough for the threaded loop at 9 samples
assert 9 * HALF >= PARALLEL_MIN


def _columns(b, x, start, stop):
    return b.slice(x, axes=(1,), starts=(start,), stops=(stop,), steps=(1,))


def test_slices_feeding_elementwise_kernels_are_views_not_copies():
    b = GraphBuilder("concat_grad")
    x = b.input("x", (None, 2 * HALF))
    g = b.mul(x, b.const(2.0))
    w = b.param(np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32))
    product = b.matmul(_columns(b, g, 2, 6), w)  # a matmul reads it: stays a copy
    reversed_ = b.neg(b.slice(g, axes=(1,), starts=(5,), stops=(0,), steps=(-1,)))  # not unit step
    edge = _columns(b, g, 1, 3)  # an output: stays a copy
    left, right = _columns(b, g, 0, HALF), _columns(b, g, -HALF, 10**6)  # bounds normalized
    column = _columns(b, g, 3, 4)  # (batch, 1): broadcast along the row, at its offset
    b.output([product, reversed_, edge, b.mul(right, column), b.add(b.mul(left, right), right)])
    # The last output is one fused kernel, where g dies: it may not write over g.
    graph = fuse_elementwise(b.graph)
    producers = {node.output.name: node for node in graph.nodes}
    total = graph.outputs[-1]
    assert producers[total.name].op == "fused_elementwise"
    program = compile_graph(graph)
    storage = program.plan.storage
    slices = [node.output.name for node in graph.nodes if node.op == "slice"]
    g = producers[slices[0]].inputs[0]
    assert [storage[name][0] for name in slices] == ["buffer", "buffer", "buffer", "sliced", "sliced", "sliced"]
    assert storage[slices[4]][2] == ((1, HALF, 2 * HALF),)
    assert storage[total.name] != storage[g.name]
    rng = np.random.default_rng(2)
    for batch in (1, 9):  # 9: the threaded loop
        inputs = [rng.normal(size=(batch, 2 * HALF)).astype(np.float32)]
        for got, expected in zip(program(inputs, batch), interpret(graph, inputs)):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_concat_inputs_computed_by_elementwise_kernels_are_written_in_place():
    b = GraphBuilder("antirectifier")
    x = b.input("x", (None, HALF))
    t = b.mul(x, b.const(3.0))
    pos, neg = b.relu(t), b.relu(b.neg(t))
    both = b.concat(pos, neg, axis=1)  # written in place: pos and neg are views of it
    grown = b.exp(t)
    reused = b.concat(grown, x, axis=-1)  # x is an input: copies
    squashed = b.sigmoid(x)
    w = b.param(np.random.default_rng(1).normal(size=(HALF, 3)).astype(np.float32))
    product = b.matmul(squashed, w)
    read_by_a_matmul = b.concat(squashed, b.abs(x), axis=1)  # copies
    b.output([b.mul(both, b.const(2.0)), b.sub(pos, neg), reused, product, read_by_a_matmul])
    graph = b.graph
    program = compile_graph(graph)
    storage = program.plan.storage
    assert storage[pos.name] == ("sliced", both.name, ((1, 0, HALF),))
    assert storage[neg.name] == ("sliced", both.name, ((1, HALF, 2 * HALF),))
    assert storage[both.name][0] == "buffer"
    assert storage[t.name][0] == storage[grown.name][0] == storage[squashed.name][0] == "buffer"
    rng = np.random.default_rng(3)
    for batch in (1, 9):  # 9: the threaded loop, writing rows of the concat from each thread
        inputs = [rng.normal(size=(batch, HALF)).astype(np.float32)]
        for got, expected in zip(program(inputs, batch), interpret(graph, inputs)):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
