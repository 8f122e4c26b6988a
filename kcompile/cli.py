"""The `kcompile` command.

    kcompile MODEL [-o OUT] [--target cpu|cuda]   build an artifact (kcompile.load reads it)
    kcompile MODEL --target native [-o libM.so]   build a standalone C library (+ libM.h)
    kcompile run libM.so --input x.npy [-o y.npy]   run a native library on .npy inputs
    kcompile inspect MODEL [--ir] [--source] the layer table, the IR, the generated code
    kcompile bench MODEL_OR_ARTIFACT [--batch 1,128] [--target T]   latency and throughput
    kcompile export MODEL --onnx OUT.onnx [--opset N]   ONNX, without TensorFlow
"""
from __future__ import annotations

import argparse
import sys

from .errors import KcompileError

COMMANDS = {}


def command(name: str, help: str):
    def register(fn):
        COMMANDS[name] = (fn, help)
        return fn

    return register


def _parse_shapes(items):
    """--input-shape name=1x28x28 ... -> {name: (None, 28, 28)} with the batch dimension dynamic."""
    shapes = {}
    for item in items or []:
        name, _, dims = item.partition("=")
        if not dims:
            raise KcompileError(f"--input-shape expects NAME=D1xD2..., got {item!r}")
        shapes[name] = (None,) + tuple(int(d) for d in dims.split("x"))
    return shapes


def _add_model_args(parser):
    parser.add_argument("model", help=".keras or .h5 model file")
    parser.add_argument("--input-shape", action="append", metavar="NAME=D1xD2",
                        help="fix an input's unknown dimensions (batch excluded)")


@command("inspect", "print the layer table (and with --ir, the IR)")
def cmd_inspect(args, parser):
    from . import load_graph
    from .report import summary

    graph = load_graph(args.model, input_shapes=_parse_shapes(args.input_shape))
    print(summary(graph))
    if args.ir:
        print()
        print(graph)
    if args.source:
        from . import build

        print()
        print(build(graph).program.source)
    return 0


def _inspect_args(parser):
    _add_model_args(parser)
    parser.add_argument("--ir", action="store_true", help="also print the IR text")
    parser.add_argument("--source", action="store_true", help="also print the generated kernels")


@command("build", "compile MODEL into an artifact folder (the default command)")
def cmd_build(args, parser):
    import os

    from . import compile as compile_model

    if args.target == "native":
        from .codegen.native.cli import build_file, describe_build

        print(describe_build(build_file(args.model, args.output, input_shapes=_parse_shapes(args.input_shape))))
        return 0
    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + ".kc"
    model = compile_model(args.model, target=args.target, input_shapes=_parse_shapes(args.input_shape))
    model.save(out)
    print(f"kcompile: wrote {out} ({len(model.optimized.nodes)} kernels, target {args.target})")
    return 0


def _build_args(parser):
    _add_model_args(parser)
    parser.add_argument("-o", "--output", help="artifact folder (default: MODEL name + .kc; libMODEL.so for native)")
    parser.add_argument("--target", default="cpu", choices=["cpu", "cuda", "native"], help="backend")


def _load_any(path: str, input_shapes=None, target: str = "cpu"):
    """An artifact folder (of any target) or a model file, compiled for `target`."""
    import os

    from . import compile as compile_model
    from . import load

    if os.path.isdir(path) and os.path.exists(os.path.join(path, "meta.json")):
        return load(path)
    return compile_model(path, target=target, input_shapes=input_shapes)


@command("bench", "time predict at several batch sizes")
def cmd_bench(args, parser):
    from .runtime.bench import format_bench, measure

    model = _load_any(args.model, _parse_shapes(args.input_shape), args.target)
    batches = [int(b) for b in args.batch.split(",")]
    print(format_bench(model, measure(model, batches, seconds=args.seconds)))
    return 0


def _bench_args(parser):
    _add_model_args(parser)
    parser.add_argument("--batch", default="1,128", help="comma-separated batch sizes")
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per batch size")
    parser.add_argument("--target", default="cpu", choices=["cpu", "cuda", "native"],
                        help="backend for a model file (an artifact keeps its own)")


@command("export", "export MODEL to ONNX")
def cmd_export(args, parser):
    from . import export_onnx

    model = export_onnx(args.model, args.onnx, opset=args.opset, input_shapes=_parse_shapes(args.input_shape))
    print(f"kcompile: wrote {args.onnx} (opset {model.opset_import[0].version}, {len(model.graph.node)} nodes)")
    return 0


def _export_args(parser):
    _add_model_args(parser)
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the newest ONNX Runtime runs)")


@command("run", "run a native library (kcompile MODEL --target native) on .npy inputs")
def cmd_run(args, parser):
    from .codegen.native.cli import run_files

    print(run_files(args.library, args.input, args.output, threads=args.threads))
    return 0


def _run_args(parser):
    parser.add_argument("library", help="a library built with --target native")
    parser.add_argument("--input", action="append", required=True, metavar="X.npy",
                        help="an input, in order, or NAME=X.npy; one .npz holds all inputs by name")
    parser.add_argument("-o", "--output", action="append", metavar="Y.npy",
                        help="an output file per model output, or one .npz for all")
    parser.add_argument("--threads", type=int, help="threads the library may use (default: all cores)")


ARGUMENTS = {"inspect": _inspect_args, "build": _build_args, "bench": _bench_args, "export": _export_args,
             "run": _run_args}


def build_parser():
    parser = argparse.ArgumentParser(prog="kcompile", description="Compile Keras models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help) in COMMANDS.items():
        ARGUMENTS[name](sub.add_parser(name, help=help))
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "build")  # `kcompile MODEL -o OUT`
    parser = build_parser()
    args = parser.parse_args(argv)
    fn, _ = COMMANDS[args.command]
    try:
        return fn(args, parser)
    except KcompileError as e:
        print(f"kcompile: error: {e}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:
        print(f"kcompile: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
