"""The native library behind CompiledModel (`kcompile.compile(src, target="native")`):
the same predict/evaluate/save API, with the model running in the C library through
ctypes. Libraries are cached by a hash of the graph, its weights and the native code
generator, so compiling the same model twice builds once."""
from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np

from ...ir import Graph
from ...ir.serialize import graph_to_json
from ..common import cache_root, files_digest
from .build import HERE, build_library, host_isa
from .library import NativeLibrary

LIBRARY_NAME = "libmodel.so"  # inside an artifact folder, next to graph.json


def graph_digest(graph: Graph) -> str:
    digest = hashlib.sha256(graph_to_json(graph).encode())
    for name in sorted(graph.params):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(graph.params[name]).tobytes())
    digest.update(files_digest(HERE, (".py", ".c", ".h")).encode())
    digest.update(repr(host_isa()).encode())
    return digest.hexdigest()[:16]


class NativeProgram:
    """program(arrays, batch) -> outputs, like the Numba and CUDA programs."""

    def __init__(self, graph: Graph, folder: str | None = None):
        self.graph = graph
        self.path = os.path.join(folder, LIBRARY_NAME) if folder else self._cached(graph)
        if not os.path.exists(self.path):  # an artifact being written: it keeps its own copy
            shutil.copyfile(self._cached(graph), self.path)
        self.library = NativeLibrary(self.path)

    @staticmethod
    def _cached(graph: Graph) -> str:
        """The cache's library for `graph`, built on first use."""
        path = os.path.join(cache_root(), "native", graph_digest(graph), LIBRARY_NAME)
        if not os.path.exists(path):
            build_library(graph, path, optimize=False)
        return path

    def __call__(self, inputs: list, batch: int) -> list:
        if batch == 0:  # the C API refuses empty batches; Keras returns empty outputs
            return [np.empty(v.type.concrete(0), v.dtype) for v in self.graph.outputs]
        shapes = [v.type.concrete(batch) for v in self.graph.outputs]
        return self.library.run_checked(list(inputs), shapes, batch)


def compile_graph(graph: Graph, folder: str | None = None) -> NativeProgram:
    return NativeProgram(graph, folder)
