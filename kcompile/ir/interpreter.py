"""The reference interpreter: runs a Graph on NumPy arrays, any batch size.
It is the oracle every backend is tested against."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .graph import Graph
from .registry import get_primitive


def bind_inputs(graph: Graph, inputs) -> list:
    """Accept one array, a list, or a dict by input name; return arrays in graph order."""
    if isinstance(inputs, dict):
        missing = [v.name for v in graph.inputs if v.name not in inputs]
        if missing:
            raise InputError(f"missing inputs {missing}; the model takes {[v.name for v in graph.inputs]}")
        arrays = [inputs[v.name] for v in graph.inputs]
    elif isinstance(inputs, (list, tuple)):
        arrays = list(inputs)
    else:
        arrays = [inputs]
    if len(arrays) != len(graph.inputs):
        raise InputError(f"the model takes {len(graph.inputs)} inputs, got {len(arrays)}")
    bound = []
    for value, array in zip(graph.inputs, arrays):
        array = np.asarray(array)
        expected = value.type.shape
        if array.ndim != len(expected) or any(e is not None and e != a for e, a in zip(expected, array.shape)):
            raise InputError(f"input {value.name!r} expects shape {value.type.shape}, got {array.shape}")
        bound.append(np.ascontiguousarray(array, dtype=value.dtype))
    return bound


def interpret(graph: Graph, inputs, return_env: bool = False):
    """Run the graph; returns the list of outputs (and every value, with return_env)."""
    env = dict(graph.params)
    for value, array in zip(graph.inputs, bind_inputs(graph, inputs)):
        env[value.name] = array
    for node in graph.nodes:
        prim = get_primitive(node.op)
        results = prim.run_reference(*[env[v.name] for v in node.inputs], **node.attrs)
        for value, result in zip(node.outputs, results):
            env[value.name] = result
    outputs = [env[v.name] for v in graph.outputs]
    return (outputs, env) if return_env else outputs
