"""Keras models (files or live objects) to kcompile IR, without TensorFlow for built-in layers."""
from __future__ import annotations

import os

from ..errors import KcompileError
from ..ir import Graph, verify
from . import layers  # noqa: F401  (registers the built-in lowerings)
from .files import ModelSource, read_model_file
from .live import is_keras_model, read_live_model
from .model import ModelWalker
from .registry import LAYER_LOWERINGS, lowers


def read_source(src) -> ModelSource:
    if isinstance(src, ModelSource):
        return src
    if isinstance(src, (str, os.PathLike)):
        return read_model_file(src)
    if is_keras_model(src):
        return read_live_model(src)
    raise KcompileError(f"cannot load {type(src).__name__!r}: pass a .keras/.h5 path or a keras.Model")


def load_graph(src, input_shapes=None, training: bool = False, custom_objects=None, safe_mode: bool = True) -> Graph:
    """The frontend alone: a model file or keras.Model to a verified IR Graph.

    input_shapes: {input name: shape} to fix dimensions the model leaves unknown.
    custom_objects, safe_mode: as in keras.models.load_model (custom layers, Lambda)."""
    source = read_source(src)
    walker = ModelWalker(source, training=training, input_shapes=input_shapes, custom_objects=custom_objects,
                         safe_mode=safe_mode)
    graph = walker.build()
    return verify(graph)


__all__ = ["LAYER_LOWERINGS", "ModelSource", "load_graph", "lowers", "read_source"]
