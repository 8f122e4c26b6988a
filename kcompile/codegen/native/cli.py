"""What the `kcompile` command does for native libraries (kcompile/cli.py calls these):

    kcompile MODEL --target native [-o libMODEL.so]     build_file
    kcompile run libMODEL.so --input x.npy [-o y.npy]   run_files
"""
from __future__ import annotations

import os

import numpy as np

from ...errors import InputError, KcompileError
from .build import NativeBuild, build_library
from .library import NativeLibrary


def default_library_name(model_path: str) -> str:
    stem = os.path.splitext(os.path.basename(model_path))[0]
    return f"lib{stem}.so"


def build_file(model_path: str, output: str | None = None, input_shapes=None, custom_objects=None,
               safe_mode: bool = True, disable_passes=()) -> NativeBuild:
    """Load a Keras model file, optimize it and write the library (and NAME.h next to it)."""
    from ...frontend import load_graph
    from ...passes import run_pipeline

    graph = load_graph(model_path, input_shapes=input_shapes, custom_objects=custom_objects, safe_mode=safe_mode)
    return build_library(run_pipeline(graph, disable=disable_passes), output or default_library_name(model_path),
                         optimize=False)


def describe_build(build: NativeBuild) -> str:
    return (f"kcompile: wrote {build.library} and {build.header} ({build.steps} steps, "
            f"{build.weights_bytes / 1e6:.1f} MB of weights, {build.isa.cpu or 'generic'} "
            f"{build.isa.width * 32}-bit vectors)")


def _load_inputs(specs: list, lib: NativeLibrary) -> list:
    """`X.npy` in input order, or `NAME=X.npy` by name; one .npz holds all inputs by name."""
    if len(specs) == 1 and specs[0].endswith(".npz") and "=" not in specs[0]:
        with np.load(specs[0]) as data:
            missing = [s.name for s in lib.inputs if s.name not in data]
            if missing:
                raise InputError(f"{specs[0]} lacks inputs {missing} (it holds {sorted(data.files)})")
            return [data[s.name] for s in lib.inputs]
    named, ordered = {}, []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and not os.path.exists(spec):
            named[name] = np.load(path)
        else:
            ordered.append(np.load(spec))
    if named:
        if ordered:
            raise InputError("give inputs either all by name (NAME=X.npy) or all in order")
        unknown = sorted(set(named) - {s.name for s in lib.inputs})
        if unknown:
            raise InputError(f"unknown inputs {unknown}; the model takes {[s.name for s in lib.inputs]}")
        return named
    return ordered


def run_files(library: str, inputs: list, outputs: list | None = None, threads: int | None = None) -> str:
    """Run a native library on .npy inputs; write .npy outputs (or one .npz). Returns a
    summary line per output."""
    if not os.path.exists(library):
        raise KcompileError(f"{library}: no such file")
    path = library if os.sep in library else os.path.join(".", library)
    with NativeLibrary(path, num_threads=threads) as lib:
        arrays = _load_inputs(list(inputs), lib)
        results = lib(arrays)
        names = [s.name for s in lib.outputs]
    outputs = list(outputs or [])
    if len(outputs) == 1 and outputs[0].endswith(".npz"):
        np.savez(outputs[0], **dict(zip(names, results)))
    elif outputs:
        if len(outputs) != len(results):
            raise InputError(f"the model has {len(results)} outputs ({names}); give as many -o files, or one .npz")
        for path_out, array in zip(outputs, results):
            np.save(path_out, array)
    lines = []
    for k, (name, array) in enumerate(zip(names, results)):
        where = f" -> {outputs[k]}" if len(outputs) == len(results) else (f" -> {outputs[0]}" if outputs else "")
        lines.append(f"{name}: {array.dtype}{list(array.shape)}{where}")
    return "\n".join(lines)
