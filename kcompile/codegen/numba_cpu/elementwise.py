"""Generated kernels for elementwise work: a primitive or a fused program becomes one
loop nest writing each output element once. Broadcast operands are indexed with 0
along their size-1 axes."""
from __future__ import annotations

from ...ir.graph import Node

# Scalar expression templates; {0}, {1}, {2} are the operands.
EXPRESSIONS = {
    "identity": "{0}",
    "neg": "(-{0})",
    "abs": "abs({0})",
    "exp": "math.exp({0})",
    "log": "math.log({0})",
    "log1p": "math.log1p({0})",
    "expm1": "math.expm1({0})",
    "sqrt": "math.sqrt({0})",
    "rsqrt": "(ONE / math.sqrt({0}))",
    "square": "({0} * {0})",
    "reciprocal": "(ONE / {0})",
    "tanh": "math.tanh({0})",
    "sigmoid": "S.sigmoid({0})",
    "relu": "max({0}, ZERO)",
    "erf": "math.erf({0})",
    "sign": "S.sign({0})",
    "floor": "math.floor({0})",
    "softplus": "S.softplus({0})",
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "pow": "({0} ** {1})",
    "maximum": "max({0}, {1})",
    "minimum": "min({0}, {1})",
    "greater": "(ONE if {0} > {1} else ZERO)",
    "greater_equal": "(ONE if {0} >= {1} else ZERO)",
    "less": "(ONE if {0} < {1} else ZERO)",
    "less_equal": "(ONE if {0} <= {1} else ZERO)",
    "equal": "(ONE if {0} == {1} else ZERO)",
    "not_equal": "(ONE if {0} != {1} else ZERO)",
    "where": "({1} if {0} != 0 else {2})",
}


def scalar_expression(op: str, operands: list, attrs: dict) -> str:
    if op == "clip":
        return f"min(max({operands[0]}, np.float32({attrs['low']!r})), np.float32({attrs['high']!r}))"
    if op == "cast":
        return f"np.{attrs['dtype']}({operands[0]})"
    return EXPRESSIONS[op].format(*operands)


def program_of(node: Node) -> tuple:
    """A node as a program (a lone primitive is a program of one instruction)."""
    if node.op == "fused_elementwise":
        return node.attrs["program"]
    args = tuple(("in", k) for k in range(len(node.inputs)))
    return ((node.op, args, tuple(sorted(node.attrs.items()))),)


def _index(input_shape, out_shape, loop_vars) -> str:
    offset = len(out_shape) - len(input_shape)
    idx = [("0" if d == 1 and out_shape[offset + j] != 1 else loop_vars[offset + j]) for j, d in enumerate(input_shape)]
    return ", ".join(idx) if idx else "0"


def elementwise_kernel(name: str, node: Node, comment: str) -> str:
    """Source of an @njit kernel `name(in0, ..., out)` computing the node."""
    out = node.output
    inputs = node.inputs
    same = all(v.shape == out.shape for v in inputs)
    lines = ["@njit(cache=True, nogil=True, fastmath=FASTMATH)", f"def {name}({', '.join(f'in{k}' for k in range(len(inputs)))}, out):",
             f'    """{comment}"""']
    if same:
        # Every operand has the output's shape: one flat loop.
        for k in range(len(inputs)):
            lines.append(f"    f{k} = in{k}.reshape(-1)")
        lines.append("    flat = out.reshape(-1)")
        lines.append("    for i in range(flat.shape[0]):")
        loads = [f"f{k}[i]" for k in range(len(inputs))]
        target, indent = "flat[i]", "        "
    else:
        rank = out.rank
        loop_vars = [f"i{d}" for d in range(rank)]
        indent = "    "
        for d, size in enumerate(out.shape):
            bound = f"out.shape[{d}]" if size is None else str(size)
            lines.append(f"{indent}for i{d} in range({bound}):")
            indent += "    "
        loads = [f"in{k}[{_index(v.shape, out.shape, loop_vars)}]" for k, v in enumerate(inputs)]
        target = f"out[{', '.join(loop_vars)}]" if rank else "out[0]"
    for k, load in enumerate(loads):
        lines.append(f"{indent}x{k} = {load}")
    temps = []
    for j, (op, args, attrs) in enumerate(program_of(node)):
        operands = [f"x{a[1]}" if a[0] == "in" else temps[a[1]] for a in args]
        lines.append(f"{indent}t{j} = {scalar_expression(op, operands, dict(attrs))}")
        temps.append(f"t{j}")
    lines.append(f"{indent}{target} = {temps[-1]}")
    return "\n".join(lines)
