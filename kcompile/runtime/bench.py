"""Latency and throughput of a compiled model (`kcompile bench`)."""
from __future__ import annotations

import time

import numpy as np


def time_calls(fn, seconds: float = 1.0, min_runs: int = 5, max_runs: int = 10000) -> list:
    """Per-call wall times: at least min_runs, until `seconds` have passed."""
    fn()  # warm up
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < seconds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def sample_inputs(model, batch: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    arrays = []
    for v in model.inputs:
        shape = v.type.concrete(batch)
        if v.dtype.startswith("int"):
            arrays.append(rng.integers(0, 2, shape).astype(v.dtype))
        else:
            arrays.append(rng.normal(0, 1, shape).astype(v.dtype))
    return arrays


def measure(model, batches, seconds: float = 1.0) -> list:
    rows = []
    for batch in batches:
        inputs = sample_inputs(model, batch)
        times = time_calls(lambda: model(inputs), seconds)
        median = float(np.median(times))
        rows.append({"batch": batch, "median_s": median, "p90_s": float(np.percentile(times, 90)),
                     "samples_per_s": batch / median, "runs": len(times)})
    return rows


def format_bench(model, rows) -> str:
    lines = [f"{model.name} ({model.target})", f"{'batch':>6} {'median':>12} {'p90':>12} {'samples/s':>12} {'runs':>6}"]
    for r in rows:
        lines.append(f"{r['batch']:>6} {r['median_s'] * 1e3:>10.3f}ms {r['p90_s'] * 1e3:>10.3f}ms "
                     f"{r['samples_per_s']:>12,.0f} {r['runs']:>6}")
    return "\n".join(lines)
