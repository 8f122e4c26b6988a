"""Weight regularizers and constraints from layer configs (Keras semantics), applied
by the training loop around each optimizer step."""
from __future__ import annotations

import numpy as np

from ..errors import KcompileError

# Which config key governs a weight, by the role the frontend gave it.
CONFIG_KEY = {
    "kernel": "kernel", "bias": "bias", "embeddings": "embeddings", "depthwise_kernel": "depthwise",
    "pointwise_kernel": "pointwise", "recurrent_kernel": "recurrent", "gamma": "gamma", "beta": "beta",
    "alpha": "alpha",
}
EPSILON = 1e-7


def _spec(value):
    """(class name, config) of a serialized Keras object (dict) or a plain name."""
    if value is None:
        return None, {}
    if isinstance(value, str):
        return value, {}
    return value.get("class_name"), value.get("config") or {}


def _role_config(layer_config: dict, role: str, kind: str):
    key = CONFIG_KEY.get(role.split("/")[-1])
    return _spec(layer_config.get(f"{key}_{kind}")) if key else (None, {})


class Regularizer:
    """loss(w) and its gradient for L1, L2 and L1L2 (Keras's names and defaults)."""

    def __init__(self, name: str, config: dict):
        name = name.lower().replace("_", "")
        if name in ("l2",):
            self.l1, self.l2 = 0.0, float(config.get("l2", 0.01))
        elif name in ("l1",):
            self.l1, self.l2 = float(config.get("l1", 0.01)), 0.0
        elif name in ("l1l2",):
            self.l1, self.l2 = float(config.get("l1", 0.0)), float(config.get("l2", 0.0))
        else:
            raise KcompileError(f"regularizer {name!r} is not supported (L1, L2, L1L2)")

    def loss(self, w: np.ndarray) -> float:
        return float(self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum())

    def grad(self, w: np.ndarray) -> np.ndarray:
        return (self.l1 * np.sign(w) + 2.0 * self.l2 * w).astype(w.dtype)


class Constraint:
    """Keras's MaxNorm, NonNeg, UnitNorm and MinMaxNorm, applied after each update."""

    def __init__(self, name: str, config: dict):
        self.name = name
        self.config = config
        if name not in ("MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm"):
            raise KcompileError(f"constraint {name!r} is not supported (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)")

    def apply(self, w: np.ndarray):
        """Project w in place."""
        c = self.config
        if self.name == "NonNeg":
            w *= (w >= 0).astype(w.dtype)
            return
        axis = c.get("axis", 0)
        axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
        norms = np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))
        if self.name == "UnitNorm":
            w /= EPSILON + norms
            return
        if self.name == "MaxNorm":
            desired = np.clip(norms, 0, c.get("max_value", 2.0))
        else:
            rate = c.get("rate", 1.0)
            desired = rate * np.clip(norms, c.get("min_value", 0.0), c.get("max_value", 1.0)) + (1 - rate) * norms
        w *= (desired / (EPSILON + norms)).astype(w.dtype)


def penalties_for(graph, names):
    """{param name: (Regularizer or None, Constraint or None)} from the layer configs."""
    layers = graph.meta.get("layer_configs", {})
    info = graph.meta.get("keras_weights", {})
    result = {}
    for name in names:
        entry = info.get(name)
        if entry is None:
            continue
        config = layers.get(entry["layer"], {})
        reg_name, reg_config = _role_config(config, entry["role"], "regularizer")
        con_name, con_config = _role_config(config, entry["role"], "constraint")
        regularizer = Regularizer(reg_name, reg_config) if reg_name else None
        constraint = Constraint(con_name, con_config) if con_name else None
        if regularizer or constraint:
            result[name] = (regularizer, constraint)
    return result


def activity_regularizers(graph) -> list:
    """[(Regularizer, the layer's output Value)] for layers with an activity regularizer
    (and ActivityRegularization layers): their loss is added per sample."""
    configs = graph.meta.get("layer_configs", {})
    result = []
    for entry in graph.meta.get("layers", []):
        if entry is None:
            continue
        path, class_name, start, end = entry
        config = configs.get(path, {})
        if class_name == "ActivityRegularization":
            regularizer = Regularizer("L1L2", {"l1": config.get("l1", 0.0), "l2": config.get("l2", 0.0)})
        else:
            name, reg_config = _spec(config.get("activity_regularizer"))
            regularizer = Regularizer(name, reg_config) if name else None
        if regularizer is not None and end > start:
            result.append((regularizer, graph.nodes[end - 1].outputs[0]))
    return result
