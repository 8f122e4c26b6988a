"""Convolution kernels: GFLOP/s of each algorithm the Numba backend has, on every
convolution a training step of the seed CNNs runs (forward, input gradient, kernel
gradient), against TensorFlow's kernels (oneDNN) for the same shapes, side by side in one
run at equal thread counts, with the machine's GEMM peak for scale.

    python benchmarks/conv.py                      # batch 128, 2 threads
    python benchmarks/conv.py --models mnist_cnn --seconds 0.5

The convolutions are taken from kcompile's training graph of each model; each is compiled
alone, once per algorithm (im2col + GEMM, direct accumulation, one GEMM per window tap,
implicit GEMM on a register-tiled micro-kernel, Winograd F(2x2, 3x3) and F(4x4, 3x3)),
and "tuned" is the one kcompile's measurement picks for it. Times are medians; results
go to stdout and to --out as Markdown."""
from __future__ import annotations

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from measure import benchmark_arguments, gemm_peak, median_time, set_threads  # noqa: E402
from models import build_model  # noqa: E402

MODELS = ["mnist_cnn", "cifar10_cnn", "cifar10_resnet"]
OPS = ("conv", "conv_transpose", "conv_weight_grad")
PASSES = {"conv": "forward", "conv_transpose": "input gradient", "conv_weight_grad": "kernel gradient"}
STRUCTURE = ("groups", "strides", "dilations", "pads", "window")  # attrs that define the op (not fused epilogues)


def training_convolutions(name: str, batch: int) -> list:
    """(layer, node) of every 2-D convolution in kcompile's training step for `name`."""
    import kcompile

    keras_model, custom = build_model(name)
    compiled = kcompile.compile(keras_model, custom_objects=custom)
    compiled.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.zeros((2,) + tuple(keras_model.inputs[0].shape[1:]), np.float32)
    compiled.train_on_batch(x, np.zeros(2, np.int64))
    graph = compiled.trainer.graph
    trainable = {v.name for v in graph.inputs}  # a layer's kernel (the training graph's inputs); not pooling's constants
    return [(node.meta.get("layer", "?"), node) for node in graph.nodes
            if node.op in OPS and node.inputs[0].rank == 4
            and (node.op == "conv_weight_grad" or node.inputs[1].name in trainable)]


def alone(node):
    """The op of `node` in a graph of its own: its first two operands as inputs, its
    structural attributes, no fused epilogue."""
    from kcompile.ir import GraphBuilder

    b = GraphBuilder(node.op)
    operands = [b.input(f"in{k}", v.type.shape, v.dtype) for k, v in enumerate(node.inputs[:2])]
    b.output([b.emit(node.op, *operands, **{k: v for k, v in node.attrs.items() if k in STRUCTURE})])
    return b.graph


def _geometry(window, attrs) -> tuple:
    """tuning's 12-number geometry (window, strides, dilations as 3-D; pads left 0)."""
    spatial = len(window)
    parts = [(1,) * (3 - spatial) + tuple(values) for values in (window, attrs["strides"], attrs["dilations"])]
    return sum(parts, ()) + (0, 0, 0)


def algorithms(graph) -> dict:
    """{name: method} of the algorithms that can run this op: tuning's candidates, with
    direct accumulation at every size (tuning skips it on large windows)."""
    from kcompile.codegen.numba_cpu import tuning
    from kcompile.codegen.numba_cpu.kernels import conv as C

    names = {C.IM2COL: "im2col", C.DIRECT: "direct", C.TAPS: "taps", C.IGEMM: "igemm", C.WINOGRAD_2: "winograd2",
             C.WINOGRAD_4: "winograd4"}
    node = graph.nodes[0]
    unit = all(s == 1 for s in node.attrs["strides"])
    if node.op == "conv_weight_grad":
        geometry = _geometry(node.attrs["window"], node.attrs)
        methods = tuning.weight_grad_candidates(geometry, node.inputs[0].shape[-1], node.output.shape[-1])
    elif node.op == "conv_transpose" and not unit:
        return {"scatter": None}  # strided: one kernel, no choice
    else:
        window = node.inputs[1].shape[:-2]
        geometry = _geometry(window, node.attrs)
        # A stride-1 conv_transpose runs as a convolution by its flipped kernel, (window * C, F).
        positions = int(np.prod(window))
        k = positions * (node.inputs[1].shape[-2] if node.op == "conv" else node.inputs[1].shape[-1])
        filters = node.inputs[1].shape[-1] if node.op == "conv" else node.inputs[1].shape[-2]
        methods = tuning.conv_candidates(geometry, k, filters, node.attrs.get("groups", 1), every_size=True)
    return {names[m]: m for m in methods}


@contextlib.contextmanager
def forced(method):
    """Compile with `method` in place of the measured choice (None: the measured one)."""
    from kcompile.codegen.numba_cpu import lowerings

    saved = lowerings.conv_method, lowerings.weight_grad_method
    if method is not None:
        lowerings.conv_method = lambda *args: method
        lowerings.weight_grad_method = lambda *args: method
    try:
        yield
    finally:
        lowerings.conv_method, lowerings.weight_grad_method = saved


def kcompile_time(graph, method, batch: int, seconds: float) -> float:
    """Median time of the compiled op's steps (the kernel flip of an input gradient
    included, as in training; not the copying in of inputs)."""
    from kcompile.codegen.numba_cpu.compiler import compile_graph

    rng = np.random.default_rng(0)
    arrays = {v.name: rng.random(v.type.concrete(batch), dtype=np.float32) for v in graph.inputs}
    kernels = {v.name: arrays[v.name] for v in graph.inputs if v.shape[0] is not None}  # bound, as training binds weights
    with forced(method):
        program = compile_graph(graph, external=kernels)
    inputs = [arrays[v.name] for v in graph.inputs if v.name not in kernels]
    program(inputs, batch)
    repeats = max(5, min(200, int(seconds / max(sum(t for _, t in program.profile(inputs, batch, 3)), 1e-6))))
    return sum(t for _, t in program.profile(inputs, batch, repeats))


def tensorflow_time(graph, batch: int, seconds: float) -> float:
    """The same pass with TensorFlow's own kernels (what Keras's fit runs)."""
    import tensorflow as tf

    node = graph.nodes[0]
    strides = (1,) + tuple(node.attrs["strides"]) + (1,)
    dilations = (1,) + tuple(node.attrs["dilations"]) + (1,)
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.random(v.type.concrete(batch), dtype=np.float32)) for v in graph.inputs)
    out_shape = node.outputs[0].type.concrete(batch)
    # The forward convolution's padding (a conv_transpose's crops are that padding, at
    # dilation 1), named as Keras names it: TensorFlow takes slower paths for "EXPLICIT".
    x_shape = out_shape if node.op == "conv_transpose" else a.shape
    pads = [(lo, max(hi, 0)) for lo, hi in node.attrs["pads"]]  # a negative crop: input cells no window reached
    padding, explicit = keras_padding(x_shape[1:3], pads, node.attrs["strides"], node.attrs.get("window") or b.shape[:2])
    if node.op == "conv":
        fn = tf.function(lambda: tf.nn.conv2d(a, b, strides, padding if padding != "EXPLICIT" else
                                              [(0, 0)] + pads + [(0, 0)], dilations=dilations))
    elif node.op == "conv_transpose":
        fn = tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=out_shape, filter=b, out_backprop=a, strides=strides, padding=padding,
            explicit_paddings=explicit, dilations=dilations))
    else:
        fn = tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=a, filter_sizes=out_shape, out_backprop=b, strides=strides, padding=padding,
            explicit_paddings=explicit, dilations=dilations))
    return median_time(lambda: fn().numpy(), seconds)


def keras_padding(spatial, pads, strides, window) -> tuple:
    """("VALID" | "SAME" | "EXPLICIT", explicit paddings) for a forward padding."""
    if all(lo == hi == 0 for lo, hi in pads):
        return "VALID", []
    same = []
    for n, s, k in zip(spatial, strides, window):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        same.append((total // 2, total - total // 2))
    if [tuple(p) for p in pads] == same:
        return "SAME", []
    return "EXPLICIT", [0, 0] + [p for pair in pads for p in pair] + [0, 0]


def describe(node, batch: int) -> str:
    x, w = (v.type.concrete(batch) for v in node.inputs[:2])
    if node.op == "conv":
        return f"{x[1]}x{x[2]}x{x[3]} * {w[0]}x{w[1]}x{w[3]}, stride {node.attrs['strides'][0]}"
    out = node.outputs[0].type.concrete(batch)
    if node.op == "conv_transpose":
        return f"{x[1]}x{x[2]}x{x[3]} -> {out[1]}x{out[2]}x{out[3]}, {w[0]}x{w[1]} window, stride {node.attrs['strides'][0]}"
    return f"{x[1]}x{x[2]}x{x[3]}, {w[1]}x{w[2]}x{w[3]} -> {out[0]}x{out[1]}x{out[2]}x{out[3]}"


def main():
    parser = benchmark_arguments(__doc__, MODELS, 1.0, os.path.join(HERE, "conv_results.md"))
    args = parser.parse_args()
    set_threads(args.threads)
    from kcompile.report import count_flops

    peak = gemm_peak()
    names = ["im2col", "direct", "taps", "igemm", "winograd2", "winograd4", "scatter"]
    lines = [f"Machine float32 GEMM peak (NumPy, {args.threads} threads): {peak:.0f} GFLOP/s. Batch {args.batch}; "
             "GFLOP/s of each convolution of a training step (median times; Winograd's counted as the direct "
             "algorithm's FLOPs, so it can pass the peak); \"tuned\" is the algorithm kcompile measures fastest "
             "and uses.", "",
             "| model | layer | pass | shape | " + " | ".join(names) + " | tuned | TensorFlow | tuned / TF time |",
             "|---|---|---|---|" + "---|" * len(names) + "---|---|---|"]
    seen = set()
    for model in args.models.split(","):
        for layer, node in training_convolutions(model, args.batch):
            graph = alone(node)
            key = (node.op, describe(node, args.batch), tuple(sorted(graph.nodes[0].attrs.items())))
            if key in seen:  # ResNet repeats its shapes
                continue
            seen.add(key)
            flops = count_flops(graph, args.batch) / 1e9
            cells = {name: kcompile_time(graph, method, args.batch, args.seconds)
                     for name, method in algorithms(graph).items()}
            tuned = kcompile_time(graph, None, args.batch, args.seconds)
            tf_time = tensorflow_time(graph, args.batch, args.seconds)
            row = [model, layer, PASSES[node.op], describe(node, args.batch)]
            row += [f"{flops / cells[n]:.0f}" if n in cells else "" for n in names]
            row += [f"{flops / tuned:.0f}", f"{flops / tf_time:.0f}", f"{tuned / tf_time:.2f}"]
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], file=sys.stderr, flush=True)
    text = f"Command: `python benchmarks/conv.py {' '.join(sys.argv[1:])}`\n\n" + "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
