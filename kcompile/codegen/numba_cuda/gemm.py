"""Generated matrix-product kernels: matmul, convolution (implicit GEMM) and the RNN
input projection are all out[z, row, col] = sum_k A(z, row, k) * B(z, k, col) followed
by the node's epilogue. A lowering supplies how to load A and B (a plain row, an im2col
window computed on the fly, a broadcast batch) and how to store (epilogue and index).

Two kernels per product, chosen per batch size when the model is bound:
- tiled: a block of TT x TT threads computes a TM x TM output tile (TM = TT * TR, each
  thread TR x TR outputs in registers), staging TK-deep slices of A and B in shared
  memory; blocks loop over the tiles (any grid is correct).
- skinny: for a handful of rows (batch-1 dense layers), where a tile would be mostly
  empty: a block computes COLS outputs of one row, its threads split into SPLIT slices
  of the contraction (reads of B coalesced across the COLS threads of a slice), then a
  sum over the slices in shared memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .source import Code


@dataclass
class GemmSpec:
    name: str
    params: list  # kernel parameter names
    k: int  # contraction length
    cols: int  # output columns per z
    rows: str  # rows per z (an expression inside the kernel)
    zs: str  # number of independent products (an expression inside the kernel)
    load_a: Callable  # (code, target, z, row, k): emit `target = A(z, row, k)` (on every path)
    load_b: Callable  # (code, target, z, k, col): emit `target = B(z, k, col)` (on every path)
    store: Callable  # (code, z, row, col, value): epilogue and store of one output
    doc: str
    prelude: tuple = ()  # lines computing names the loaders use (per kernel call)


def _header(code: Code, spec: GemmSpec, suffix: str):
    code("@cuda.jit(cache=CACHE)")
    code(f"def {spec.name}{suffix}({', '.join(spec.params)}):")
    code.level += 1
    code(f'"""{spec.doc}"""')
    code(*spec.prelude)
    code(f"rows = {spec.rows}")
    code(f"zs = {spec.zs}")


def tiled_kernel(spec: GemmSpec) -> str:
    code = Code()
    _header(code, spec, "")
    code("sa = cuda.shared.array((TK, SA_COLS), float32)  # A slice, transposed: sa[k, row]",
         "sb = cuda.shared.array((TK, TM), float32)  # B slice: sb[k, col]",
         "acc = cuda.local.array((TR, TR), float32)",
         "a_frag = cuda.local.array(TR, float32)",
         "b_frag = cuda.local.array(TR, float32)",
         "tx = cuda.threadIdx.x",
         "ty = cuda.threadIdx.y",
         "tid = ty * TT + tx",
         "tiles_m = (rows + TM - 1) // TM",
         f"tiles_n = ({spec.cols} + TM - 1) // TM",
         "tiles_z = tiles_m * tiles_n")
    with code.block("for tile in range(cuda.blockIdx.x, zs * tiles_z, cuda.gridDim.x):"):
        code("z = tile // tiles_z",
             "m0 = (tile % tiles_z) // tiles_n * TM",
             "n0 = (tile % tiles_n) * TM")
        with code.block("for i in range(TR):"):
            with code.block("for j in range(TR):"):
                code("acc[i, j] = ZERO")
        with code.block(f"for k0 in range(0, {spec.k}, TK):"):
            code("# stage A[m0:m0+TM, k0:k0+TK] and B[k0:k0+TK, n0:n0+TM]; neighbours read neighbours")
            with code.block("for e in range(tid, TM * TK, TT * TT):"):
                code("row = m0 + e // TK", "k = k0 + e % TK")
                with code.block(f"if row < rows and k < {spec.k}:"):
                    spec.load_a(code, "value", "z", "row", "k")
                with code.block("else:"):
                    code("value = ZERO")
                code("sa[e % TK, e // TK] = value")
            with code.block("for e in range(tid, TK * TM, TT * TT):"):
                code("k = k0 + e // TM", "col = n0 + e % TM")
                with code.block(f"if k < {spec.k} and col < {spec.cols}:"):
                    spec.load_b(code, "value", "z", "k", "col")
                with code.block("else:"):
                    code("value = ZERO")
                code("sb[e // TM, e % TM] = value")
            code("cuda.syncthreads()")
            with code.block("for kk in range(TK):"):
                with code.block("for i in range(TR):"):
                    code("a_frag[i] = sa[kk, ty + i * TT]", "b_frag[i] = sb[kk, tx + i * TT]")
                with code.block("for i in range(TR):"):
                    with code.block("for j in range(TR):"):
                        code("acc[i, j] += a_frag[i] * b_frag[j]")
            code("cuda.syncthreads()")
        with code.block("for i in range(TR):"):
            code("row = m0 + ty + i * TT")
            with code.block("if row < rows:"):
                with code.block("for j in range(TR):"):
                    code("col = n0 + tx + j * TT")
                    with code.block(f"if col < {spec.cols}:"):
                        spec.store(code, "z", "row", "col", "acc[i, j]")
    return code.text()


def skinny_kernel(spec: GemmSpec) -> str:
    code = Code()
    _header(code, spec, "_skinny")
    code("part = cuda.shared.array((SPLIT, COLS), float32)",
         "lane = cuda.threadIdx.x % COLS  # neighbouring threads: neighbouring columns (coalesced B)",
         "slice_k = cuda.threadIdx.x // COLS  # each of the SPLIT slices of a column sums every SPLIT-th k",
         f"groups = ({spec.cols} + COLS - 1) // COLS")
    with code.block("for task in range(cuda.blockIdx.x, zs * rows * groups, cuda.gridDim.x):"):
        code("col = task % groups * COLS + lane", "row = task // groups % rows", "z = task // groups // rows",
             "total = ZERO")
        with code.block(f"if col < {spec.cols}:"):
            with code.block(f"for k in range(slice_k, {spec.k}, SPLIT):"):
                spec.load_a(code, "a_value", "z", "row", "k")
                spec.load_b(code, "b_value", "z", "k", "col")
                code("total += a_value * b_value")
        code("part[slice_k, lane] = total", "cuda.syncthreads()")
        with code.block(f"if slice_k == 0 and col < {spec.cols}:"):
            with code.block("for other in range(1, SPLIT):"):
                code("total += part[other, lane]")
            spec.store(code, "z", "row", "col", "total")
        code("cuda.syncthreads()")
    return code.text()


def gemm_kernels(spec: GemmSpec) -> list:
    return [tiled_kernel(spec), skinny_kernel(spec)]
