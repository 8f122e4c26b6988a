"""Keras-style inputs: one array, a list, or a dict by input name; checked against the
model's signature with errors that name the expected shape and dtype."""
from __future__ import annotations

import numpy as np

from ..errors import InputError

CASTABLE = {"float32": "fc", "int32": "iub", "int64": "iub", "bool": "b"}


def normalize_inputs(inputs, values) -> list:
    """Arrays in the graph's input order, validated and converted to the input dtypes."""
    names = [v.name for v in values]
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise InputError(f"inputs by name must be exactly {names}; missing {missing}, unknown {unknown}")
        arrays = [inputs[n] for n in names]
    elif isinstance(inputs, (list, tuple)) and all(hasattr(a, "shape") for a in inputs):
        arrays = list(inputs)
    else:
        arrays = [inputs]
    if len(arrays) != len(values):
        raise InputError(f"the model takes {len(values)} input(s) {names}, got {len(arrays)}")
    result = []
    for value, array in zip(values, arrays):
        array = np.asarray(array)
        expected = value.type.shape
        if array.ndim != len(expected) or any(e is not None and e != a for e, a in zip(expected, array.shape)):
            shown = "(" + ", ".join("None" if d is None else str(d) for d in expected) + ")"
            raise InputError(f"input {value.name!r} expects shape {shown} (None = batch), got {array.shape}")
        if array.dtype.kind not in CASTABLE[value.dtype] and array.dtype != value.dtype:
            raise InputError(f"input {value.name!r} expects {value.dtype} data, got {array.dtype}")
        result.append(np.ascontiguousarray(array, dtype=value.dtype))
    batches = {a.shape[v.type.dynamic_axis] for a, v in zip(result, values) if v.type.dynamic_axis is not None}
    if len(batches) > 1:
        raise InputError(f"inputs disagree on the batch size: {sorted(batches)}")
    return result


def batch_size_of(arrays, values) -> int:
    for a, v in zip(arrays, values):
        if v.type.dynamic_axis is not None:
            return a.shape[v.type.dynamic_axis]
    return 1
