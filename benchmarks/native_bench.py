"""The native library (called from a C program) against kcompile's Python predict and
ONNX Runtime, side by side in one run, at the same thread count (default 2).

    python benchmarks/native_bench.py
    python benchmarks/native_bench.py --models mnist_mlp,cifar10_resnet --seconds 0.5

For each seed model: `kcompile.codegen.native.build_library` -> libNAME.so, timed by
kc_runner (a C program that dlopens the library; no Python in its process) at batch 1
(latency) and 128 (throughput); `kcompile.compile(path)(x)` (the Numba backend);
ONNX Runtime on `kcompile.export_onnx(path)` with intra_op_num_threads = threads, in
a fresh Python process that runs nothing else.
Ratios are native time / other time (below 1: the native library is faster). The three
are measured in alternating rounds and each keeps its best median (shared machines)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import best_of_rounds, median_time, ort_time, set_threads  # noqa: E402
from models import build_model, model_inputs  # noqa: E402

SEEDS = ["mnist_mlp", "mnist_cnn", "cifar10_cnn", "cifar10_resnet", "pretrained_word_embeddings", "antirectifier"]
BATCHES = (1, 128)


def native_time(runner: str, library: str, batch: int, seconds: float, threads: int) -> dict:
    time.sleep(0.5)  # let this process's thread pools (Numba's) stop spinning first
    result = subprocess.run([runner, library, "bench", str(batch), str(seconds), str(threads)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_model(name: str, folder: str, runner: str, args) -> list:
    import kcompile
    from kcompile.codegen.native import build_library
    from kcompile.report import count_flops

    model, custom = build_model(name)
    path = os.path.join(folder, f"{name}.keras")
    model.save(path)
    graph = kcompile.load_graph(path, custom_objects=custom)
    start = time.perf_counter()
    build = build_library(graph, os.path.join(folder, f"lib{name}.so"))
    build_seconds = time.perf_counter() - start
    compiled = kcompile.compile(path, custom_objects=custom)
    onnx_path = os.path.join(folder, f"{name}.onnx")
    kcompile.export_onnx(path, onnx_path, custom_objects=custom)
    rows = []
    for batch in BATCHES:
        inputs = model_inputs(model, batch)
        saved_inputs = os.path.join(folder, f"{name}.b{batch}.npz")
        np.savez(saved_inputs, *inputs)
        best = best_of_rounds({
            "native": lambda: native_time(runner, build.library, batch, args.seconds, args.threads)["median_ms"] / 1e3,
            "predict": lambda: median_time(lambda: compiled(inputs[0]), args.seconds),
            "ort": lambda: ort_time(onnx_path, saved_inputs, args.seconds, args.threads),
        }, args.rounds)
        t_native, t_predict, t_ort = best["native"], best["predict"], best["ort"]
        flops = count_flops(compiled.optimized, batch)
        rows.append({"model": name, "batch": batch, "native": t_native, "predict": t_predict, "ort": t_ort,
                     "gflops": flops / t_native / 1e9, "build_s": build_seconds})
    return rows


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def table(rows: list, threads: int) -> str:
    out = [f"Median times at {threads} threads (best of the alternating rounds); ratio = native / other (below 1: "
           "native faster). Batch 1 is latency, batch 128 throughput (samples/s).", "",
           "| model | batch | native (C program) | kcompile predict | ONNX Runtime | native / predict | "
           "native / ORT | native samples/s | native GFLOP/s | build |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['batch']} | {fmt(r['native'])} | {fmt(r['predict'])} | {fmt(r['ort'])} | "
                   f"{r['native'] / r['predict']:.2f} | {r['native'] / r['ort']:.2f} | "
                   f"{r['batch'] / r['native']:,.0f} | {r['gflops']:.1f} | {r['build_s']:.1f} s |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(SEEDS), help="comma-separated, from: " + ", ".join(SEEDS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best median of each counts")
    parser.add_argument("--out", help="also write the table (Markdown) here")
    args = parser.parse_args()
    set_threads(args.threads)
    from kcompile.codegen.native import build_runner

    rows = []
    with tempfile.TemporaryDirectory(prefix="kcompile-native-bench-") as folder:
        runner = build_runner(os.path.join(folder, "kc_runner"))
        for name in args.models.split(","):
            start = time.time()
            rows.extend(bench_model(name, folder, runner, args))
            print(f"# {name} done in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    text = table(rows, args.threads)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"Command: `python benchmarks/native_bench.py {' '.join(sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
