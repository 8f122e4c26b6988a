"""Scalar expressions of the elementwise primitives, and the generated kernel of an
elementwise node: one thread per output element (grid-stride), a fused program computed
in registers, one store. Epilogues of matmul and convolution use the same expressions."""
from __future__ import annotations

from ...ir.graph import Node
from ...ir.program import program_of
from ..common import index_text
from ..numba_shared import SCALAR_TEMPLATES, broadcast_index
from .source import Code, dim_exprs, unflatten

# The operands ({0}, {1}, {2}) are names or pure loads: repeating one is harmless; {zero}
# and {one} are constants of the result's dtype. Everything is inline: no device functions.
EXPRESSIONS = {
    **SCALAR_TEMPLATES,
    "sigmoid": "({one} / ({one} + math.exp(-({0}))))",
    "sign": "({one} if {0} > {zero} else (-{one} if {0} < {zero} else {zero}))",
    "floor": "np.float32(math.floor({0}))",
    "softplus": "(max({0}, {zero}) + math.log1p(math.exp(-abs({0}))))",
}

CONSTANTS = {"float32": ("ZERO", "ONE"), "int32": ("np.int32(0)", "np.int32(1)"), "int64": ("0", "1"), "bool": ("False", "True")}


def float_literal(value) -> str:
    """A float32 constant as kernel source (infinities and NaN included)."""
    value = float(value)
    if value != value:
        return "np.float32(np.nan)"
    if value in (float("inf"), float("-inf")):
        return "POS_INF" if value > 0 else "NEG_INF"
    return f"np.float32({value!r})"


def literal(value, dtype: str) -> str:
    if dtype == "float32":
        return float_literal(value)
    if dtype == "bool":
        return repr(bool(value))
    return f"np.{dtype}({int(value)})"


def scalar_expression(op: str, operands: list, attrs: dict, dtype: str) -> str:
    """A CUDA-compilable expression of `op` on operand expressions, of type `dtype`."""
    if op == "clip":
        return f"min(max({operands[0]}, {literal(attrs['low'], dtype)}), {literal(attrs['high'], dtype)})"
    if op == "cast":
        target = attrs["dtype"]
        return f"({operands[0]} != 0)" if target == "bool" else f"np.{target}({operands[0]})"
    if op == "floor" and dtype != "float32":
        return operands[0]
    zero, one = CONSTANTS[dtype]
    return EXPRESSIONS[op].format(*operands, zero=zero, one=one)


def program_dtypes(program, input_dtypes, acc_dtype="float32") -> list:
    """The result dtype of each instruction."""
    dtypes = []
    for op, args, attrs in program:
        operands = [input_dtypes[a[1]] if a[0] == "in" else dtypes[a[1]] if a[0] == "t" else acc_dtype for a in args]
        attrs = dict(attrs)
        if op == "cast":
            dtypes.append(attrs["dtype"])
        elif op == "where":
            dtypes.append(operands[1])
        else:
            dtypes.append(operands[0])
    return dtypes


def program_lines(code: Code, program, operands: dict, input_dtypes, prefix: str = "t", acc: str = "acc") -> str:
    """Emit one assignment per instruction; `operands[k]` is the expression of input k.
    Returns the name holding the result."""
    dtypes = program_dtypes(program, input_dtypes)
    temps = []
    for j, (op, args, attrs) in enumerate(program):
        values = [operands[a[1]] if a[0] == "in" else temps[a[1]] if a[0] == "t" else acc for a in args]
        code(f"{prefix}{j} = {scalar_expression(op, values, dict(attrs), dtypes[j])}")
        temps.append(f"{prefix}{j}")
    return temps[-1] if temps else acc


def elementwise_kernel(name: str, node: Node, flat: bool, doc: str) -> str:
    """Source of `name(in0, ..., out)`. With `flat`, every operand has the output's shape
    and arrives as a 1-D view; otherwise operands keep their rank (rank 0 arrives as (1,))."""
    out = node.output
    params = [f"in{k}" for k in range(len(node.inputs))] + ["out"]
    code = Code()
    code("@cuda.jit(cache=CACHE)")
    with code.block(f"def {name}({', '.join(params)}):"):
        code(f'"""{doc}"""')
        size = "out.shape[0]" if flat or out.rank <= 1 else "out.size"
        with code.block(f"for i in range(cuda.grid(1), {size}, cuda.gridsize(1)):"):
            if flat or out.rank == 0:
                loads = [f"in{k}[i]" if v.rank or flat else f"in{k}[0]" for k, v in enumerate(node.inputs)]
                target = "out[i]"
            else:
                coords = [f"c{d}" for d in range(out.rank)]
                unflatten(code, "i", dim_exprs(out.shape, "out"), coords)
                loads = [f"in{k}[{broadcast_index(v.shape, out.shape, coords)}]" for k, v in enumerate(node.inputs)]
                target = f"out[{index_text(coords)}]"
            for k, load in enumerate(loads):
                code(f"x{k} = {load}")
            result = program_lines(code, program_of(node), {k: f"x{k}" for k in range(len(loads))},
                                   [v.dtype for v in node.inputs])
            code(f"{target} = {result}")
    return code.text()
