"""Keras's serialized form of a loss, metric, optimizer or schedule: what a compile
config or a saved model holds for an object given as a class rather than a string."""
from __future__ import annotations


def keras_serialized(module: str, obj) -> dict:
    """{"module", "class_name", "config", "registered_name"} for a kcompile object with
    `keras_class` and `get_config()`, as Keras's serialize_keras_object writes it."""
    return {"module": module, "class_name": obj.keras_class, "config": obj.get_config(), "registered_name": None}
