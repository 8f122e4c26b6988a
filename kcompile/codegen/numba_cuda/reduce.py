"""Generated reductions and softmax, without atomics.

- A reduction over the trailing axes of a row (inner size 1): one block per row, each
  thread folds a strided part of the row, then a tree in shared memory.
- Anything else: one thread per output element folding the reduced axes in a loop
  (consecutive threads read consecutive inner elements)."""
from __future__ import annotations

from ..common import index_text
from .source import Code, dim_exprs, unflatten

COMBINE = {"sum": "{0} + {1}", "mean": "{0} + {1}", "max": "max({0}, {1})", "min": "min({0}, {1})"}
IDENTITY = {
    "float32": {"sum": "ZERO", "mean": "ZERO", "max": "NEG_INF", "min": "POS_INF"},
    "int32": {"sum": "np.int32(0)", "mean": "np.int32(0)", "max": "np.int32(-2147483648)", "min": "np.int32(2147483647)"},
    "int64": {"sum": "0", "mean": "0", "max": "-9223372036854775808", "min": "9223372036854775807"},
}


def _start(code: Code, name: str, params: list, doc: str):
    code("@cuda.jit(cache=CACHE)")
    code(f"def {name}({', '.join(params)}):")
    code.level += 1
    code(f'"""{doc}"""')


def _tree(code: Code, kind: str):
    """Fold part[0:TPB] into part[0] (every thread reaches the barriers)."""
    code("cuda.syncthreads()", "stride = TPB // 2")
    with code.block("while stride > 0:"):
        with code.block("if tid < stride:"):
            code(f"part[tid] = {COMBINE[kind].format('part[tid]', 'part[tid + stride]')}")
        code("cuda.syncthreads()", "stride //= 2")


def row_reduce_kernel(name: str, doc: str, kind: str, length: int, dtype: str) -> str:
    """x (rows, length) -> out (rows,): a block per row."""
    code = Code()
    _start(code, name, ["x", "out"], doc)
    code(f"part = cuda.shared.array(TPB, {'float32' if dtype == 'float32' else dtype})", "tid = cuda.threadIdx.x")
    with code.block("for o in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):"):
        code(f"total = {IDENTITY[dtype][kind]}")
        with code.block(f"for r in range(tid, {length}, TPB):"):
            code(f"total = {COMBINE[kind].format('total', 'x[o, r]')}")
        code("part[tid] = total")
        _tree(code, kind)
        with code.block("if tid == 0:"):
            code(f"out[o] = part[0] / np.float32({length})" if kind == "mean" else "out[o] = part[0]")
    return code.text()


def loop_reduce_kernel(name: str, doc: str, kind: str, shape: tuple, axes: tuple, dtype: str) -> str:
    """x (full rank) -> out (the kept axes; (1,) when none is kept): a thread per output."""
    kept = [d for d in range(len(shape)) if d not in axes]
    code = Code()
    _start(code, name, ["x", "out"], doc)
    names = [f"c{d}" for d in range(len(shape))]
    with code.block("for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):"):
        if kept:
            unflatten(code, "e", [dim_exprs(shape, "x")[d] for d in kept], [names[d] for d in kept])
        code(f"total = {IDENTITY[dtype][kind]}")
        level = code.level
        sizes = dim_exprs(shape, "x")  # the batch axis too (reduce_batch)
        for d in axes:
            code(f"for {names[d]} in range({sizes[d]}):")
            code.level += 1
        code(f"total = {COMBINE[kind].format('total', f'x[{index_text(names)}]')}")
        code.level = level
        count = 1
        for d in axes:
            count *= shape[d] or 1
        value = f"total / np.float32({count})" if kind == "mean" else "total"
        code(f"out[{index_text([names[d] for d in kept])}] = {value}")
    return code.text()


def row_softmax_kernel(name: str, doc: str, length: int, log: bool) -> str:
    """Softmax along rows of x (rows, length): a block per row, two tree reductions."""
    code = Code()
    _start(code, name, ["x", "out"], doc)
    code("part = cuda.shared.array(TPB, float32)", "tid = cuda.threadIdx.x")
    with code.block("for o in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):"):
        code("top = NEG_INF")
        with code.block(f"for r in range(tid, {length}, TPB):"):
            code("top = max(top, x[o, r])")
        code("part[tid] = top")
        _tree(code, "max")
        code("top = part[0]", "cuda.syncthreads()", "total = ZERO")
        with code.block(f"for r in range(tid, {length}, TPB):"):
            code("total += math.exp(x[o, r] - top)")
        code("part[tid] = total")
        _tree(code, "sum")
        code("total = part[0]", "cuda.syncthreads()")
        if log:
            code("shift = top + math.log(total)")
            with code.block(f"for r in range(tid, {length}, TPB):"):
                code("out[o, r] = x[o, r] - shift")
        else:
            code("scale = ONE / total")
            with code.block(f"for r in range(tid, {length}, TPB):"):
                code("out[o, r] = math.exp(x[o, r] - top) * scale")
    return code.text()


def strided_softmax_kernel(name: str, doc: str, length: int, inner: int, log: bool) -> str:
    """Softmax of x (outer, length, inner) along the middle axis: a thread per (outer, inner)."""
    code = Code()
    _start(code, name, ["x", "out"], doc)
    with code.block(f"for e in range(cuda.grid(1), x.shape[0] * {inner}, cuda.gridsize(1)):"):
        code(f"o = e // {inner}", f"i = e % {inner}", "top = NEG_INF")
        with code.block(f"for r in range({length}):"):
            code("top = max(top, x[o, r, i])")
        code("total = ZERO")
        with code.block(f"for r in range({length}):"):
            code("total += math.exp(x[o, r, i] - top)")
        if log:
            code("shift = top + math.log(total)")
            with code.block(f"for r in range({length}):"):
                code("out[o, r, i] = x[o, r, i] - shift")
        else:
            code("scale = ONE / total")
            with code.block(f"for r in range({length}):"):
                code("out[o, r, i] = math.exp(x[o, r, i] - top) * scale")
    return code.text()
