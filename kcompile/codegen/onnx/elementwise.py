"""Elementwise and broadcast primitives as ONNX nodes, and the programs fusion builds of
them (`fused_elementwise` nodes and the epilogues of matmul / conv).

ELEMENTWISE maps a primitive name to fn(ctx, args, types, out, **attrs) -> ONNX name:
`args` are the operands' ONNX names, `types` their IR TensorTypes, `out` the result's
TensorType. ONNX broadcasting is NumPy's, so broadcast operands need no reshaping.
"""
from __future__ import annotations

from ...ir import get_primitive

ELEMENTWISE: dict = {}


def elementwise(*ops):
    def register(fn):
        for op in ops:
            ELEMENTWISE[op] = fn
        return fn

    return register


def _simple(onnx_op: str):
    """One ONNX node with the same operands."""
    return lambda ctx, args, types, out, **_: ctx.node(onnx_op, args)


SIMPLE = {
    "neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal",
    "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "erf": "Erf", "sign": "Sign", "floor": "Floor",
    "softplus": "Softplus",
    "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max", "minimum": "Min",
}
for _op, _onnx_op in SIMPLE.items():
    ELEMENTWISE[_op] = _simple(_onnx_op)


@elementwise("identity")
def _identity(ctx, args, types, out):
    return args[0]


@elementwise("log1p")
def _log1p(ctx, args, types, out):
    return ctx.node("Log", [ctx.node("Add", [args[0], ctx.const(1, out.dtype)])])


@elementwise("expm1")
def _expm1(ctx, args, types, out):
    return ctx.node("Sub", [ctx.node("Exp", args), ctx.const(1, out.dtype)])


@elementwise("rsqrt")
def _rsqrt(ctx, args, types, out):
    return ctx.node("Reciprocal", [ctx.node("Sqrt", args)])


@elementwise("square")
def _square(ctx, args, types, out):
    return ctx.node("Mul", [args[0], args[0]])


@elementwise("clip")
def _clip(ctx, args, types, out, *, low, high):
    return ctx.node("Clip", [args[0], ctx.const(low, out.dtype), ctx.const(high, out.dtype)])


@elementwise("cast")
def _cast(ctx, args, types, out, *, dtype):
    return args[0] if types[0].dtype == dtype else ctx.cast(args[0], dtype)


# Comparisons: ONNX gives booleans; the IR gives 1 or 0 in the operands' dtype.
COMPARISONS = {
    "greater": ("Greater", False), "greater_equal": ("GreaterOrEqual", False), "less": ("Less", False),
    "less_equal": ("LessOrEqual", False), "equal": ("Equal", False), "not_equal": ("Equal", True),
}


def _comparison(onnx_op: str, negate: bool):
    def lower(ctx, args, types, out):
        result = ctx.node(onnx_op, args)
        if negate:
            result = ctx.node("Not", [result])
        return ctx.cast(result, out.dtype)

    return lower


for _op, (_onnx_op, _negate) in COMPARISONS.items():
    ELEMENTWISE[_op] = _comparison(_onnx_op, _negate)


def as_bool(ctx, name: str, dtype: str) -> str:
    """cond != 0 as an ONNX bool tensor."""
    return name if dtype == "bool" else ctx.cast(name, "bool")


@elementwise("relu_grad")
def _relu_grad(ctx, args, types, out):
    zero = ctx.const(0, out.dtype)
    return ctx.node("Where", [ctx.node("Greater", [args[1], zero]), args[0], zero])


@elementwise("where")
def _where(ctx, args, types, out):
    return ctx.node("Where", [as_bool(ctx, args[0], types[0].dtype), args[1], args[2]])


def apply(ctx, op: str, args, types, attrs=()) -> str:
    """One elementwise primitive on ONNX tensors (its decomposition when the table lacks it)."""
    attrs = dict(attrs)
    out = get_primitive(op).infer(*types, **attrs)
    rule = ELEMENTWISE.get(op)
    if rule is None:
        (name,) = ctx.decompose(op, args, types, attrs)
        return name
    return rule(ctx, args, types, out, **attrs)


def expand_program(ctx, program, inputs, acc=None, acc_type=None, done=None) -> str:
    """The ONNX nodes of an elementwise program (see ir.program) over IR values `inputs`
    (read only where the program still needs them); `acc` is the accumulator's ONNX
    name and `done` maps an instruction index to an ONNX tensor already holding its result."""
    done = done or {}
    names, types = [], []
    for j, (op, operands, attrs) in enumerate(program):
        operand_types = [_pick(a, [v.type for v in inputs], types, acc_type) for a in operands]
        types.append(get_primitive(op).infer(*operand_types, **dict(attrs)))
        if j in done:
            names.append(done[j])
            continue
        operand_names = [ctx.name(inputs[a[1]]) if a[0] == "in" else _pick(a, None, names, acc) for a in operands]
        names.append(apply(ctx, op, operand_names, operand_types, attrs))
    return names[-1] if names else acc


def _pick(arg, ins, temps, acc):
    """Resolve a program argument ("in", k) / ("t", j) / ("acc",) against the lists given."""
    if arg[0] == "in":
        return ins[arg[1]]
    if arg[0] == "t":
        return temps[arg[1]]
    return acc
