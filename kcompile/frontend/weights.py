"""Saved layer variables, independent of the file format they came from.

A `.keras` file stores a tree: `layers/<key>/vars/<i>` with sublayers as child groups
(`lstm/cell/vars`, `multi_head_attention/query_dense/vars`). A legacy `.h5` file stores
one flat, ordered list per top-level layer (`weight_names`). `LayerWeights` holds
either and answers the one question lowerings ask: the layer's variables in the
order of Keras's `layer.weights`.
"""
from __future__ import annotations

import re

import numpy as np

# Sublayers in the order their variables appear in `layer.weights` (creation order);
# other layers' children are taken in key order.
CHILD_ORDER = {
    "Bidirectional": ("forward_layer", "backward_layer"),
    "MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
}


def to_snake_case(name: str) -> str:
    """Keras's own naming.to_snake_case (it keys `.keras` layer groups by class name)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class LayerWeights:
    """One layer's saved variables: its own (name, array) pairs and its sublayers'."""

    def __init__(self, own=(), children=None, group_name=None, paths=None):
        self.own = list(own)  # [(name or None, array)]
        self.paths = list(paths) if paths is not None else [None] * len(self.own)  # where each array is stored
        self.children: dict = dict(children or {})
        self.group_name = group_name  # the layer name recorded in the file, if any

    def flat(self, class_name: str = "") -> list:
        """All arrays in Keras's `layer.weights` order."""
        return [a for a, _ in self.flat_entries(class_name)]

    def flat_entries(self, class_name: str = "") -> list:
        """(array, dataset path in the file) pairs in Keras's `layer.weights` order."""
        entries = [(a, p) for (_, a), p in zip(self.own, self.paths)]
        order = CHILD_ORDER.get(class_name)
        keys = [k for k in order if k in self.children] if order else sorted(self.children)
        for key in keys:
            entries.extend(self.children[key].flat_entries())
        return entries

    def names(self) -> list:
        return [n for n, _ in self.own]

    def child(self, key: str) -> "LayerWeights":
        return self.children.get(key, EMPTY)

    def sublayers(self, layer_names: list, model_name: str) -> dict:
        """Split a nested model's weights among its layers, by layer name.

        `.keras` trees already have one child per layer; flat `.h5` lists are split
        by the weight names' first path component ("sub/dense/kernel" -> "dense")."""
        if self.children:
            return self.children
        split: dict = {name: [] for name in layer_names}
        for (name, array), path in zip(self.own, self.paths):
            parts = (name or "").split("/")
            if parts[0] == model_name and len(parts) > 2:
                parts = parts[1:]
            if parts[0] in split:
                split[parts[0]].append((name, array, path))
        return {k: LayerWeights([(n, a) for n, a, _ in v], paths=[p for _, _, p in v]) for k, v in split.items() if v}

    def __len__(self):
        return len(self.own) + sum(len(c) for c in self.children.values())


EMPTY = LayerWeights()


def keras_tree_from_h5(group, container_keys=None) -> LayerWeights:
    """Read a `.keras` weights group (`vars` plus child groups) into a LayerWeights."""
    own, children, paths = [], {}, []
    group_name = None
    if "vars" in group:
        vars_group = group["vars"]
        group_name = vars_group.attrs.get("name")
        indices = sorted(vars_group.keys(), key=int)
        own = [(None, np.asarray(vars_group[i])) for i in indices]
        paths = [f"{vars_group.name}/{i}" for i in indices]
    for key in group.keys():
        if key == "vars":
            continue
        child = group[key]
        if key == "layers":
            # A nested model: its layers, keyed by the layer name recorded in the file.
            for sub_key in child.keys():
                tree = keras_tree_from_h5(child[sub_key])
                children[tree.group_name or sub_key] = tree
        else:
            children[key] = keras_tree_from_h5(child)
    return LayerWeights(own, children, group_name, paths)


def decode(name) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)
