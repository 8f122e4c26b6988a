"""Training step time: kcompile's compiled training step against Keras's fit step
(TensorFlow backend, plain and jit_compile=True), side by side, in one run.

    python benchmarks/train.py                          # batch 128, 2 threads
    python benchmarks/train.py --models mnist_mlp --seconds 1 --rounds 3
    python benchmarks/train.py --models mnist_cnn --profile   # where a step's time goes

Each framework runs in a fresh process of its own (TensorFlow's idle threads slowed
kcompile's steps in a shared one): it trains 5 steps and its peak resident memory is
read. Then the three processes take turns, round by round: in each round each one
times steady-state train_on_batch steps on the same batch for --seconds (the median
step) while the others wait; a framework's time is the best of its rounds. On a shared
machine whose speed changes from minute to minute (2x on this one), turns spread those
changes evenly over what is compared, and a burst of load only ever slows a round.
kcompile runs once before, on an empty cache, to compile and cache the step (its peak
memory is reported apart); the measured process loads it from that cache, as every run
after a user's first.
Results go to stdout and to --out as Markdown."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from measure import benchmark_arguments, gemm_peak, median_time, set_threads  # noqa: E402
from models import build_model  # noqa: E402

MODELS = ["mnist_mlp", "mnist_cnn", "cifar10_cnn", "cifar10_resnet", "antirectifier"]
OPTIMIZER = {"class_name": "Adam", "config": {"learning_rate": 1e-3}}


def batch_for(model, batch: int):
    rng = np.random.default_rng(0)
    x = rng.random((batch,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
    return x, rng.integers(0, 10, batch)


def worker_environment(path: str, args) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(args.threads), "NUMBA_NUM_THREADS": str(args.threads),
            "KCOMPILE_CACHE": os.path.join(os.path.dirname(path), "kcompile-cache")}  # empty when the run starts


class Worker:
    """One framework in a fresh process (in one process with the other framework, each
    one's idle thread pools took cores from the other: kcompile's step measured up to
    1.9x slower with TensorFlow loaded). It sets up and trains 5 steps, reports its
    setup (peak memory, ...), then times steps each time it is asked."""

    def __init__(self, kind: str, path: str, name: str, args):
        task = json.dumps({"kind": kind, "path": path, "name": name, "batch": args.batch, "threads": args.threads})
        self.log = tempfile.TemporaryFile("w+")  # not a pipe: a full one would stop the worker
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", task], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        env=worker_environment(path, args))
        self.setup = self._reply()

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        try:
            return json.loads(line)
        except ValueError:
            self.process.kill()
            self.log.seek(0)
            lines = self.log.read().strip().splitlines()
            return {"error": lines[-1][:120] if lines else f"exit status {self.process.wait()}"}

    def time(self, seconds: float) -> float | None:
        """The median step over `seconds` (None once the worker has failed)."""
        if "error" in self.setup:
            return None
        self.process.stdin.write(f"{seconds}\n")
        self.process.stdin.flush()
        return self._reply().get("seconds")

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()
        self.log.close()


def register_custom_layers():
    """kcompile compiles the seed's custom layer from its registered lowering (README,
    "Custom layers"), as a user who wants no TensorFlow would: tracing the Keras class
    instead imports TensorFlow (about 500 MB more peak memory)."""
    import kcompile
    from kcompile import zoo

    kcompile.register_layer("Antirectifier")(zoo.antirectifier_lowering)


def worker(task: dict):
    """In this fresh process: train 5 steps and report the peak resident memory (MB) as
    a JSON line; then, for each number of seconds read from stdin, the median time of
    steady-state steps over that long. The kcompile process imports neither Keras nor
    TensorFlow, as a user's would not."""
    result = {}
    if task["kind"] == "kcompile":
        import kcompile
        from kcompile.report import count_flops

        register_custom_layers()  # threads: NUMBA_NUM_THREADS, set by worker_environment
        model = kcompile.compile(task["path"])
        model.compile(optimizer=OPTIMIZER, loss="sparse_categorical_crossentropy")
        shape = model.inputs[0].type.concrete(task["batch"])
    else:
        import keras
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(task["threads"])  # not measure.set_threads: no Numba here
        tf.config.threading.set_inter_op_parallelism_threads(1)

        from kcompile import zoo

        keras.utils.set_random_seed(0)
        custom = {"Antirectifier": zoo.antirectifier_layer_class(keras)} if task["name"] == "antirectifier" else None
        model = keras.models.load_model(task["path"], custom_objects=custom)
        model.compile(optimizer=keras.optimizers.deserialize(OPTIMIZER), loss="sparse_categorical_crossentropy",
                      jit_compile=task["kind"] == "keras_xla")
        shape = (task["batch"],) + tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    x, y = rng.random(shape).astype(np.float32), rng.integers(0, 10, task["batch"])
    for _ in range(5):
        model.train_on_batch(x, y)
    with open("/proc/self/status") as f:
        result["memory"] = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    if task["kind"] == "kcompile":  # the same products Keras's step runs
        result["gflop"] = count_flops(model.trainer.graph, task["batch"]) / 1e9
    print(json.dumps(result), flush=True)
    for line in sys.stdin:
        print(json.dumps({"seconds": median_time(lambda: model.train_on_batch(x, y), float(line))}), flush=True)


KINDS = ("kcompile", "keras", "keras_xla")


def bench(name: str, folder: str, args) -> dict:
    """The three frameworks' processes set up one after the other, then take turns."""
    keras_model, _ = build_model(name)
    path = os.path.join(folder, f"{name}.keras")
    keras_model.save(path)
    row = {"model": name}
    # kcompile's first run, on an empty cache, measures its convolutions' algorithms,
    # compiles the step (Numba and LLVM: a higher peak) and caches it; the measured
    # process loads it from that cache, as every run after a user's first does.
    first = Worker("kcompile", path, name, args)
    first.close()
    row["memory_kcompile_first"] = first.setup.get("memory")
    workers = {kind: Worker(kind, path, name, args) for kind in KINDS}  # XLA cannot compile some models: its row says why
    try:
        times = {kind: [] for kind in KINDS}
        for _ in range(args.rounds):
            for kind, w in workers.items():
                times[kind].append(w.time(args.seconds))
    finally:
        for w in workers.values():
            w.close()
    for kind, w in workers.items():
        measured = [t for t in times[kind] if t is not None]
        row[kind] = min(measured) if measured else None
        row[f"memory_{kind}"] = w.setup.get("memory")
        row["gflop"] = w.setup.get("gflop", row.get("gflop"))
        if "error" in w.setup:
            row[f"{kind}_error"] = w.setup["error"]
    row["round_ratios"] = [c / k for c, k in zip(times["kcompile"], times["keras"]) if c and k]
    return row


def profile(name: str, args, top: int = 25) -> str:
    """The slowest steps of kcompile's compiled training step for `name` (median times
    of each step run alone), and the optimizer update."""
    import kcompile

    keras_model, _ = build_model(name)
    with tempfile.TemporaryDirectory(prefix="kcompile-train-profile-") as folder:
        path = os.path.join(folder, f"{name}.keras")
        keras_model.save(path)
        register_custom_layers()
        compiled = kcompile.compile(path)
    compiled.compile(optimizer=OPTIMIZER, loss="sparse_categorical_crossentropy")
    x, y = batch_for(keras_model, args.batch)
    compiled.train_on_batch(x, y)  # compiles the training step
    steps = compiled.trainer.profile([x], [y.astype(np.int32)], args.batch)
    lines = [f"{name}, batch {args.batch}: {sum(t for _, t in steps) * 1e3:.1f} ms in all; by pass:"]
    totals: dict = {}
    for label, t in steps:
        totals[pass_of(label)] = totals.get(pass_of(label), 0.0) + t
    lines += [f"  {t * 1e3:8.3f} ms  {kind}" for kind, t in sorted(totals.items(), key=lambda s: -s[1])]
    lines.append("the slowest steps:")
    lines += [f"  {t * 1e3:8.3f} ms  {label}" for label, t in sorted(steps, key=lambda s: -s[1])[:top]]
    return "\n".join(lines)


def pass_of(label: str) -> str:
    """What a profiled step is, from its label ("<layer>: <what>")."""
    what = label.split(": ", 1)[-1]
    if what.startswith("f32[") and " @ " in what:
        return "matrix products"
    for start, kind in (("conv_transpose", "input gradients (conv_transpose)"), ("conv ", "convolutions"),
                        ("kernel gradient", "kernel gradients"), ("optimizer", "optimizer update")):
        if what.startswith(start):
            return kind
    return "everything else (elementwise, reductions, pooling, ...)"


def markdown(rows, batch: int, threads: int, peak: float) -> str:
    def ms(t):
        return "n/a" if t is None else f"{t * 1e3:.1f} ms"

    def ratio(a, b):
        return "n/a" if a is None or b is None else f"{a / b:.2f}"

    def mb(m):
        return "n/a" if m is None else f"{m:.0f} MB"

    out = [f"Training step at batch {batch}, {threads} threads (Adam, sparse categorical crossentropy): the "
           "median steady-state train_on_batch step, best of the rounds the frameworks take in turns. "
           "Ratios: kcompile time / Keras time.", "",
           "| model | kcompile step | Keras fit step | ratio | ratio in each round | Keras fit step, jit_compile | ratio | "
           "peak RSS kcompile | peak RSS Keras | memory ratio | peak RSS kcompile, first run (compiling) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rounds = r.get("round_ratios") or []
        spread = f"{min(rounds):.2f}–{max(rounds):.2f}" if rounds else "n/a"
        out.append(f"| {r['model']} | {ms(r['kcompile'])} | {ms(r['keras'])} | {ratio(r['kcompile'], r['keras'])} | "
                   f"{spread} | {ms(r['keras_xla'])} | {ratio(r['kcompile'], r['keras_xla'])} | {mb(r['memory_kcompile'])} | "
                   f"{mb(r['memory_keras'])} | {ratio(r['memory_kcompile'], r['memory_keras'])} | "
                   f"{mb(r.get('memory_kcompile_first'))} |")
    out += ["", f"The step's matrix products and convolutions (forward and backward) against the machine's float32 "
            f"GEMM peak (NumPy, {threads} threads): {peak:.0f} GFLOP/s. A step at half of Keras's time has to run "
            "them at the rate in the \"needed\" columns, the rest of the step taking no time at all.", "",
            "| model | GFLOP per step | kcompile GFLOP/s | Keras GFLOP/s | needed for 0.5x Keras | "
            "Keras jit_compile GFLOP/s | needed for 0.5x Keras jit_compile |", "|---|---|---|---|---|---|---|"]

    def rates(seconds, gflop):
        return "n/a | n/a |" if seconds is None else f"{gflop / seconds:.0f} | {2 * gflop / seconds:.0f} |"

    for r in (r for r in rows if r.get("gflop") and r["kcompile"]):
        out.append(f"| {r['model']} | {r['gflop']:.2f} | {r['gflop'] / r['kcompile']:.0f} | "
                   f"{rates(r['keras'], r['gflop'])} {rates(r['keras_xla'], r['gflop'])}")
    errors = [f"- {r['model']}, {kind}: {r[kind + '_error']}" for r in rows for kind in ("kcompile", "keras", "keras_xla")
              if kind + "_error" in r]
    return "\n".join(out + ([""] + errors if errors else []))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
        return
    parser = benchmark_arguments(__doc__, MODELS, 1.0, os.path.join(HERE, "train_results.md"))
    parser.add_argument("--rounds", type=int, default=5, help="turns each framework takes (the best one counts)")
    parser.add_argument("--profile", action="store_true",
                        help="instead: where kcompile's training step spends its time, per step")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.profile:
        for name in args.models.split(","):
            print(profile(name, args))
        return
    peak = gemm_peak()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kcompile-train-bench-") as folder:
        for name in args.models.split(","):
            rows.append(bench(name, folder, args))
            print(f"# {name} done", file=sys.stderr, flush=True)
    text = f"Command: `python benchmarks/train.py {' '.join(sys.argv[1:])}`\n\n{markdown(rows, args.batch, args.threads, peak)}\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
