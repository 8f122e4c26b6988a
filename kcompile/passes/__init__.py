"""Graph-to-graph passes. A pipeline is an explicit list, run in order.

KCOMPILE_DUMP=1 prints the IR after each pass."""
from __future__ import annotations

import os
import sys

from ..ir import Graph, format_graph, verify
from .cleanup import fold_broadcasts, remove_identities
from .constant_folding import fold_constants
from .cse import eliminate_common_subexpressions
from .dead_code import eliminate_dead_code
from .expand_composites import expand_composites
from .fold_scale_shift import fold_scale_shift
from .fuse_elementwise import fuse_elementwise
from .fuse_epilogue import fuse_epilogues, fuse_training_epilogues
from .fuse_reduction import fuse_reduction_prologues
from .layout import optimize_layout
from .memory import MemoryPlan, plan_memory

INFERENCE_PIPELINE = [
    expand_composites,
    remove_identities,
    fold_constants,
    eliminate_dead_code,
    eliminate_common_subexpressions,
    fold_broadcasts,
    optimize_layout,
    fold_constants,
    fold_scale_shift,
    fuse_epilogues,
    fuse_elementwise,
    eliminate_dead_code,
]

# Training steps run on the Numba CPU backend only, which fills per-channel epilogue
# operands that change between calls (trainable biases) at each call, and lowers
# fused_reduce_sum.
TRAINING_PIPELINE = [fuse_training_epilogues if p is fuse_epilogues else p for p in INFERENCE_PIPELINE]
TRAINING_PIPELINE.insert(TRAINING_PIPELINE.index(fuse_elementwise) + 1, fuse_reduction_prologues)

PASSES = {p.__name__: p for p in INFERENCE_PIPELINE}


def run_pipeline(graph: Graph, passes=None, disable=(), check: bool = False) -> Graph:
    """Run passes in order, skipping the names in `disable`; `check` verifies after each."""
    dump = os.environ.get("KCOMPILE_DUMP") == "1"
    for p in passes if passes is not None else INFERENCE_PIPELINE:
        if p.__name__ in disable:
            continue
        graph = p(graph)
        if check:
            verify(graph)
        if dump:
            print(f"// after {p.__name__}\n{format_graph(graph, params=False)}\n", file=sys.stderr)
    return graph


__all__ = ["INFERENCE_PIPELINE", "MemoryPlan", "PASSES", "TRAINING_PIPELINE", "expand_composites",
           "fuse_reduction_prologues", "fuse_training_epilogues", "plan_memory", "run_pipeline"]
