"""Launch geometry of the generated kernels, chosen once per compiled program.

Every kernel is written so that any grid is correct: 1-D kernels loop over their work
with a grid stride, tiled kernels loop over tiles. So the grid can be capped, and the
CUDA simulator (one Python thread per CUDA thread, barriers that cost milliseconds) can
run the very same kernels with a handful of threads and deep shared-memory stages."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    threads: int  # threads per block of 1-D kernels; a power of two (tree reductions)
    max_blocks: int  # grid cap of grid-stride kernels
    tile_threads: int  # a GEMM block is tile_threads x tile_threads threads ...
    tile_regs: int  # ... each computing tile_regs x tile_regs outputs
    tile_k: int  # contraction depth of one shared-memory stage
    skinny_rows: int  # products with at most this many rows use the GEMV-like kernel ...
    skinny_cols: int  # ... whose blocks compute this many columns, threads // skinny_cols slices of k each
    cache: bool  # cuda.jit(cache=...) for the generated kernels

    def __post_init__(self):
        if self.threads & (self.threads - 1):
            raise ValueError(f"threads per block must be a power of two, got {self.threads}")
        if self.threads % self.skinny_cols:
            raise ValueError(f"skinny_cols {self.skinny_cols} must divide the threads per block {self.threads}")

    @property
    def tile(self) -> int:
        """Rows and columns of output one GEMM block computes per tile."""
        return self.tile_threads * self.tile_regs


# A 64 x 64 output tile per 256-thread block, 4 x 4 outputs a thread, 16-deep stages;
# batch-1 products: 32 columns a block, the contraction split 8 ways.
GPU = Tuning(threads=256, max_blocks=8192, tile_threads=16, tile_regs=4, tile_k=16, skinny_rows=16,
             skinny_cols=32, cache=True)

# Few threads (each one is a Python thread) and deep stages (each barrier costs about a
# millisecond); tiles small enough that the tests cover partial tiles and both GEMM paths.
SIMULATOR = Tuning(threads=8, max_blocks=2, tile_threads=2, tile_regs=2, tile_k=32, skinny_rows=1, skinny_cols=4,
                   cache=False)
