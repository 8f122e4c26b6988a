"""The ONNX backend's lowering table: primitive name -> function(ctx, node)."""
from __future__ import annotations

LOWERINGS: dict = {}


def lowering(*ops):
    """Register fn(ctx, node) as the ONNX lowering of primitives `ops`."""

    def register(fn):
        for op in ops:
            LOWERINGS[op] = fn
        return fn

    return register
