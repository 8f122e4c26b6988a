"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def set_threads(threads: int):
    """The same thread count for every framework in this process."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import numba
    import tensorflow as tf

    numba.set_num_threads(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def benchmark_arguments(doc: str, models: list, seconds: float, out: str) -> argparse.ArgumentParser:
    """The options every model benchmark takes (callers add their own)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(models))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--out", default=out)
    return parser


def median_time(fn, seconds: float = 1.0, min_runs: int = 5) -> float:
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < seconds and len(times) < 5000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def best_of_rounds(measures: dict, rounds: int) -> dict:
    """name -> the smallest of `rounds` results of measures[name]() (each a median time),
    the measures taking turns round by round: on a shared machine the load changes during
    a run, and alternating spreads it evenly over what is compared."""
    best = {name: float("inf") for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            best[name] = min(best[name], measure())
    return best


def gemm_peak(n: int = 2048) -> float:
    """float32 GEMM GFLOP/s with NumPy's BLAS: the machine's practical peak."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    t = min(median_time(lambda: a @ b, seconds=0.7) for _ in range(3))  # a burst of load only ever slows it
    return 2 * n**3 / t / 1e9


HERE = os.path.dirname(os.path.abspath(__file__))


def run_worker(task: dict, threads: int) -> dict:
    """Run a measurement of worker.py in a fresh Python process (compile times, peak
    memory, ONNX Runtime alone)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
    result = subprocess.run([sys.executable, os.path.join(HERE, "worker.py"), json.dumps(task)],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def ort_time(onnx_path: str, saved_inputs: str, seconds: float, threads: int) -> float:
    """ONNX Runtime's median time on the inputs saved in `saved_inputs` (np.savez, in the
    session's input order), in a fresh process that runs nothing else."""
    result = run_worker({"task": "ort_time", "onnx": onnx_path, "inputs": saved_inputs, "seconds": seconds,
                         "threads": threads}, threads)
    if "error" in result:
        raise RuntimeError(f"ONNX Runtime on {onnx_path}: {result['error']}")
    return result["seconds"]
