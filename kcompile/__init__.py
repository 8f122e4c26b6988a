"""kcompile: a compiler for Keras models.

    import kcompile
    graph = kcompile.load_graph("model.keras")     # the IR
"""
from .errors import (
    InputError, IRError, KcompileError, LayerConfigError, ModelFileError, UnsupportedLayerError,
)
from .frontend import load_graph

__version__ = "0.1.0"

__all__ = [
    "InputError", "IRError", "KcompileError", "LayerConfigError", "ModelFileError", "UnsupportedLayerError",
    "load_graph",
]
