"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import os
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
    t = median_time(lambda: a @ b, seconds=2.0)
    return 2 * n**3 / t / 1e9
