"""Small helpers passes share for rewriting graphs."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Value


def replace_all_uses(graph: Graph, old: Value, new: Value):
    """Every reader of `old` (nodes and graph outputs) reads `new` instead."""
    graph.replace_uses(old, new)


def single_user(users: dict, value: Value):
    """The only node reading `value`, or None (several readers, or none)."""
    readers = users.get(value.name, [])
    return readers[0] if len(readers) == 1 and len({id(n) for n in readers}) == 1 else None


def is_output(graph: Graph, value: Value) -> bool:
    return any(v is value for v in graph.outputs)


def param_array(graph: Graph, value: Value):
    return graph.params[value.name] if graph.is_param(value) else None


def per_channel(array: np.ndarray, channels: int, rank: int):
    """A constant that varies only along the last axis (or is a scalar): its (channels,)
    vector, or None."""
    if array is None or array.ndim > rank:
        return None
    if array.size == 1:
        return np.full(channels, array.reshape(()), np.float32)
    if array.shape[-1] != channels or array.size != channels:
        return None
    return array.reshape(channels).astype(np.float32)


def unique_param_name(graph: Graph, hint: str) -> str:
    name, k = hint, 0
    while name in graph.params:
        k += 1
        name = f"{hint}.{k}"
    return name
