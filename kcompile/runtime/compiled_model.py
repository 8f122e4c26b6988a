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
        # Where the model came from (set by kcompile.compile; needed for training and saving).
        self.source = None
        self.input_shapes = self.custom_objects = None
        self.safe_mode = True
        self.disable_passes = ()
        # Training state (kcompile.training): set by compile().
        self.trainer = None
        self.optimizer = None
        self.stop_training = False
        self.history = None
        self._weights = None
        self._stale = False

    # -- inference ----------------------------------------------------------------------
    def __call__(self, inputs):
        """Run on one batch, whatever its size; returns an array (or a list for several outputs)."""
        self._refresh()
        arrays = normalize_inputs(inputs, self.inputs)
        return self._unpack(self.program(arrays, batch_size_of(arrays, self.inputs)))

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Keras's predict: batches of `batch_size` (default 32), outputs concatenated."""
        self._refresh()
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

    # -- weights -----------------------------------------------------------------------------
    @property
    def weight_store(self):
        from .weights import WeightStore

        if self._weights is None:
            self._weights = WeightStore(self.graph)
        return self._weights

    def get_weights(self) -> list:
        """The weights as NumPy arrays, in Keras's `model.get_weights()` order."""
        return self.weight_store.get_weights()

    def set_weights(self, weights):
        self.weight_store.set_weights(weights)
        self.weights_changed()

    def weights_changed(self):
        """Weights were updated in place: the inference program re-folds them before its next run."""
        self._stale = True

    def _refresh(self):
        if not self._stale:
            return
        from ..api import TARGETS
        from ..passes import run_pipeline

        self.optimized = run_pipeline(self.graph, disable=self.disable_passes)
        self.program = TARGETS[self.target](self.optimized)
        if self.trainer is not None:
            self.trainer.evaluator = None
        self._stale = False

    # -- saving --------------------------------------------------------------------------
    def save(self, path: str):
        """`.keras` or `.h5`: a model file Keras loads (these weights, the source's config).
        Any other path: a self-contained kcompile artifact folder (kcompile.load)."""
        if path.endswith((".keras", ".h5", ".hdf5")):
            self.weight_store.save_model(path, self.graph.meta.get("source"), self.graph.meta.get("live_model"))
            return
        from .artifact import save_artifact

        self._refresh()
        save_artifact(self, path)

    def save_weights(self, path: str):
        """Keras's `.weights.h5` file."""
        self.weight_store.save_weights(path, self.graph.meta.get("source"), self.graph.meta.get("live_model"))

    def load_weights(self, path: str):
        """Weights from a `.weights.h5` file or a model file of the same architecture."""
        from ..frontend.files import ModelSource
        from ..frontend.model import ModelWalker

        self.weight_store.load_weights(path, lambda: ModelWalker(ModelSource(self.graph.meta["model_config"], None)))
        self.weights_changed()

    # -- training (kcompile.training) ---------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, seed=None, **kwargs):
        """Keras's compile: optimizer, loss and metrics by Keras name or object. Without a
        loss, the training_config stored in an .h5 file is used when present."""
        from ..training.fit import compile_model

        compile_model(self, optimizer, loss, metrics, loss_weights, seed, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_batch_size=None, validation_freq=1):
        """Keras's fit, on compiled kernels; returns a History."""
        from ..training.fit import fit

        return fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
                   class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_batch_size,
                   validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        from ..training.fit import evaluate

        return evaluate(self, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        from ..training.fit import train_on_batch

        return train_on_batch(self, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        from ..training.fit import test_on_batch

        return test_on_batch(self, x, y, sample_weight, return_dict)

    def export_onnx(self, path: str, opset: int | None = None):
        """Write the optimized graph as an ONNX model; returns the onnx.ModelProto."""
        from ..codegen.onnx import export_graph

        self._refresh()
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
