"""Float64 evaluation of graphs and central finite differences, for checking gradients."""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, get_primitive


def _to64(array):
    array = np.asarray(array)
    return array.astype(np.float64) if array.dtype == np.float32 else array


def _decomposed(node, arrays):
    """Run a composite node through its decomposition (float64 all the way: the RNN
    references round their results to float32)."""
    b = GraphBuilder("decomposed")
    values = [b.input(f"in{k}", v.shape, v.dtype) for k, v in enumerate(node.inputs)]
    out = get_primitive(node.op).decompose(b, *values, **node.attrs)
    b.output(list(out) if isinstance(out, tuple) else [out])
    env = run64(b.graph, {v.name: a for v, a in zip(values, arrays)})
    batch = next((a.shape[0] for a, v in zip(arrays, node.inputs) if v.type.dynamic_axis == 0), None)
    results = []
    for v, original in zip(b.graph.outputs, node.outputs):
        result = env[v.name]
        results.append(np.broadcast_to(result, original.type.concrete(batch)) if batch is not None else result)
    return results


def run64(graph, feed: dict) -> dict:
    """Every value of `graph` computed with the NumPy references on float64 copies of the
    params and `feed` ({input name: array}); returns {value name: array}."""
    env = {name: _to64(a) for name, a in graph.params.items()}
    env.update({name: _to64(a) for name, a in feed.items()})
    for node in graph.nodes:
        args = [env[v.name] for v in node.inputs]
        prim = get_primitive(node.op)
        if prim.decompose is not None:
            results = _decomposed(node, args)
        else:
            results = prim.run_reference(*args, **node.attrs)
        for value, result in zip(node.outputs, results):
            env[value.name] = np.asarray(result)
    return env


def numeric_gradient(objective, array, eps: float, rng, max_elements: int = 48, directions: int = 2):
    """Central differences of the scalar function `objective(array)`.

    Returns (indices, values, checks): finite differences at up to `max_elements`
    element positions (flat indices), and `directions` random directions `v` with
    their directional derivatives [(v, d)]."""
    array = np.array(array, dtype=np.float64)
    flat = array.reshape(-1)
    if flat.size <= max_elements:
        indices = np.arange(flat.size)
    else:
        indices = rng.choice(flat.size, max_elements, replace=False)
    values = []
    for i in indices:
        saved = flat[i]
        flat[i] = saved + eps
        up = objective(array)
        flat[i] = saved - eps
        down = objective(array)
        flat[i] = saved
        values.append((up - down) / (2 * eps))
    checks = []
    for _ in range(directions if flat.size > max_elements else 0):
        v = rng.normal(size=array.shape)
        d = (objective(array + eps * v) - objective(array - eps * v)) / (2 * eps)
        checks.append((v, d))
    return indices, np.array(values), checks
