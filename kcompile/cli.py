"""The `kcompile` command.

    kcompile inspect MODEL [--ir]        the layer table (and the IR text)
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
    return 0


def _inspect_args(parser):
    _add_model_args(parser)
    parser.add_argument("--ir", action="store_true", help="also print the IR text")


ARGUMENTS = {"inspect": _inspect_args}


def build_parser():
    parser = argparse.ArgumentParser(prog="kcompile", description="Compile Keras models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help) in COMMANDS.items():
        ARGUMENTS[name](sub.add_parser(name, help=help))
    return parser


def main(argv=None) -> int:
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
