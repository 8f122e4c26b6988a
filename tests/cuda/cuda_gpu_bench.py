"""Times the CUDA backend against the Numba CPU backend on the seed models at their real
sizes, side by side in one process (needs a GPU; prints one JSON line):

    python tests/cuda/cuda_gpu_bench.py [--batches 1,128] [--repeat 20]

For each model and batch size: the median wall time of one call (host to device, the
kernels, device to host, as CompiledModel.predict sees it) on each backend, their ratio,
and the first call's time on the GPU (kernel compilation, or loading numba-cuda's cache).
Written for a session that is lent a GPU; there are no timing assertions anywhere."""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from cuda_seed_graphs import FULL_SIZE, sample_inputs  # noqa: E402
from kcompile.codegen.numba_cpu.compiler import compile_graph as compile_cpu  # noqa: E402
from kcompile.codegen.numba_cuda import compile_graph as compile_cuda  # noqa: E402
from kcompile.codegen.numba_cuda import cuda_status  # noqa: E402
from kcompile.passes import run_pipeline  # noqa: E402


def median_time(program, inputs, batch, repeat) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        program(inputs, batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(args):
    ok, why = cuda_status()
    if not ok:
        print(json.dumps({"error": why}))
        return 2
    batches = [1, 128]
    repeat = 20
    for i, arg in enumerate(args):
        if arg == "--batches":
            batches = [int(b) for b in args[i + 1].split(",")]
        if arg == "--repeat":
            repeat = int(args[i + 1])
    results = {}
    for name, build in FULL_SIZE.items():
        graph = run_pipeline(build())
        start = time.perf_counter()
        gpu = compile_cuda(graph)
        cpu = compile_cpu(graph)
        for batch in batches:
            x = sample_inputs(graph, batch)
            first = time.perf_counter()
            gpu(x, batch)  # compiles the kernels on first use
            first = time.perf_counter() - first
            cpu(x, batch)
            t_gpu, t_cpu = median_time(gpu, x, batch, repeat), median_time(cpu, x, batch, repeat)
            results[f"{name}@{batch}"] = {"gpu_ms": round(t_gpu * 1e3, 3), "cpu_ms": round(t_cpu * 1e3, 3),
                                          "gpu_over_cpu": round(t_gpu / t_cpu, 3), "first_gpu_call_s": round(first, 2)}
        results[f"{name}:build_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
