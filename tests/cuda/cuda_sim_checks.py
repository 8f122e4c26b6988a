"""Runs the CUDA backend's checks and prints one JSON line of results.

Started by test_numba_cuda_backend.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (numba
reads it once, at import, and other tests in the pytest process use numba for the CPU):

    NUMBA_ENABLE_CUDASIM=1 python tests/cuda/cuda_sim_checks.py [check-name-prefix ...]
    python tests/cuda/cuda_sim_checks.py --gpu [check-name-prefix ...]   # on a real GPU

Checks: every primitive example against the interpreter (batch 1 and the example's
batch), the seed models' architectures at tiny sizes after the inference passes (batch 1
and 3; the convolution-free ones also at full size, batch 1; with --gpu all six at full
size, batch 1 and 64), edge cases, and the runtime (CompiledModel.predict, bad gather
indices, device residency)."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # cuda_seed_graphs, and tests/ for support.*

import numpy as np  # noqa: E402

from cuda_seed_graphs import FULL_SIZE, SEED_GRAPHS, SIMULATED_FULL_SIZE, edge_graphs, sample_inputs  # noqa: E402
from kcompile.codegen.numba_cuda import compile_graph  # noqa: E402
from kcompile.ir import interpret  # noqa: E402
from kcompile.passes import run_pipeline  # noqa: E402
from support.primitive_examples import EXAMPLES, build_example_graph  # noqa: E402


def serialize_shared_allocations():
    """numba-cuda's simulator creates a block's shared array when the first of its threads
    reaches the declaring line, without a lock (look up, then insert): two threads switched
    in between get two different arrays, and the kernel computes garbage. Rare, but the
    short switch interval above makes it happen now and then. Allocate under a lock, keyed
    as the simulator keys them (the caller's file and line)."""
    from numba.cuda.simulator import kernelapi

    shared = kernelapi.FakeCUDAShared
    if not hasattr(shared(0), "_allocations"):
        return  # a simulator that no longer works this way
    original, lock = shared.array, threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory, or an error: unchanged
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            result = self._allocations.get(key)
            if result is None:
                result = self._allocations[key] = np.empty(shape, dtype)
        return result

    shared.array = array


def compare(got, expected, what):
    """|y - ref| <= 1e-5 + 1e-4 |ref|, outputs one by one."""
    if len(got) != len(expected):
        raise AssertionError(f"{what}: {len(got)} outputs, expected {len(expected)}")
    for k, (y, ref) in enumerate(zip(got, expected)):
        if y.shape != ref.shape or y.dtype != ref.dtype:
            raise AssertionError(f"{what} output {k}: {y.dtype}{y.shape}, expected {ref.dtype}{ref.shape}")
        with np.errstate(invalid="ignore"):
            excess = np.abs(y.astype(np.float64) - ref) - (1e-5 + 1e-4 * np.abs(ref.astype(np.float64)))
        excess = np.where(y == ref, -1.0, excess)  # equal infinities
        if excess.size and not excess.max() <= 0:
            i = tuple(int(j) for j in np.unravel_index(np.nanargmax(excess), excess.shape))
            raise AssertionError(f"{what} output {k}: y{list(i)} = {float(y[i])!r}, expected {float(ref[i])!r}")


def check_primitive(op):
    for n, (inputs, attrs) in enumerate(EXAMPLES[op]):
        graph, arrays = build_example_graph(op, inputs, attrs)
        program = compile_graph(graph)  # unoptimized: the primitive on its own
        full = arrays[0].shape[0] if arrays else 1
        for batch in sorted({1, full}):
            cut = [a[:batch] for a in arrays]
            compare(program(cut, batch), interpret(graph, cut), f"{op}[{n}] batch {batch}")


def check_seed(name, builders=SEED_GRAPHS, batches=(1, 3)):
    graph = builders[name]()
    optimized = run_pipeline(graph)
    program = compile_graph(optimized)
    for batch in batches:
        x = sample_inputs(graph, batch, seed=batch)
        compare(program(x, batch), interpret(graph, x), f"{name} batch {batch}")


def check_edge(name):
    graph = edge_graphs()[name]
    program = compile_graph(graph)
    for batch in (1, 3):
        rng = np.random.default_rng(batch)
        x = [rng.integers(0, 6, v.type.concrete(batch)).astype(v.dtype) if v.dtype.startswith("int")
             else rng.normal(size=v.type.concrete(batch)).astype(np.float32) for v in graph.inputs]
        compare(program(x, batch), interpret(graph, x), f"{name} batch {batch}")


def check_predict():
    """CompiledModel over a CudaProgram: predict in batches, __call__, an empty batch."""
    from kcompile.runtime import CompiledModel

    graph = SEED_GRAPHS["mnist_mlp"]()
    optimized = run_pipeline(graph)
    model = CompiledModel(graph, optimized, compile_graph(optimized), "cuda")
    x = sample_inputs(graph, 5)[0]
    expected = interpret(graph, [x])
    compare([model.predict(x, batch_size=2, verbose=0)], expected, "predict(batch_size=2)")
    compare([model(x)], expected, "__call__")
    compare([model(x[:2])], interpret(graph, [x[:2]]), "__call__ again, batch 2")
    empty = model.predict(x[:0], verbose=0)
    assert empty.shape == (0, 10), empty.shape


def check_gather_out_of_range():
    graph = SEED_GRAPHS["pretrained_word_embeddings"]()
    program = compile_graph(run_pipeline(graph))
    x = sample_inputs(graph, 2)
    bad = [x[0].copy()]
    bad[0][1, 3] = 50  # the table has 50 rows
    try:
        program(bad, 2)
    except IndexError as e:
        assert "out of range" in str(e), e
    else:
        raise AssertionError("an out-of-range Embedding index did not raise")
    compare(program(x, 2), interpret(graph, x), "a good call after a bad one")


def check_device_residency():
    """Weights are copied to the device once; the arena is bound once per batch size."""

    graph = SEED_GRAPHS["mnist_mlp"]()
    program = compile_graph(run_pipeline(graph))
    on_device = lambda a: hasattr(a, "copy_to_host") and not isinstance(a, np.ndarray)  # noqa: E731
    assert all(on_device(p) for p in program.pools.values())
    x = sample_inputs(graph, 2)
    first = program.bound(2)
    program(x, 2)
    program(x, 2)
    assert program.bound(2) is first
    assert on_device(first[0][0]) and on_device(first[2][0])


CHECKS = {
    **{f"primitive:{op}": (lambda op=op: check_primitive(op)) for op in sorted(EXAMPLES)},
    **{f"seed:{name}": (lambda name=name: check_seed(name)) for name in SEED_GRAPHS},
    **{f"full_size:{name}": (lambda name=name: check_seed(name, FULL_SIZE, (1,))) for name in SIMULATED_FULL_SIZE},
    **{f"edge:{name}": (lambda name=name: check_edge(name))
       for name in ("infinities", "moved_batch", "batch_factor", "int64_and_static")},
    "runtime:predict": check_predict,
    "runtime:gather_out_of_range": check_gather_out_of_range,
    "runtime:device_residency": check_device_residency,
}


GPU_CHECKS = {
    **{name: check for name, check in CHECKS.items() if not name.startswith("full_size:")},
    **{f"full_size:{name}": (lambda name=name: check_seed(name, FULL_SIZE, (1, 64))) for name in FULL_SIZE},
}


def main(args):
    from kcompile.codegen.numba_cuda.availability import cuda_status, simulator_enabled

    gpu = "--gpu" in args
    prefixes = [a for a in args if a != "--gpu"]
    if gpu:
        ok, why = cuda_status()
        if not ok or simulator_enabled():
            print(json.dumps({"error": why or "--gpu with NUMBA_ENABLE_CUDASIM=1 set"}))
            return 0  # a report: the caller decides (the tests skip)
    elif not simulator_enabled():
        print(json.dumps({"error": "NUMBA_ENABLE_CUDASIM=1 is not set (or pass --gpu)"}))
        return 0
    else:
        # Each CUDA thread is a Python thread that blocks at every barrier; a short switch
        # interval makes the simulator's barrier polling several times faster.
        sys.setswitchinterval(1e-4)
        serialize_shared_allocations()
    results = {}
    for name, check in (GPU_CHECKS if gpu else CHECKS).items():
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        start = time.perf_counter()
        try:
            check()
            results[name] = {"ok": True, "detail": ""}
        except Exception as e:  # noqa: BLE001  (reported per check)
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            results[name] = {"ok": False, "detail": f"{detail}\n{traceback.format_exc(limit=-4)}"}
        results[name]["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
