"""Graphs to and from files: structure as JSON, parameters as one .npz."""
from __future__ import annotations

import json

import numpy as np

from .graph import Graph, Node, TensorType, Value, freeze

FORMAT = "kcompile-ir/1"


def _type(t: TensorType) -> dict:
    return {"shape": list(t.shape), "dtype": t.dtype}


def _jsonable(value):
    if isinstance(value, tuple):
        return {"tuple": [_jsonable(v) for v in value]}
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}
    return value


def _from_json(value):
    if isinstance(value, dict) and "tuple" in value:
        return tuple(_from_json(v) for v in value["tuple"])
    if isinstance(value, dict) and "float" in value:
        return float(value["float"])
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value


def graph_to_json(graph: Graph) -> str:
    data = {
        "format": FORMAT,
        "name": graph.name,
        "inputs": [{"name": v.name, **_type(v.type)} for v in graph.inputs],
        "params": {name: _type(v.type) for name, v in graph.param_values.items()},
        "nodes": [
            {
                "op": n.op,
                "inputs": [v.name for v in n.inputs],
                "outputs": [{"name": v.name, **_type(v.type)} for v in n.outputs],
                "attrs": {k: _jsonable(v) for k, v in n.attrs.items()},
                "layer": n.meta.get("layer"),
            }
            for n in graph.nodes
        ],
        "outputs": [v.name for v in graph.outputs],
        "output_names": graph.output_names,
        "meta": {k: v for k, v in graph.meta.items() if k in ("source", "format", "keras_version", "training_config")},
    }
    return json.dumps(data, indent=1)


def graph_from_json(text: str, params: dict) -> Graph:
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} graph")
    graph = Graph(data["name"])
    values = {}
    for entry in data["inputs"]:
        values[entry["name"]] = Value(entry["name"], TensorType(tuple(entry["shape"]), entry["dtype"]))
        graph.inputs.append(values[entry["name"]])
    for name in data["params"]:
        values[name] = graph.add_param(name, params[name])
    for entry in data["nodes"]:
        outputs = [Value(o["name"], TensorType(tuple(o["shape"]), o["dtype"])) for o in entry["outputs"]]
        attrs = {k: freeze(_from_json(v)) for k, v in entry["attrs"].items()}
        meta = {"layer": entry["layer"]} if entry.get("layer") else {}
        graph.nodes.append(Node(entry["op"], [values[n] for n in entry["inputs"]], outputs, attrs, meta))
        values.update((v.name, v) for v in outputs)
    graph.outputs = [values[n] for n in data["outputs"]]
    graph.output_names = list(data["output_names"])
    graph.meta.update(data.get("meta", {}))
    return graph


def save_params(graph: Graph, path: str):
    np.savez(path, **graph.params)


def load_params(path: str) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
