"""The ONNX backend's lowering table: primitive name -> function(ctx, node)."""
from __future__ import annotations

from ..common import LoweringTable

LOWERINGS = LoweringTable()
lowering = LOWERINGS.register
