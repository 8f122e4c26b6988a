"""kcompile: a compiler for Keras models.

    import kcompile
    model = kcompile.compile("model.keras")     # Numba CPU kernels
    y = model.predict(x)                        # like keras.Model.predict
    graph = kcompile.load_graph("model.keras")  # the IR alone
"""
from .errors import (
    InputError, IRError, KcompileError, LayerConfigError, ModelFileError, UnsupportedLayerError,
)
from .api import build, compile, export_onnx, load
from .frontend import load_graph
from .frontend.custom import register_layer

__version__ = "0.1.0"

__all__ = [
    "InputError", "IRError", "KcompileError", "LayerConfigError", "ModelFileError", "UnsupportedLayerError",
    "build", "compile", "export_onnx", "load", "load_graph", "register_layer",
]
