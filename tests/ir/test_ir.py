"""The IR itself: every primitive's inference agrees with its reference; verify,
printer, structural equality and the interpreter."""
import numpy as np
import pytest

from kcompile.errors import InputError, IRError
from kcompile.ir import (
    Graph, GraphBuilder, Node, TensorType, Value, all_primitives, format_graph, graphs_equal, interpret, verify,
)
from support.primitive_examples import EXAMPLES, build_example_graph

ALL = sorted(all_primitives())


def test_every_primitive_has_an_example():
    assert sorted(EXAMPLES) == ALL


@pytest.mark.parametrize("op", ALL)
def test_inference_agrees_with_reference(op):
    for inputs, attrs in EXAMPLES[op]:
        graph, arrays = build_example_graph(op, inputs, attrs)
        verify(graph)
        for batch_slice in (slice(0, 1), slice(None)):
            batch_arrays = [a[batch_slice] for a in arrays]
            outputs = interpret(graph, batch_arrays)
            for value, out in zip(graph.outputs, outputs):
                # The dynamic dimension may fold other axes in (reshape), so compare the rest.
                dynamic = value.type.dynamic_axis
                size = out.shape[dynamic] if dynamic is not None else None
                assert out.shape == value.type.concrete(size), f"{op}: {out.shape} vs {value.type}"
                assert str(out.dtype) == value.dtype, f"{op}: dtype {out.dtype} vs {value.dtype}"


def test_decompositions_match_references():
    """Composite primitives' decompositions compute what their reference computes."""
    for op, prim in all_primitives().items():
        if prim.decompose is None:
            continue
        for inputs, attrs in EXAMPLES[op]:
            graph, arrays = build_example_graph(op, inputs, attrs)
            b = GraphBuilder("decomposed")
            values = [b.input(v.name, v.shape, v.dtype) for v in graph.inputs]
            params = {name: b.param(a, name) for name, a in graph.params.items()}
            args = [params.get(v.name) or values[[x.name for x in graph.inputs].index(v.name)] for v in graph.nodes[0].inputs]
            out = prim.decompose(b, *args, **graph.nodes[0].attrs)
            outs = list(out) if isinstance(out, tuple) else [out]
            b.output(outs)
            verify(b.graph)
            for got, want in zip(interpret(b.graph, arrays), interpret(graph, arrays)):
                np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=1e-5, atol=1e-6, err_msg=op)


def _small_graph(units=3):
    b = GraphBuilder("small")
    x = b.input("x", (None, 4))
    w = b.param(np.arange(4 * units, dtype=np.float32).reshape(4, units) / 10, "w")
    y = b.relu(b.matmul(x, w))
    b.output([b.softmax(y, axis=-1)], ["probs"])
    return b.graph


def test_verify_accepts_builder_graphs_and_rejects_broken_ones():
    graph = verify(_small_graph())
    broken = graph.copy()
    broken.nodes = broken.nodes[1:]  # relu now reads an undefined value
    with pytest.raises(IRError, match="before it is defined"):
        verify(broken)
    wrong_type = graph.copy()
    node = wrong_type.nodes[0]
    wrong_type.nodes[0] = Node(node.op, node.inputs, [Value(node.output.name, TensorType((None, 9)))], node.attrs)
    with pytest.raises(IRError, match="inference gives"):
        verify(wrong_type)
    twice = graph.copy()
    twice.nodes.append(twice.nodes[0])
    with pytest.raises(IRError, match="defined twice"):
        verify(twice)


def test_builder_reports_the_layer_on_shape_errors():
    b = GraphBuilder()
    x = b.input("x", (None, 4))
    with b.meta(layer="dense_7"), pytest.raises(IRError, match="dense_7"):
        b.matmul(x, b.param(np.zeros((5, 2), np.float32), "w"))


def test_printer_and_structural_equality():
    a, c = _small_graph(), _small_graph()
    text = format_graph(a)
    assert "matmul(%x, %w)" in text and "softmax" in text and "return %" in text and "'probs'" in text
    assert graphs_equal(a, c)
    assert not graphs_equal(a, _small_graph(units=2))
    renamed = c.copy()
    renamed.nodes[0].outputs[0].name = "something_else"
    assert graphs_equal(a, renamed)


def test_interpreter_runs_any_batch_and_checks_inputs():
    graph = _small_graph()
    for batch in (1, 5, 64):
        (y,) = interpret(graph, np.ones((batch, 4), np.float32))
        assert y.shape == (batch, 3)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(InputError, match=r"expects shape \(None, 4\)"):
        interpret(graph, np.ones((2, 5), np.float32))
    with pytest.raises(InputError, match="missing inputs"):
        interpret(graph, {"y": np.ones((2, 4))})
    assert interpret(graph, {"x": np.ones((2, 4))})[0].shape == (2, 3)


def test_graph_param_bookkeeping():
    g = Graph()
    v = g.add_param("w", np.zeros(3, np.float32))
    assert g.is_param(v) and g.param_count() == 3
    with pytest.raises(ValueError):
        g.add_param("w", np.zeros(2))
    g.remove_unused_params()
    assert not g.params
