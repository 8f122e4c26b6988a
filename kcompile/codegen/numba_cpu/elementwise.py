"""Generated kernels for elementwise work: a primitive or a fused program becomes one
loop nest writing each output element once. Broadcast operands are indexed with 0
along their size-1 axes."""
from __future__ import annotations

from ...ir.graph import Node
from ..numba_shared import SCALAR_TEMPLATES, broadcast_index, program_of

# Scalar expression templates ({0}, {1}, {2} are the operands): sigmoid, sign and
# softplus call the kernel library's scalar functions.
EXPRESSIONS = {
    **SCALAR_TEMPLATES,
    "sigmoid": "S.sigmoid({0})",
    "sign": "S.sign({0})",
    "floor": "math.floor({0})",
    "softplus": "S.softplus({0})",
}


def scalar_expression(op: str, operands: list, attrs: dict) -> str:
    if op == "clip":
        return f"min(max({operands[0]}, np.float32({attrs['low']!r})), np.float32({attrs['high']!r}))"
    if op == "cast":
        return f"np.{attrs['dtype']}({operands[0]})"
    return EXPRESSIONS[op].format(*operands, zero="ZERO", one="ONE")


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
        loads = [f"in{k}[{broadcast_index(v.shape, out.shape, loop_vars)}]" for k, v in enumerate(inputs)]
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
