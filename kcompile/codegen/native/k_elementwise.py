"""Elementwise and broadcast work: one loop nest per node, writing each output element
once. Axes are coalesced first (an add of two equal shapes is one flat loop; a
per-channel scale is (rows, channels)), the innermost axis runs in vectors with a
scalar tail, and operands broadcast along it are loaded once and splatted."""
from __future__ import annotations

from .irhelp import Sym
from .mathops import eval_program, node_program, program_dtypes

CHUNK = 4096  # elements per task when the loop nest is one flat axis
PARALLEL_MIN = 1 << 15  # elements x instructions below which a loop runs inline


def _sym(x) -> Sym:
    return x if isinstance(x, Sym) else Sym(int(x))


def broadcast_strides(nm, value, out_dims: list) -> list:
    """value's element strides along the output's axes (0 where it broadcasts)."""
    dims = nm.dims(value)
    strides = nm.strides(value)
    offset = len(out_dims) - len(dims)
    result = []
    for axis, size in enumerate(out_dims):
        j = axis - offset
        if j < 0 or (dims[j] == 1 and size != 1):
            result.append(0)
        else:
            result.append(strides[j])
    return result


def coalesce(sizes: list, stride_lists: list) -> tuple:
    """Drop unit axes and merge axes that are contiguous for every operand."""
    keep = [a for a, s in enumerate(sizes) if s != 1]
    sizes = [sizes[a] for a in keep]
    stride_lists = [[st[a] for a in keep] for st in stride_lists]
    if not sizes:
        return [1], [[0] for _ in stride_lists]
    out_sizes, out_strides = [sizes[0]], [[st[0]] for st in stride_lists]
    for a in range(1, len(sizes)):
        mergeable = all(_sym(st[-1]) == _sym(s[a]) * sizes[a] if st[-1] != 0 or s[a] != 0 else True
                        for st, s in zip(out_strides, stride_lists))
        if mergeable:
            out_sizes[-1] = _sym(out_sizes[-1]) * sizes[a]
            out_sizes[-1] = out_sizes[-1] if out_sizes[-1].dyn else out_sizes[-1].coef
            for st, s in zip(out_strides, stride_lists):
                st[-1] = s[a]
        else:
            out_sizes.append(sizes[a])
            for st, s in zip(out_strides, stride_lists):
                st.append(s[a])
    return out_sizes, out_strides


def emit_elementwise(nm, label: str, out, operands: list, program, out_dtype: str | None = None):
    """out[...] = program(operands...) with NumPy broadcasting; operands are Values."""
    in_dtypes = [v.dtype for v in operands]
    program_dtypes(program, in_dtypes)
    out_dims = nm.dims(out)
    strides = [broadcast_strides(nm, v, out_dims) for v in operands] + [nm.strides(out)]
    sizes, strides = coalesce(out_dims, strides)
    width = nm.isa.width
    total = Sym(1)
    for s in sizes:
        total = total * s
    flat = len(sizes) == 1
    cost = total * max(len(program), 1)

    def body(f, lo, hi):
        ptrs = [nm.ptr(f, v) for v in operands]
        out_ptr = nm.ptr(f, out)

        def inner(bases, start, stop):
            def lanes(i, w):
                vals = []
                for k, (p, st) in enumerate(zip(ptrs, strides)):
                    if st[-1] == 0:
                        vals.append(f.splat(f.load(p, bases[k]), w))
                    else:
                        vals.append(f.load(p, f.b.add(bases[k], i), w))
                value, _ = eval_program(f, program, vals, in_dtypes)
                f.store(value, out_ptr, f.b.add(bases[-1], i))

            f.vloop(start, stop, width, lanes)

        zero = f.sym(0)
        if flat:
            start = f.b.mul(lo, f.sym(CHUNK))
            stop = f.min(f.b.mul(hi, f.sym(CHUNK)), f.sym(sizes[0]))
            inner([zero] * len(strides), start, stop)
            return

        def nest(axis, bases, first_lo=None, first_hi=None):
            if axis == len(sizes) - 1:
                inner(bases, zero, f.sym(sizes[-1]))
                return
            start = first_lo if first_lo is not None else zero
            stop = first_hi if first_hi is not None else f.sym(sizes[axis])
            with f.loop(start, stop, name=f"e{axis}") as i:
                new = [f.b.add(base, f.b.mul(i, f.sym(st[axis]))) if st[axis] != 0 else base
                       for base, st in zip(bases, strides)]
                nest(axis + 1, new)

        nest(0, [zero] * len(strides), lo, hi)

    if flat:
        ntasks = lambda f: f.ceil_div(sizes[0], CHUNK)  # noqa: E731
    else:
        ntasks = sizes[0]
    nm.step(label, body, ntasks=ntasks, cost=cost)


def lower_elementwise(nm, node):
    emit_elementwise(nm, f"{node.output.name}_{node.op}", node.output, list(node.inputs), node_program(node))


def apply_epilogue_in_place(nm, node):
    """Run node's epilogue program over its output (for products computed without it)."""
    program = node.attrs.get("epilogue", ())
    if not program:
        return
    extras = list(node.inputs[2:])
    acc_index = len(extras)
    rewritten = tuple((op, tuple(("in", acc_index) if a[0] == "acc" else a for a in args), attrs)
                      for op, args, attrs in program)
    emit_elementwise(nm, f"{node.output.name}_epilogue", node.output, extras + [node.output], rewritten)
