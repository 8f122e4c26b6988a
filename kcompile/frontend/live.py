"""Live keras.Model objects: saved to a temporary file in the model's own format and
read back like any other file, so one code path serves files and objects."""
from __future__ import annotations

import os
import tempfile

from ..errors import KcompileError
from .files import ModelSource, read_model_file


def is_keras_model(obj) -> bool:
    """True for keras.Model / tf_keras.Model instances, checked without importing either."""
    return any(
        klass.__name__ in ("Model", "Functional", "Sequential")
        and klass.__module__.split(".")[0] in ("keras", "tf_keras")
        for klass in type(obj).__mro__
    )


def read_live_model(model) -> ModelSource:
    legacy = type(model).__module__.startswith("tf_keras")
    suffix = ".h5" if legacy else ".keras"
    with tempfile.TemporaryDirectory(prefix="kcompile-") as tmp:
        path = os.path.join(tmp, f"model{suffix}")
        try:
            model.save(path)
        except Exception as e:  # Keras raises many kinds for unsavable models
            raise KcompileError(f"cannot serialize the Keras model {getattr(model, 'name', '?')!r}: {e}") from e
        source = read_model_file(path)
    source.path = None
    source.extra["live_model"] = model
    return source
