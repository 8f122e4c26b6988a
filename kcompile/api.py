"""The public entry points: compile, load, export (see the package docstring)."""
from __future__ import annotations

from .errors import KcompileError
from .frontend import load_graph
from .ir import Graph, verify
from .passes import run_pipeline


def _numba_cpu(graph: Graph, folder=None):
    from .codegen.numba_cpu.compiler import compile_graph

    return compile_graph(graph, folder)


def _numba_cuda(graph: Graph, folder=None):
    from .codegen.numba_cuda import compile_graph

    return compile_graph(graph, folder)


def _native(graph: Graph, folder=None):
    from .codegen.native.program import compile_graph

    return compile_graph(graph, folder)


TARGETS = {"cpu": _numba_cpu, "cuda": _numba_cuda, "native": _native}


def build(graph: Graph, target: str = "cpu", disable_passes=(), folder=None, source=None, options=None):
    """Optimize a loaded graph and compile it for `target`; returns a CompiledModel.
    source/options (the frontend's ModelSource and load options) make it trainable."""
    from .runtime import CompiledModel

    if target not in TARGETS:
        raise KcompileError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
    optimized = run_pipeline(graph, disable=disable_passes)
    model = CompiledModel(graph, optimized, TARGETS[target](optimized, folder), target)
    model.source = source
    model.disable_passes = tuple(disable_passes)
    for key, value in (options or {}).items():
        setattr(model, key, value)
    return model


def compile(src, target: str = "cpu", input_shapes=None, disable_passes=(), custom_objects=None,
            safe_mode: bool = True):
    """Compile a Keras model (a .keras/.h5 path or a keras.Model) into a CompiledModel.

    disable_passes: names of optimization passes to skip (see kcompile.passes.PASSES);
    custom_objects, safe_mode: as in keras.models.load_model."""
    from .frontend import read_source
    from .frontend.model import ModelWalker

    source = read_source(src)
    walker = ModelWalker(source, input_shapes=input_shapes, custom_objects=custom_objects, safe_mode=safe_mode)
    graph = verify(walker.build())
    options = dict(input_shapes=input_shapes, custom_objects=custom_objects, safe_mode=safe_mode)
    return build(graph, target, disable_passes, source=source, options=options)


def load(path: str):
    """Load an artifact written by CompiledModel.save or `kcompile MODEL -o OUT`."""
    from .runtime.artifact import load_artifact

    return load_artifact(path)


def export_onnx(src, path: str, opset: int | None = None, input_shapes=None, custom_objects=None,
                safe_mode: bool = True):
    """Export a Keras model (path or keras.Model) to ONNX from kcompile's optimized IR,
    without TensorFlow. Returns the onnx.ModelProto."""
    from .codegen.onnx import export_graph

    graph = load_graph(src, input_shapes=input_shapes, custom_objects=custom_objects, safe_mode=safe_mode)
    return export_graph(run_pipeline(graph), path, opset=opset)
