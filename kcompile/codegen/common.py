"""What the code generators share: the lowering table type, the constant pools, names,
and writing/importing generated modules from the cache. (What only the two Numba
backends share is in numba_shared.py.)"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys

import numpy as np

from ..errors import KcompileError
from ..ir import Kind, all_primitives


class LoweringTable(dict):
    """primitive name -> lowering function; `@table.register(*ops)` adds entries."""

    def register(self, *ops):
        def add(fn):
            for op in ops:
                self[op] = fn
            return fn

        return add

    def missing(self) -> list:
        """Registered primitives without a lowering (a test keeps this empty). Composite
        primitives need none: the pass pipeline expands them first."""
        return sorted(name for name, prim in all_primitives().items()
                      if name not in self and prim.kind != Kind.COMPOSITE)


def reject_epilogue(node, backend: str):
    """Training graphs fuse an epilogue into max_pool_grad (passes/fuse_epilogue.py); only
    the Numba CPU backend runs them, and lowers it. Elsewhere that is an error, not a
    plain pool gradient."""
    if node.attrs.get("epilogue"):
        raise KcompileError(f"{backend} backend: {node.op} ({node.meta.get('layer', node.output.name)}) has a fused "
                            "epilogue, which only the Numba CPU backend lowers (training graphs)")


def tuple_text(items) -> str:
    items = [str(i) for i in items]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def index_text(names) -> str:
    """The subscript of an element: "i0, i1", or "0" for a rank-0 array."""
    return ", ".join(names) if names else "0"


def identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def unique_name(base: str, taken: set, separator: str, first: int) -> str:
    """`base`, or else base + separator + the first free number from `first` on; the
    name returned is added to `taken`."""
    name, k = base, first
    while name in taken:
        name = f"{base}{separator}{k}"
        k += 1
    taken.add(name)
    return name


# Constant pools: one flat array per dtype, passed to the generated `bind` as W, WI, WL.
POOLS = {"float32": "W", "int32": "WI", "int64": "WL"}
POOL_ALIGN = 16  # elements


class ConstantPool:
    def __init__(self):
        self.chunks = {dtype: [] for dtype in POOLS}
        self.sizes = {dtype: 0 for dtype in POOLS}

    def add(self, array: np.ndarray) -> str:
        """Store a constant; returns the expression that views it inside `bind`."""
        dtype = str(array.dtype)
        if dtype not in POOLS:
            raise ValueError(f"constants of dtype {dtype} are not supported")
        array = np.ascontiguousarray(array)
        start = self.sizes[dtype]
        self.chunks[dtype].append((start, array.reshape(-1)))
        self.sizes[dtype] = start + -(-max(array.size, 1) // POOL_ALIGN) * POOL_ALIGN
        view = f"{POOLS[dtype]}[{start}:{start + array.size}]"
        return f"{view}.reshape({tuple_text(array.shape)})" if array.ndim != 1 else view

    def arrays(self) -> dict:
        blobs = {}
        for dtype, name in POOLS.items():
            blob = np.zeros(max(self.sizes[dtype], POOL_ALIGN), dtype)
            for start, flat in self.chunks[dtype]:
                blob[start : start + flat.size] = flat
            blobs[name] = blob
        return blobs


def files_digest(folder: str, suffixes: tuple = (".py",)) -> str:
    """A hash of the source files in `folder`: part of a generated module's cache key,
    since a cache keyed by the generated code alone would miss changes to what it calls."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(suffixes):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:12]


def cache_root() -> str:
    return os.environ.get("KCOMPILE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kcompile")


def write_source(folder: str, source: str) -> str:
    """Write a generated module (atomically, only when it changed: Numba's cache is keyed
    by the file's timestamp). Returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "kernels.py")
    if not os.path.exists(path) or open(path).read() != source:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


_MODULES: dict = {}  # (path, name) -> module: a rebuilt model with new weights reuses its kernels


def load_module(path: str, name: str):
    key = (path, name)
    if key not in _MODULES:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[key] = module
    return _MODULES[key]
