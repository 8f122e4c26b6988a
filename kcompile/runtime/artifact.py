"""Build artifacts: a folder holding the optimized IR, its weights, the generated
kernels and Numba's compiled cache of them, loadable without TensorFlow and without
recompiling.

    OUT/meta.json      kcompile version, target, names, the kernels' timestamp
    OUT/graph.json     the optimized graph (kcompile IR)
    OUT/params.npz     its parameters
    OUT/kernels.py     generated Numba source; OUT/__pycache__ holds its compiled cache
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from .. import __version__
from ..errors import KcompileError
from ..ir.serialize import graph_from_json, graph_to_json, load_params, save_params


def save_artifact(model, path: str):
    """Write the artifact atomically (a temporary folder renamed into place), compiled
    and warmed up so that loading it hits the Numba cache."""
    from ..api import TARGETS

    path = os.path.abspath(path)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".kcompile-", dir=parent)
    try:
        with open(os.path.join(tmp, "graph.json"), "w") as f:
            f.write(graph_to_json(model.optimized))
        save_params(model.optimized, os.path.join(tmp, "params.npz"))
        program = TARGETS[model.target](model.optimized, folder=tmp)
        _warm_up(program)
        meta = {
            "format": "kcompile-artifact/1",
            "kcompile_version": __version__,
            "target": model.target,
            "name": model.name,
            "inputs": model.input_names,
            "outputs": model.output_names,
            "kernels_mtime_ns": os.stat(program.path).st_mtime_ns,
        }
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _warm_up(program):
    """Run once at batch 1 so Numba compiles (and caches) every kernel."""
    inputs = [np.zeros(v.type.concrete(1), v.dtype) for v in program.graph.inputs]
    program(inputs, 1)


def load_artifact(path: str):
    from ..api import TARGETS
    from .compiled_model import CompiledModel

    meta_path = os.path.join(path, "meta.json")
    if not os.path.isfile(meta_path):
        raise KcompileError(f"{path}: not a kcompile artifact (no meta.json)")
    with open(meta_path) as f:
        meta = json.load(f)
    with open(os.path.join(path, "graph.json")) as f:
        graph = graph_from_json(f.read(), load_params(os.path.join(path, "params.npz")))
    kernels = os.path.join(path, "kernels.py")
    if os.path.exists(kernels) and os.access(kernels, os.W_OK):
        # Numba's cache is keyed by the source file's timestamp: restore it after a copy.
        mtime = meta.get("kernels_mtime_ns")
        if mtime and os.stat(kernels).st_mtime_ns != mtime:
            os.utime(kernels, ns=(mtime, mtime))
    target = meta.get("target", "cpu")
    if target not in TARGETS:
        raise KcompileError(f"{path}: built for target {target!r}, which this kcompile does not have")
    program = TARGETS[target](graph, folder=path)
    model = CompiledModel(graph, graph, program, target)
    model.artifact_path = path
    return model
