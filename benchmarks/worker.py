"""Measurements that need a fresh process: compile time, peak memory, and ONNX Runtime's
latency with nothing else in the process (no other thread pool spinning on the same
cores). Prints one JSON line. Run by benchmarks/run.py and native_bench.py."""
import json
import os
import resource
import sys
import tempfile
import time


def peak_mb() -> float:
    """This process's peak resident memory. (ru_maxrss would include the parent's peak:
    Linux keeps it across exec; VmHWM belongs to the new address space.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    task = json.loads(sys.argv[1])
    kind = task["task"]
    import numpy as np

    if kind == "compile":
        # A model this machine has not compiled before: its own empty kernel cache (the
        # kernel library stays cached, as after the first use of kcompile).
        os.environ["KCOMPILE_CACHE"] = tempfile.mkdtemp(prefix="kcompile-cold-")
        import keras  # noqa: F401  (custom layers in the model need it; not timed)

        import kcompile
        from kcompile import zoo

        custom = {"Antirectifier": zoo.antirectifier_layer_class(keras)} if task["name"] == "antirectifier" else None
        start = time.perf_counter()
        model = kcompile.compile(task["path"], target=task.get("target", "cpu"), custom_objects=custom)
        x = [np.zeros(v.type.concrete(1), v.dtype) for v in model.inputs]
        model(x)
        result = {"seconds": time.perf_counter() - start}
    elif kind == "load":
        start = time.perf_counter()
        import kcompile

        imported = time.perf_counter()
        model = kcompile.load(task["artifact"])
        model([np.zeros(v.type.concrete(1), v.dtype) for v in model.inputs])
        result = {"seconds": time.perf_counter() - imported, "import_seconds": imported - start,
                  "recompiled": bool(getattr(model.program, "compiled_now", lambda: False)())}
    elif kind == "memory_kcompile":
        import kcompile

        model = kcompile.load(task["artifact"])
        x = [np.random.random(v.type.concrete(task["batch"])).astype(v.dtype) for v in model.inputs]
        for _ in range(3):
            model(x)
        result = {"peak_mb": peak_mb()}
    elif kind == "memory_ort":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = task["threads"]
        session = ort.InferenceSession(task["onnx"], options, providers=["CPUExecutionProvider"])
        feeds = {}
        for i in session.get_inputs():
            shape = [task["batch"] if not isinstance(d, int) else d for d in i.shape]
            dtype = np.int32 if "int32" in i.type else np.int64 if "int64" in i.type else np.float32
            feeds[i.name] = np.random.random(shape).astype(dtype)
        for _ in range(3):
            session.run(None, feeds)
        result = {"peak_mb": peak_mb()}
    elif kind == "ort_time":
        import onnxruntime as ort

        from measure import median_time

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = task["threads"], 1
        session = ort.InferenceSession(task["onnx"], options, providers=["CPUExecutionProvider"])
        with np.load(task["inputs"]) as saved:
            arrays = [saved[f"arr_{k}"] for k in range(len(saved.files))]
        feeds = dict(zip([i.name for i in session.get_inputs()], arrays))
        result = {"seconds": median_time(lambda: session.run(None, feeds), task["seconds"])}
    else:
        raise SystemExit(f"unknown task {kind}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
