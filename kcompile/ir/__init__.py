"""kcompile's graph IR: types, the primitive registry, builder, verifier, printer, interpreter."""
from . import ops  # noqa: F401  (registers the primitives)
from .builder import GraphBuilder
from .equality import describe_difference, graphs_equal
from .graph import Graph, Node, TensorType, Value
from .interpreter import interpret
from .printer import format_graph
from .registry import Kind, Primitive, all_primitives, get_primitive, primitive
from .verify import verify

__all__ = [
    "Graph", "GraphBuilder", "Kind", "Node", "Primitive", "TensorType", "Value", "all_primitives",
    "describe_difference", "format_graph", "get_primitive", "graphs_equal", "interpret", "primitive", "verify",
]
