"""verify(graph): well-formedness and types. Run after every pass in tests."""
from __future__ import annotations

from ..errors import IRError
from .graph import Graph, TensorType, freeze
from .registry import get_primitive


def verify(graph: Graph) -> Graph:
    defined: dict = {}

    def define(value, where):
        if value.name in defined:
            raise IRError(f"value %{value.name} defined twice ({where})")
        defined[value.name] = value

    for v in graph.inputs:
        define(v, "graph input")
    for name, v in graph.param_values.items():
        array = graph.params.get(name)
        if array is None or v.type != TensorType(array.shape, str(array.dtype)):
            raise IRError(f"param %{name} does not match its array")
        define(v, "param")
    for i, node in enumerate(graph.nodes):
        prim = get_primitive(node.op)
        for v in node.inputs:
            if defined.get(v.name) is not v:
                raise IRError(f"node {i} ({node.op}) reads %{v.name} before it is defined")
        for key, value in node.attrs.items():
            if freeze(value) != value:
                raise IRError(f"node {i} ({node.op}) attribute {key} is not hashable: {value!r}")
        try:
            types = prim.infer(*[v.type for v in node.inputs], **node.attrs)
        except Exception as e:  # an inference rule rejecting its inputs
            raise IRError(f"node {i} ({node.op}): {e}") from None
        types = [types] if isinstance(types, TensorType) else list(types)
        if types != [v.type for v in node.outputs]:
            raise IRError(
                f"node {i} ({node.op}) outputs {[str(v.type) for v in node.outputs]}, "
                f"inference gives {[str(t) for t in types]}"
            )
        for v in node.outputs:
            define(v, f"node {i} ({node.op})")
    for v in graph.outputs:
        if defined.get(v.name) is not v:
            raise IRError(f"graph output %{v.name} is not defined")
    if len(graph.output_names) != len(graph.outputs):
        raise IRError("graph output_names and outputs differ in length")
    return graph
