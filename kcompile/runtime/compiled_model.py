"""CompiledModel: a compiled graph with Keras's inference interface."""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..report import summary as graph_summary
from .inputs import batch_size_of, normalize_inputs
from .progress import Progbar


class CompiledModel:
    """What `kcompile.compile` returns: `predict`, `__call__`, `summary`, `save`.

    `graph` is the model as loaded (Keras semantics, one node per primitive);
    `optimized` is what the backend runs."""

    def __init__(self, graph: Graph, optimized: Graph, program, target: str = "cpu"):
        self.graph = graph
        self.optimized = optimized
        self.program = program
        self.target = target
        self.inputs = list(optimized.inputs)
        self.input_names = [v.name for v in self.inputs]
        self.output_names = list(optimized.output_names)
        self.name = graph.name

    # -- inference ----------------------------------------------------------------------
    def __call__(self, inputs):
        """Run on one batch, whatever its size; returns an array (or a list for several outputs)."""
        arrays = normalize_inputs(inputs, self.inputs)
        return self._unpack(self.program(arrays, batch_size_of(arrays, self.inputs)))

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Keras's predict: batches of `batch_size` (default 32), outputs concatenated."""
        arrays = normalize_inputs(x, self.inputs)
        total = batch_size_of(arrays, self.inputs)
        batch_size = batch_size or 32
        starts = list(range(0, total, batch_size))
        if steps is not None:
            starts = starts[:steps]
        show = verbose not in (0, False, "silent") and not (verbose == "auto" and len(starts) <= 1)
        bar = Progbar(len(starts), enabled=show)
        chunks = []
        for i, start in enumerate(starts):
            stop = min(total, start + batch_size)
            batch = [a[start:stop] for a in arrays]
            chunks.append(self.program(batch, stop - start))
            bar.update(i + 1, finalize=i + 1 == len(starts))
        if not chunks:
            chunks = [self.program([a[:0] for a in arrays], 0)]
        outputs = [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]
        return self._unpack(outputs)

    def predict_on_batch(self, x):
        return self(x)

    def _unpack(self, outputs):
        return outputs[0] if len(outputs) == 1 else list(outputs)

    # -- saving --------------------------------------------------------------------------
    def save(self, path: str):
        """Write a self-contained artifact folder that kcompile.load reads back."""
        from .artifact import save_artifact

        save_artifact(self, path)

    def export_onnx(self, path: str, opset: int | None = None):
        """Write the optimized graph as an ONNX model; returns the onnx.ModelProto."""
        from ..codegen.onnx import export_graph

        return export_graph(self.optimized, path, opset=opset)

    # -- description ------------------------------------------------------------------------
    def summary(self, print_fn=print):
        text = graph_summary(self.graph)
        plan = getattr(self.program, "plan", None)
        if plan is not None:
            from ..passes.memory import describe

            text += f"\nCompiled for {self.target}: {len(self.optimized.nodes)} kernels; {describe(plan)}"
        print_fn(text)

    def __repr__(self):
        return f"<CompiledModel {self.name!r} target={self.target} inputs={self.input_names} outputs={self.output_names}>"
