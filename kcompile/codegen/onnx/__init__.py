"""The ONNX backend: a table of lowerings from kcompile primitives to ONNX operators.

    from kcompile.codegen.onnx import export_graph
    model = export_graph(graph, "model.onnx")        # onnx.ModelProto, also written to disk

LOWERINGS maps each primitive name to fn(ctx, node) (see context.LoweringContext);
a primitive without an entry is exported through its decompose rule, and one with
neither fails the export with a KcompileError naming it.
"""
from . import lowerings as _lowerings  # noqa: F401  (fills the table)
from . import rnn as _rnn  # noqa: F401  (lstm, gru, simple_rnn)
from . import grad as _grad  # noqa: F401  (reduce_batch, conv_weight_grad, max_pool_grad, scatter_add)
from .context import LoweringContext
from .elementwise import ELEMENTWISE
from .export import MIN_OPSET, default_opset, export_graph, missing_lowerings
from .table import LOWERINGS, lowering

__all__ = ["ELEMENTWISE", "LOWERINGS", "LoweringContext", "MIN_OPSET", "default_opset", "export_graph",
           "lowering", "missing_lowerings"]
