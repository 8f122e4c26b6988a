"""Runs every example with its default settings (or --quick) one after another and
writes the table of examples/README.md: command, wall time, seconds per epoch, test
accuracy, and predict latency of the kcompile artifact and ONNX Runtime.

    python examples/run_all.py [--quick] [--compare-keras] [--out examples/results.md]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = ["mnist_mlp", "mnist_cnn", "cifar10_cnn", "cifar10_resnet", "pretrained_word_embeddings", "antirectifier"]


def run(name: str, extra: list, folder: str) -> tuple[float, dict]:
    out = os.path.join(folder, name)
    command = [sys.executable, os.path.join(HERE, f"{name}.py"), "--out", out, *extra]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "results.json")) as f:
        return seconds, json.load(f)


def row(name: str, extra: list, seconds: float, results: dict) -> str:
    trained = results["kcompile"]
    latency = results["latency_ms"]
    command = " ".join(["python examples/" + name + ".py", *extra])
    cells = [f"`{command}`", "stand-in" if results["stand_in"] else "real",
             f"{results['epochs']} × {results['batch_size']}", f"{seconds:.0f} s", f"{trained['epoch_s']:.2f} s",
             f"{trained['test_accuracy']:.2%}"]
    if "keras" in results:
        cells.append(f"{results['keras']['epoch_s']:.2f} s / {results['keras']['test_accuracy']:.2%}")
    batches = sorted(latency["kcompile artifact"], key=int)
    cells.append(" / ".join(batches))
    for runner in ("kcompile artifact", "ONNX Runtime (model.onnx)", "Keras (trained.keras)"):
        cells.append(" / ".join(f"{latency[runner][b]:.3f}" for b in batches))
    return "| " + " | ".join(cells) + " |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compare-keras", action="store_true")
    parser.add_argument("--out", help="write the Markdown table here too")
    args = parser.parse_args()
    extra = (["--quick"] if args.quick else []) + (["--compare-keras"] if args.compare_keras else [])
    header = ["command", "data", "epochs × batch", "wall time", "s/epoch", "test accuracy"]
    if args.compare_keras:
        header.append("Keras fit: s/epoch / accuracy")
    header += ["predict batch", "kcompile artifact ms", "ONNX Runtime ms", "Keras ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with tempfile.TemporaryDirectory() as folder:
        for name in EXAMPLES:
            seconds, results = run(name, extra, folder)
            lines.append(row(name, extra, seconds, results))
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
