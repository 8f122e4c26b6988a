"""Generated matrix-product kernels: matmul, convolution (implicit GEMM) and the RNN
input projection are all out[z, row, col] = sum_k A(z, row, k) * B(z, k, col) followed
by the node's epilogue. A lowering supplies how to load A and B (a plain row, an im2col
window computed on the fly, a broadcast batch) and how to store (epilogue and index).

Two kernels per product, chosen per batch size when the model is bound:
- tiled: a block of TT x TT threads computes a TM x TM output tile (TM = TT * TR, each
  thread TR x TR outputs in registers), staging TK-deep slices of A and B in shared
  memory; blocks loop over the tiles (any grid is correct).
- skinny: one thread per output, a loop over k; for a handful of rows (batch-1 dense
  layers), where a tile would be mostly empty. Reads of B are coalesced across threads.
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
    load_a: Callable  # (code, target, z, row, k): emit `target = A(z, row, k)`
    load_b: Callable  # (code, target, z, k, col): emit `target = B(z, k, col)`
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
                code("row = m0 + e // TK", "k = k0 + e % TK", "value = ZERO")
                with code.block(f"if row < rows and k < {spec.k}:"):
                    spec.load_a(code, "value", "z", "row", "k")
                code("sa[e % TK, e // TK] = value")
            with code.block("for e in range(tid, TK * TM, TT * TT):"):
                code("k = k0 + e // TM", "col = n0 + e % TM", "value = ZERO")
                with code.block(f"if k < {spec.k} and col < {spec.cols}:"):
                    spec.load_b(code, "value", "z", "k", "col")
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
    with code.block(f"for e in range(cuda.grid(1), zs * rows * {spec.cols}, cuda.gridsize(1)):"):
        code(f"col = e % {spec.cols}", f"rest = e // {spec.cols}", "row = rest % rows", "z = rest // rows",
             "total = ZERO")
        with code.block(f"for k in range({spec.k}):"):
            code("a_value = ZERO")
            spec.load_a(code, "a_value", "z", "row", "k")
            code("b_value = ZERO")
            spec.load_b(code, "b_value", "z", "k", "col")
            code("total += a_value * b_value")
        spec.store(code, "z", "row", "col", "total")
    return code.text()


def gemm_kernels(spec: GemmSpec) -> list:
    return [tiled_kernel(spec), skinny_kernel(spec)]
