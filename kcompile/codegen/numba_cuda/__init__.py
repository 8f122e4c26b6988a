"""The Numba CUDA backend: the optimized IR as generated numba.cuda kernels.

    program = compile_graph(optimized_graph)       # raises KcompileError without a GPU
    outputs = program([x], batch)                   # NumPy in, NumPy out

Run it without a GPU on the CUDA simulator by setting NUMBA_ENABLE_CUDASIM=1 before
numba is imported (slow: one Python thread per CUDA thread)."""
from .availability import cuda_status, require_cuda
from .compiler import CudaProgram, compile_graph, generate_source
from .lowerings import LOWERINGS, missing_lowerings

__all__ = ["LOWERINGS", "CudaProgram", "compile_graph", "cuda_status", "generate_source", "missing_lowerings",
           "require_cuda"]
