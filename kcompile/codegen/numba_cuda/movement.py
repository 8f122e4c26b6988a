"""Generated data-movement kernels (transpose, slice, pad, concat, broadcast_to, repeat,
gather, resize): one thread per output element, its source computed from its coordinates."""
from __future__ import annotations

from typing import Callable

from ..common import index_text
from .source import Code, dim_exprs, unflatten


def injective_kernel(name: str, params: list, doc: str, out_shape: tuple, body: Callable) -> str:
    """Loop over the elements of `out` (full rank); body(code, coords) stores out[coords]."""
    code = Code()
    code("@cuda.jit(cache=CACHE)")
    with code.block(f"def {name}({', '.join(params)}):"):
        code(f'"""{doc}"""')
        with code.block("for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):"):
            coords = [f"c{d}" for d in range(len(out_shape))]
            unflatten(code, "e", dim_exprs(out_shape, "out"), coords)
            body(code, coords)
    return code.text()


def transpose_body(perm):
    inverse = [perm.index(a) for a in range(len(perm))]

    def body(code, c):
        code(f"out[{index_text(c)}] = x[{index_text([c[i] for i in inverse])}]")

    return body


def slice_body(starts: dict):
    """starts: axis -> (first, step) of the normalized slice."""

    def body(code, c):
        index = [c[d] if d not in starts else f"{starts[d][0]} + {c[d]} * {starts[d][1]}" for d in range(len(c))]
        code(f"out[{index_text(c)}] = x[{index_text(index)}]")

    return body


def pad_body(pads, in_shape, value: str):
    def body(code, c):
        padded = [d for d, (lo, hi) in enumerate(pads) if lo or hi]
        inside = " and ".join(f"{pads[d][0]} <= {c[d]} < {pads[d][0] + in_shape[d]}" for d in padded) or "True"
        index = [f"{c[d]} - {pads[d][0]}" if d in padded else c[d] for d in range(len(c))]
        with code.block(f"if {inside}:"):
            code(f"out[{index_text(c)}] = x[{index_text(index)}]")
        with code.block("else:"):
            code(f"out[{index_text(c)}] = {value}")

    return body


def concat_body(axis: int, sizes: list):
    def body(code, c):
        start = 0
        for k, size in enumerate(sizes):
            index = [f"{c[d]} - {start}" if d == axis and start else c[d] for d in range(len(c))]
            keyword = "if" if k == 0 else "elif" if k < len(sizes) - 1 else "else"
            condition = f" {c[axis]} < {start + size}" if keyword != "else" else ""
            with code.block(f"{keyword}{condition}:"):
                code(f"out[{index_text(c)}] = x{k}[{index_text(index)}]")
            start += size

    return body


def broadcast_body(in_shape, out_shape):
    def body(code, c):
        index = ["0" if d == 1 and o != 1 else c[k] for k, (d, o) in enumerate(zip(in_shape, out_shape))]
        code(f"out[{index_text(c)}] = x[{index_text(index)}]")

    return body


def repeat_body(axis: int, repeats: int):
    def body(code, c):
        index = [f"{c[d]} // {repeats}" if d == axis else c[d] for d in range(len(c))]
        code(f"out[{index_text(c)}] = x[{index_text(index)}]")

    return body


def gather_kernel(name: str, doc: str, rows: int, width: int) -> str:
    """out (n, width) = table (rows, width)[indices (n,)]; an index out of range writes
    zeros and sets flags[0] (the caller raises)."""
    code = Code()
    code("@cuda.jit(cache=CACHE)")
    with code.block(f"def {name}(table, indices, out, flags):"):
        code(f'"""{doc}"""')
        with code.block(f"for e in range(cuda.grid(1), out.shape[0] * {width}, cuda.gridsize(1)):"):
            code(f"i = e // {width}", f"j = e % {width}", "row = indices[i]")
            with code.block(f"if row >= 0 and row < {rows}:"):
                code("out[i, j] = table[row, j]")
            with code.block("else:"):
                code("out[i, j] = 0", "flags[0] = 1")
    return code.text()


def resize_kernel(name: str, doc: str, out_hw: tuple, channels: int, bilinear: bool) -> str:
    """x (N, H, W, C) -> out (N, OH, OW, C) through precomputed source tables."""
    oh_, ow_ = out_hw
    params = ["x", "out", "lo_h", "hi_h", "frac_h", "lo_w", "hi_w", "frac_w"] if bilinear else ["x", "out", "rows", "cols"]
    code = Code()
    code("@cuda.jit(cache=CACHE)")
    with code.block(f"def {name}({', '.join(params)}):"):
        code(f'"""{doc}"""')
        with code.block(f"for e in range(cuda.grid(1), out.shape[0] * {oh_ * ow_ * channels}, cuda.gridsize(1)):"):
            code(f"c = e % {channels}", f"ow = e // {channels} % {ow_}", f"oh = e // {ow_ * channels} % {oh_}",
                 f"n = e // {oh_ * ow_ * channels}")
            if not bilinear:
                code("out[n, oh, ow, c] = x[n, rows[oh], cols[ow], c]")
            else:
                code("fh = frac_h[oh]", "fw = frac_w[ow]",
                     "a = x[n, lo_h[oh], lo_w[ow], c]", "b = x[n, lo_h[oh], hi_w[ow], c]",
                     "cc = x[n, hi_h[oh], lo_w[ow], c]", "d = x[n, hi_h[oh], hi_w[ow], c]",
                     "upper = a + (b - a) * fw", "lower = cc + (d - cc) * fw",
                     "out[n, oh, ow, c] = upper + (lower - upper) * fh")
    return code.text()


def scatter_add_kernels(name: str, doc: str, rows: int, width: int) -> str:
    """out (rows, width) = 0, then out[indices[i]] += updates[i]: a zeroing kernel and an
    accumulating one (atomic adds: many updates may hit one row, as in an Embedding's
    gradient). An index out of range sets flags[0]."""
    code = Code()
    code("@cuda.jit(cache=CACHE)")
    with code.block(f"def {name}_zero(out):"):
        code(f'"""{doc}: zero the table"""')
        with code.block(f"for e in range(cuda.grid(1), {rows * width}, cuda.gridsize(1)):"):
            code(f"out[e // {width}, e % {width}] = 0")
    code("", "", "@cuda.jit(cache=CACHE)")
    with code.block(f"def {name}(indices, updates, out, flags):"):
        code(f'"""{doc}"""')
        with code.block(f"for e in range(cuda.grid(1), updates.shape[0] * {width}, cuda.gridsize(1)):"):
            code(f"i = e // {width}", f"j = e % {width}", "row = indices[i]")
            with code.block(f"if row >= 0 and row < {rows}:"):
                code("cuda.atomic.add(out, (np.int64(row), np.int64(j)), updates[i, j])")
            with code.block("else:"):
                code("flags[0] = 1")
    return code.text()
