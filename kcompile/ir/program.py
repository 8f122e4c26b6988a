"""Elementwise programs: what fusion passes put inside one node.

A program is a tuple of instructions `(op, args, attrs)`. Each arg is
  ("in", k)  input k of the program (for an epilogue: the k-th input after the
             product's two operands),
  ("t", j)   the result of instruction j,
  ("acc",)   the accumulator (the output of the matmul/conv an epilogue follows).
The program's result is its last instruction. `op` is an elementwise or broadcast
primitive; attrs are its (frozen) attributes.
"""
from __future__ import annotations

from .graph import TensorType
from .registry import get_primitive


def instruction(op: str, args, attrs=None) -> tuple:
    return (op, tuple(args), tuple(sorted((attrs or {}).items())))


def program_of(node) -> tuple:
    """A node's elementwise program (a lone primitive is a program of one instruction;
    a fused_reduce_sum's is what it sums)."""
    if node.op in ("fused_elementwise", "fused_reduce_sum"):
        return node.attrs["program"]
    args = tuple(("in", k) for k in range(len(node.inputs)))
    return ((node.op, args, tuple(sorted(node.attrs.items()))),)


def _resolve(arg, inputs, temps, acc):
    kind = arg[0]
    if kind == "in":
        return inputs[arg[1]]
    if kind == "t":
        return temps[arg[1]]
    if kind == "acc":
        return acc
    raise ValueError(f"bad program argument {arg!r}")


def run_program(program, inputs, acc=None, on_types=False):
    """Evaluate with the primitives' references (arrays) or inference rules (TensorTypes)."""
    temps = []
    for op, args, attrs in program:
        prim = get_primitive(op)
        values = [_resolve(a, inputs, temps, acc) for a in args]
        fn = prim.infer if on_types else prim.reference
        result = fn(*values, **dict(attrs))
        temps.append(result)
    return temps[-1] if temps else acc


def program_type(program, input_types, acc_type=None) -> TensorType:
    return run_program(program, input_types, acc_type, on_types=True)


def format_program(program, input_names, acc_name="acc") -> str:
    """`relu(add(acc, %bias))`-style text for printing and comments."""
    temps = []
    for op, args, attrs in program:
        parts = []
        for a in args:
            parts.append(input_names[a[1]] if a[0] == "in" else temps[a[1]] if a[0] == "t" else acc_name)
        parts += [f"{k}={v}" for k, v in attrs]
        temps.append(f"{op}({', '.join(parts)})")
    return temps[-1] if temps else acc_name
