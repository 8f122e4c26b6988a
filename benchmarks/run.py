"""kcompile against ONNX Runtime and TensorFlow, side by side, in one run.

    python benchmarks/run.py                      # the six seed models + ResNet50
    python benchmarks/run.py --models mnist_mlp --seconds 0.5

For each model at batch 1 and 128 (ResNet50: 1 and 32), with the same thread count
everywhere (default 2): kcompile's compiled model (the default Numba CPU target, and
target="native", the C library through ctypes), ONNX Runtime on Keras's own ONNX
export (`model.export(format="onnx")`) and on kcompile's export (each in a fresh
process that runs nothing else), TensorFlow
`model(x)`, `model.predict` and XLA (`jit_compile=True`). Then compile time (a new
model in a fresh process; an artifact loaded in a fresh process), peak memory of a
process predicting at batch 128 from the artifact vs from ONNX Runtime, kcompile's
GFLOP/s against the machine's float32 GEMM peak, and the ONNX node counts.
Results go to stdout and to --out as Markdown."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


from measure import best_of_rounds, gemm_peak, median_time, ort_time, run_worker, set_threads  # noqa: E402
from models import MODELS, build_model, model_inputs  # noqa: E402


def ort_optimized_ops(onnx_path: str, folder: str, threads: int) -> list:
    """The operators ONNX Runtime runs for a model: the op types of its optimized graph."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = threads, 3
    options.optimized_model_filepath = os.path.join(folder, "ort-optimized.onnx")
    ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]


def bench_model(name: str, folder: str, args) -> dict:
    import kcompile
    import tensorflow as tf

    from kcompile.report import count_flops

    keras_model, custom_objects = build_model(name)
    keras_model(model_inputs(keras_model, 1)[0])  # Keras's ONNX export needs a called model
    path = os.path.join(folder, f"{name}.keras")
    keras_model.save(path)
    batches = (1, 32) if name == "resnet50" else (1, 128)
    row = {"model": name, "batches": batches}

    compiled = kcompile.compile(path, custom_objects=custom_objects)
    artifact = os.path.join(folder, f"{name}.kc")
    compiled.save(artifact)
    native = kcompile.compile(path, target="native", custom_objects=custom_objects)
    native_artifact = os.path.join(folder, f"{name}.native.kc")
    native.save(native_artifact)
    kc_onnx = os.path.join(folder, f"{name}.kc.onnx")
    onnx_model = compiled.export_onnx(kc_onnx)
    row["onnx_nodes_kcompile"] = len(onnx_model.graph.node)
    keras_onnx = os.path.join(folder, f"{name}.keras.onnx")
    try:
        keras_model.export(keras_onnx, format="onnx", verbose=False)
        import onnx

        row["onnx_nodes_keras"] = len(onnx.load(keras_onnx).graph.node)
    except Exception as e:  # Keras's exporter fails on some models
        keras_onnx, row["keras_onnx_error"] = None, f"{type(e).__name__}: {str(e)[:80]}"

    exports = {"ort_kcompile": kc_onnx, "ort_keras": keras_onnx} if keras_onnx else {"ort_kcompile": kc_onnx}
    for key, onnx_path in exports.items():
        row[key + "_ops"] = ort_optimized_ops(onnx_path, folder, args.threads)
    xla = tf.function(keras_model, jit_compile=True)

    for batch in batches:
        inputs = model_inputs(keras_model, batch)
        feed = inputs[0]
        saved_inputs = os.path.join(folder, f"{name}.b{batch}.npz")
        np.savez(saved_inputs, *inputs)
        # What the ratios compare takes turns (best of the rounds); ONNX Runtime runs alone
        # in a fresh process; TensorFlow runs once.
        measures = {"kcompile": lambda: median_time(lambda: compiled(feed), args.seconds),
                    "native": lambda: median_time(lambda: native(feed), args.seconds)}
        for key, onnx_path in exports.items():
            measures[key] = lambda onnx_path=onnx_path: ort_time(onnx_path, saved_inputs, args.seconds, args.threads)
        times = best_of_rounds(measures, args.rounds)
        tensor = tf.constant(feed)
        times["tf_call"] = median_time(lambda: keras_model(tensor, training=False), args.seconds)
        times["tf_predict"] = median_time(lambda: keras_model.predict(feed, batch_size=batch, verbose=0), args.seconds)
        try:
            times["tf_xla"] = median_time(lambda: xla(tensor, training=False), args.seconds)
        except Exception:
            times["tf_xla"] = None
        times["gflops"] = count_flops(compiled.optimized, batch) / times["kcompile"] / 1e9
        row[f"b{batch}"] = times

    big = batches[-1]
    for suffix, target, built in (("", "cpu", artifact), ("_native", "native", native_artifact)):
        row["compile" + suffix] = run_worker({"task": "compile", "path": path, "name": name, "target": target},
                                             args.threads)
        row["load" + suffix] = run_worker({"task": "load", "artifact": built}, args.threads)
        row["memory_kcompile" + suffix] = run_worker({"task": "memory_kcompile", "artifact": built, "batch": big},
                                                     args.threads)
    row["memory_ort"] = run_worker({"task": "memory_ort", "onnx": keras_onnx or kc_onnx, "batch": big,
                                    "threads": args.threads}, args.threads)
    return row


def fmt_time(seconds) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def ratio(a, b) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}"


def markdown(rows, peak: float, threads: int, rounds: int) -> str:
    out = [f"Machine float32 GEMM peak (NumPy, {threads} threads): {peak:.0f} GFLOP/s. Median times; kcompile, "
           f"native and both ONNX Runtime columns: the best of {rounds} alternating rounds. Ratios are kcompile "
           "time / other time (below 1 is faster).", ""]
    out.append("| model | batch | kcompile | ORT (Keras export) | ratio | kcompile native | native ratio | "
               "ORT (kcompile export) | TF model(x) | TF predict | TF XLA | x faster than predict (Numba / native) | "
               "kcompile GFLOP/s (Numba / native) | % of peak |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for batch in r["batches"]:
            t = r[f"b{batch}"]
            out.append(
                f"| {r['model']} | {batch} | {fmt_time(t['kcompile'])} | {fmt_time(t.get('ort_keras'))} | "
                f"{ratio(t['kcompile'], t.get('ort_keras'))} | {fmt_time(t['native'])} | "
                f"{ratio(t['native'], t.get('ort_keras'))} | {fmt_time(t['ort_kcompile'])} | {fmt_time(t['tf_call'])} | "
                f"{fmt_time(t['tf_predict'])} | {fmt_time(t['tf_xla'])} | "
                f"{t['tf_predict'] / t['kcompile']:.0f} / {t['tf_predict'] / t['native']:.0f} | "
                f"{t['gflops']:.0f} / {t['gflops'] * t['kcompile'] / t['native']:.0f} | "
                f"{100 * t['gflops'] / peak:.0f}% / {100 * t['gflops'] * t['kcompile'] / t['native'] / peak:.0f}% |")
    out += ["", "Fresh processes: compile = a new model compiled and run once (an empty kcompile cache; "
            "Numba's kernel library cached); load = `kcompile.load` of the artifact and one run; peak RSS = "
            "loading the artifact (or the ONNX file in ONNX Runtime) and predicting at the large batch. "
            "Pairs are Numba / native.", "",
            "| model | compile, new model | artifact load | peak RSS kcompile | peak RSS ORT | memory ratio | "
            "ONNX nodes kcompile / Keras | nodes ORT runs kcompile / Keras | "
            "ORT on kcompile export / on Keras export (batch 1, large) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mo = r["memory_ort"]

        def pair(key, field, fmt):
            return " / ".join(fmt.format(r[key + s].get(field, float("nan"))) for s in ("", "_native"))

        def memory_ratio(suffix):
            return ratio(r["memory_kcompile" + suffix].get("peak_mb"), mo.get("peak_mb"))

        small, large = r["batches"]
        onnx_ratio = (f"{ratio(r[f'b{small}']['ort_kcompile'], r[f'b{small}'].get('ort_keras'))} / "
                      f"{ratio(r[f'b{large}']['ort_kcompile'], r[f'b{large}'].get('ort_keras'))}")
        out.append(
            f"| {r['model']} | {pair('compile', 'seconds', '{:.2f} s')} | {pair('load', 'seconds', '{:.2f} s')} | "
            f"{pair('memory_kcompile', 'peak_mb', '{:.0f} MB')} | {mo.get('peak_mb', float('nan')):.0f} MB | "
            f"{memory_ratio('')} / {memory_ratio('_native')} | "
            f"{r['onnx_nodes_kcompile']} / {r.get('onnx_nodes_keras', 'n/a')} | {ort_nodes(r)} | "
            f"{onnx_ratio} |")
    errors = [f"- {r['model']}: Keras ONNX export failed ({r['keras_onnx_error']})" for r in rows if "keras_onnx_error" in r]
    return "\n".join(out + ([""] + errors if errors else []))


def ort_nodes(row) -> str:
    """Node counts of the graphs ONNX Runtime runs after its optimizer; "same graph" when
    both exports become the same operators in the same order."""
    ours, theirs = row["ort_kcompile_ops"], row.get("ort_keras_ops")
    if theirs is None:
        return f"{len(ours)} / n/a"
    return f"{len(ours)} / {len(theirs)}" + (" (same graph)" if ours == theirs else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of kcompile and ONNX Runtime; the best median of each counts")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    args = parser.parse_args()
    set_threads(args.threads)
    peak = gemm_peak()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kcompile-bench-") as folder:
        for name in args.models.split(","):
            start = time.time()
            rows.append(bench_model(name, folder, args))
            print(f"# {name} done in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    text = markdown(rows, peak, args.threads, args.rounds)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    text = f"Command: `{command.strip()}`\n\n{text}\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"peak_gflops": peak, "rows": rows}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
