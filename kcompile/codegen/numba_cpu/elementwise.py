"""Generated kernels for elementwise work: a primitive or a fused program becomes one
loop nest writing each output element once. Broadcast operands are indexed with 0
along their size-1 axes."""
from __future__ import annotations

from ...ir.graph import Node
from ...ir.program import program_of, program_type
from ...ir.shapes import normalize_axes
from ..numba_shared import SCALAR_TEMPLATES, broadcast_index

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


PARALLEL_MIN = 1 << 15  # outputs smaller than this run on one thread: a parallel region costs a few us
# Only outputs this large per sample get the threaded loop: compiling a parallel kernel
# takes Numba several times as long, which small-featured models would pay for nothing
# at the small batches of inference. A training step runs thousands of times at batches
# of 32 and more: there, a Dense layer's 256 features are worth it (antirectifier's
# step at batch 128: 0.18 ms less).
PARALLEL_MIN_PER_SAMPLE = 1 << 12
PARALLEL_MIN_PER_SAMPLE_TRAINING = 1 << 8


def elementwise_kernel(name: str, node: Node, comment: str, offsets=None,
                       threaded_from: int = PARALLEL_MIN_PER_SAMPLE) -> str:
    """Source of an @njit kernel `name(in0, ..., out)` computing the node: one loop (or
    loop nest, for broadcast operands or offset ones) over the output. `offsets`, per
    input and then the output: None, or where along each axis the operand starts in the
    array passed for it (a slice read in place, a concat's piece written in place: the
    whole contiguous array with constant offsets in the index, which vectorizes where a
    strided view did not: 6x slower, timed once). For outputs of `threaded_from` elements
    per sample or more it is written twice: on one thread for small batches, split over
    threads (prange) for large ones."""
    out = node.output
    inputs = node.inputs
    offsets = offsets or [None] * (len(inputs) + 1)
    same = all(o is None for o in offsets) and all(v.shape == out.shape for v in inputs)
    threaded = out.type.static_size() >= (threaded_from if out.type.dynamic_axis is not None else PARALLEL_MIN)
    parallel = ", parallel=True" if threaded else ""
    lines = [f"@njit(cache=True, nogil=True, fastmath=FASTMATH{parallel})",
             f"def {name}({', '.join(f'in{k}' for k in range(len(inputs)))}, out):", f'    """{comment}"""']
    if same:
        # Every operand has the output's shape: one flat loop.
        for k in range(len(inputs)):
            lines.append(f"    f{k} = in{k}.reshape(-1)")
        lines.append("    flat = out.reshape(-1)")
        loops = [("i", "flat.shape[0]")]
        loads = [f"f{k}[i]" for k in range(len(inputs))]
        target, size = "flat[i]", "flat.shape[0]"
    else:
        loop_vars = [f"i{d}" for d in range(out.rank)]
        loops = [(f"i{d}", f"out.shape[{d}]" if n is None else str(n)) for d, n in enumerate(out.shape)]
        loads = [f"in{k}[{broadcast_index(v.shape, out.shape, loop_vars, offsets[k])}]" for k, v in enumerate(inputs)]
        target = f"out[{broadcast_index(out.shape, out.shape, loop_vars, offsets[-1])}]" if out.rank else "out[0]"
        dynamic = out.type.dynamic_axis
        size = str(out.type.static_size()) if dynamic is None else f"out.shape[{dynamic}] * {out.type.static_size()}"
    body = _program_body(node, loads)
    body.append(f"{target} = t{len(program_of(node)) - 1}")
    if not threaded:
        return "\n".join(lines + _loop_nest(loops, body, "range", "    "))
    lines.append(f"    if {size} < {PARALLEL_MIN}:")
    lines += _loop_nest(loops, body, "range", "        ")
    lines.append("    else:")
    lines += _loop_nest(loops, body, "prange", "        ")
    return "\n".join(lines)


def _program_body(node: Node, loads: list) -> list:
    """Lines computing the node's program from its operands' loads: the result is the
    last `t` variable."""
    body = [f"x{k} = {load}" for k, load in enumerate(loads)]
    for j, (op, args, attrs) in enumerate(program_of(node)):
        operands = [f"x{a[1]}" if a[0] == "in" else f"t{a[1]}" for a in args]
        body.append(f"t{j} = {scalar_expression(op, operands, dict(attrs))}")
    return body


def reduction_kernel(name: str, node: Node, comment: str) -> str:
    """Source of an @njit kernel `name(in0, ..., out)` for a fused_reduce_sum: one loop
    nest over the program's full shape adding each element into `out` (the result with
    its reduced axes kept as size 1). The outermost axis is split over threads when it
    is not reduced (each thread then owns its rows of `out`)."""
    inputs = node.inputs
    full = program_type(node.attrs["program"], [v.type for v in inputs]).shape
    axes = normalize_axes(node.attrs["axes"], len(full))
    coords = [f"i{d}" for d in range(len(full))]
    bounds = [str(n) for n in full]
    if None in full:  # the batch axis: its length read from an operand that has it
        d = full.index(None)
        for k, v in enumerate(inputs):
            offset = len(full) - len(v.shape)  # operands broadcast from the right
            if d >= offset and v.shape[d - offset] is None:
                bounds[d] = f"in{k}.shape[{d - offset}]"
                break
    loads = [f"in{k}[{broadcast_index(v.shape, full, coords)}]" for k, v in enumerate(inputs)]
    body = _program_body(node, loads)
    target = ", ".join("0" if d in axes else c for d, c in enumerate(coords))
    body.append(f"out[{target}] += t{len(program_of(node)) - 1}")
    threaded = 0 not in axes and len(full) > 1
    lines = [f"@njit(cache=True, nogil=True, fastmath=FASTMATH{', parallel=True' if threaded else ''})",
             f"def {name}({', '.join(f'in{k}' for k in range(len(inputs)))}, out):", f'    """{comment}"""',
             "    out.reshape(-1)[:] = ZERO"]
    return "\n".join(lines + _loop_nest(list(zip(coords, bounds)), body, "prange" if threaded else "range", "    "))


def _loop_nest(loops: list, body: list, outer: str, indent: str) -> list:
    """`for` loops over (variable, bound) pairs around `body`; the outermost uses `outer`."""
    lines = []
    for d, (var, bound) in enumerate(loops):
        lines.append(f"{indent}for {var} in {outer if d == 0 else 'range'}({bound}):")
        indent += "    "
    return lines + [indent + line for line in body]
