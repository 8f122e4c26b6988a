"""The table of layer lowerings: Keras class name -> function building its IR.

A lowering is `fn(ctx, *inputs, **call_kwargs) -> Value | tuple[Value, ...]`, where ctx is
a `LayerContext` (config, weights, builder). `masking` says what happens to Keras masks:
  "propagate": outputs carry the first input's mask (Keras's supports_masking);
  "drop":      outputs carry no mask;
  "custom":    the lowering reads ctx.masks and sets ctx.output_masks itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class LayerLowering:
    fn: Callable
    masking: str = "drop"


LAYER_LOWERINGS: dict[str, LayerLowering] = {}
# Keras operations recorded in functional configs (module keras.src.ops.*), by class name.
OP_LOWERINGS: dict[str, LayerLowering] = {}


def lowers(*class_names: str, masking: str = "drop"):
    """Decorator registering a lowering for one or more Keras class names."""
    assert masking in ("propagate", "drop", "custom")

    def register(fn):
        for name in class_names:
            LAYER_LOWERINGS[name] = LayerLowering(fn, masking)
        return fn

    return register


def lowers_op(*class_names: str):
    """Decorator registering a lowering for Keras operation nodes (`keras.ops.*`)."""

    def register(fn):
        for name in class_names:
            OP_LOWERINGS[name] = LayerLowering(fn, "drop")
        return fn

    return register
