"""The native backend's lowering table: primitive name -> function(nm, node) that adds
the node's steps to the NativeModule `nm` (see module.py)."""
from __future__ import annotations

from ...ir import Kind, all_primitives
from ..common import LoweringTable
from . import k_elementwise, k_gemm, k_grad, k_movement, k_reduce, k_rnn

LOWERINGS = LoweringTable()
lowering = LOWERINGS.register

ELEMENTWISE_OPS = [name for name, p in all_primitives().items() if p.kind in (Kind.ELEMENTWISE, Kind.BROADCAST)]

lowering(*ELEMENTWISE_OPS)(k_elementwise.lower_elementwise)
lowering("matmul")(k_gemm.lower_matmul)
lowering("conv")(k_gemm.lower_conv)
lowering("conv_transpose")(k_gemm.lower_conv_transpose)
lowering("max_pool", "avg_pool")(k_reduce.lower_pool)
lowering("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")(k_reduce.lower_reduce)
lowering("softmax", "log_softmax")(k_reduce.lower_softmax)
lowering("reshape")(k_movement.lower_reshape)
lowering("transpose")(k_movement.lower_transpose)
lowering("concat")(k_movement.lower_concat)
lowering("slice")(k_movement.lower_slice)
lowering("pad")(k_movement.lower_pad)
lowering("broadcast_to")(k_movement.lower_broadcast_to)
lowering("repeat")(k_movement.lower_repeat)
lowering("gather")(k_movement.lower_gather)
lowering("resize")(k_movement.lower_resize)
lowering("simple_rnn", "lstm", "gru")(k_rnn.lower_rnn)
# Primitives of the backward pass (an inference library rarely meets them).
lowering("reduce_batch")(k_reduce.lower_reduce_batch)
lowering("conv_weight_grad")(k_grad.lower_conv_weight_grad)
lowering("max_pool_grad")(k_grad.lower_max_pool_grad)
lowering("scatter_add")(k_grad.lower_scatter_add)

missing_lowerings = LOWERINGS.missing
