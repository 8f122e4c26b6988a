"""Compiles every generated kernel to PTX for a real GPU (sm_90), without one: numba-cuda
type-checks the kernel in nopython mode, NVVM compiles it. Catches what the simulator
cannot (it runs kernels as plain Python): untyped constructs, unsupported calls, and
float64 arithmetic creeping into float32 kernels. Needs the CUDA toolkit's NVVM and
NVRTC (pip install 'cuda-toolkit[nvvm,nvrtc]'); no driver, no simulator.

    python tests/cuda/cuda_ptx_check.py     # prints one JSON line

Kernels are typed from a bind() run over host arrays of the same shapes and dtypes as
the device views (the generated module's `cuda` swapped for NumPy allocators there)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numba  # noqa: E402
import numpy as np  # noqa: E402

from cuda_seed_graphs import SEED_GRAPHS, edge_graphs  # noqa: E402
from kcompile.codegen.numba_cuda.compiler import generate_source, load_module  # noqa: E402
from kcompile.codegen.numba_cuda.tuning import GPU  # noqa: E402
from kcompile.passes import plan_memory, run_pipeline  # noqa: E402
from support.primitive_examples import build_combined_graph  # noqa: E402

HOST_CUDA = types.SimpleNamespace(device_array=lambda shape, dtype: np.empty(shape, dtype), to_device=np.array)


def kernel_signatures(graph, folder, batches=(1, 64)) -> dict:
    """(kernel name, argument types) -> kernel, for every launch at each batch size
    (batch 1 takes the skinny matrix products, 64 the tiled ones)."""
    plan = plan_memory(graph)
    source, pools, _ = generate_source(graph, plan, GPU)
    path = os.path.join(folder, f"{graph.name}.py")
    with open(path, "w") as f:
        f.write(source)
    module = load_module(path, f"kcompile_ptx_{graph.name}")
    bind = types.FunctionType(module.bind.__code__, {**module.__dict__, "cuda": HOST_CUDA})
    found = {}
    for batch in batches:
        arena = np.zeros(max(plan.arena_bytes(batch), 64), np.uint8)
        _, steps, _, _ = bind(batch, arena, pools["W"], pools["WI"], pools["WL"])
        for kernel, _grid, _block, args in steps:
            signature = tuple(numba.typeof(a) for a in args)
            found.setdefault((kernel.py_func.__name__, signature), kernel)
    return found


def probe(cuda):
    """None when kernels compile to PTX here, else why not (no NVVM or NVRTC library)."""

    def kernel(a):
        a[0] = 1

    try:
        cuda.compile_ptx(kernel, (numba.float32[::1],), cc=(9, 0))
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    return None


def main():
    from numba import cuda

    missing = probe(cuda)
    if missing:
        print(json.dumps({"unavailable": missing}))
        return

    graphs = [build_combined_graph()[0]] + [run_pipeline(build()) for build in SEED_GRAPHS.values()]
    graphs += list(edge_graphs().values())
    results = {"compiled": 0, "failures": {}, "float64": {}}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for graph in graphs:
            for (name, signature), kernel in kernel_signatures(graph, folder).items():
                key = f"{graph.name}.{name}"
                try:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
                except Exception as e:  # noqa: BLE001  (reported per kernel)
                    results["failures"][key] = f"{type(e).__name__}: {str(e)[:1500]}"
                    continue
                results["compiled"] += 1
                wide = [line.strip() for line in ptx.splitlines() if ".f64" in line]
                if wide:
                    results["float64"][key] = wide[:3]
    results["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
