"""The compiled training step.

From the model's source, the frontend builds the forward graph in training mode
(Dropout and noise layers draw from inputs the runtime fills from a seeded generator;
BatchNormalization uses batch statistics and emits moving-average updates). The losses
are added in IR, the graph is differentiated in IR (kcompile.autodiff), optimized by the
same passes and compiled by the same Numba backend as inference. Trainable weights are
bound to the compiled program in place, so the optimizer's in-place updates are what
the next step reads."""
from __future__ import annotations

import copy
import time

import numpy as np

from ..autodiff import gradient_graph, trainable_as_inputs, trainable_params
from ..codegen.numba_cpu.kernels.random import bernoulli_fill
from ..codegen.numba_cpu.kernels.reduce import count_nonfinite, weighted_sum
from ..codegen.numba_cpu.threads import configure_threading
from ..errors import InputError, KcompileError
from ..frontend.model import ModelWalker
from ..ir import GraphBuilder
from ..passes import TRAINING_PIPELINE, run_pipeline
from .penalties import activity_regularizers, penalties_for


def bernoulli_mask(rng: np.random.Generator, shape: tuple, keep: float, out: np.ndarray | None = None,
                   value: float = 1.0) -> np.ndarray:
    """float32 `value` with probability `keep`, else zeros (into `out` when given): one
    64-bit key from `rng`, the entries hashed from it over threads (kernels.random),
    instead of one draw of NumPy's generator per entry on one thread."""
    mask = np.empty(shape, np.float32) if out is None else out
    if keep >= 1.0:
        mask[...] = value
        return mask
    configure_threading()  # the fill is a parallel kernel (a no-op after the first call)
    key = rng.integers(2**64, dtype=np.uint64)
    contiguous = mask.flags.c_contiguous
    flat = mask.reshape(-1) if contiguous else np.empty(mask.size, np.float32)  # reshape(-1): a view
    bernoulli_fill(flat, key, np.uint32(min(max(keep, 0.0) * 2.0**32, 2.0**32 - 1)), np.float32(value))
    if not contiguous:
        mask[...] = flat.reshape(mask.shape)
    return mask


def draw_random_inputs(specs, views: list, rng: np.random.Generator):
    """Fresh noise for the training graph's random inputs (see frontend noise layers),
    drawn into their views of the program's arena."""
    for spec, view in zip(specs, views):
        if spec["kind"] == "bernoulli":
            bernoulli_mask(rng, view.shape, spec["keep"], out=view, value=spec.get("value", 1.0))
        elif spec["kind"] == "normal":
            view[...] = rng.normal(spec["mean"], spec["stddev"], view.shape)
        else:
            raise KcompileError(f"unknown random input kind {spec['kind']!r}")


def with_loss(graph, losses: list, loss_weights: list) -> tuple:
    """Make output 0 of `graph` the per-sample total loss: the weighted losses of the
    outputs plus activity regularization. Adds one target input per loss (after the
    existing inputs); returns (graph, the target Values)."""
    b = GraphBuilder(graph=graph)
    targets, total = [], None
    for k, (pred, loss, weight) in enumerate(zip(list(graph.outputs), losses, loss_weights)):
        if loss is None:
            continue
        spec = loss.label_spec(pred.type)
        targets.append(b.input(f"target/{graph.output_names[k]}", spec.shape, spec.dtype))
        term = loss.build(b, pred, targets[-1])
        term = term if weight == 1.0 else b.mul(term, b.const(float(weight)))
        total = term if total is None else b.add(total, term)
    if total is None:
        raise KcompileError("compile() needs a loss for at least one output")
    for regularizer, value in activity_regularizers(graph):
        axes = tuple(range(1, value.rank))
        if regularizer.l2:
            total = b.add(total, b.mul(b.reduce_sum(b.square(value), axes=axes), b.const(regularizer.l2)))
        if regularizer.l1:
            total = b.add(total, b.mul(b.reduce_sum(b.abs(value), axes=axes), b.const(regularizer.l1)))
    graph.outputs = [total] + graph.outputs
    graph.output_names = ["loss"] + graph.output_names
    return graph, targets


class Trainer:
    """compile(optimizer, loss, metrics) for one CompiledModel: builds and runs steps."""

    def __init__(self, model, optimizer, losses: list, loss_weights: list, seed: int | None = None):
        from ..codegen.numba_cpu.compiler import compile_graph

        self.model = model
        self.optimizer = optimizer
        self.losses = losses
        self.loss_weights = loss_weights
        self.rng = np.random.default_rng(seed)
        self._uniform_weights: dict = {}  # batch -> (ones, ones / batch)
        if model.source is None:
            raise KcompileError("training needs the model's Keras source (a model file or keras.Model), "
                                "not a loaded artifact")
        walker = ModelWalker(model.source, training=True, input_shapes=model.input_shapes,
                             custom_objects=model.custom_objects, safe_mode=model.safe_mode)
        forward = walker.build()
        self._share_weights(forward)
        self.n_outputs = len(model.graph.outputs)
        self.random_specs = forward.meta.get("random_inputs", [])
        self.wrt = trainable_params(forward)
        # Moving statistics: outputs (shifted by the loss output) written back each step.
        self.state_updates = [(name, index + 1) for name, index in forward.meta.get("state_updates", [])]
        state = list(dict.fromkeys(name for name, _ in self.state_updates))
        self.penalties = penalties_for(forward, self.wrt)
        graph, self.target_values = with_loss(forward, losses, loss_weights)
        bound = self.wrt + state  # weights the program reads in place
        train = gradient_graph(trainable_as_inputs(graph, bound), loss_output_index=0, wrt=self.wrt,
                               reduction="input")
        self.grad_outputs = [train.meta["autodiff"]["gradient_outputs"][name] for name in self.wrt]
        self.arrays = {name: forward.params[name] for name in bound}
        self.params = [self.arrays[name] for name in self.wrt]
        self.graph = run_pipeline(train, TRAINING_PIPELINE)
        self.program = compile_graph(self.graph, external={name: self.arrays[name] for name in bound}, training=True)

    def _share_weights(self, forward):
        """The training graph reads the model's own weight arrays (one set of weights)."""
        own = {(info["layer"], info["index"]): name for name, info in self.model.graph.meta["keras_weights"].items()}
        for name, info in forward.meta["keras_weights"].items():
            shared = own.get((info["layer"], info["index"]))
            if shared is not None:
                forward.params[name] = self.model.graph.params[shared]

    # -- steps ---------------------------------------------------------------------------------
    def check_targets(self, targets: list, batch: int) -> list:
        """Targets as the loss expects them, with errors that name the problem."""
        if len(targets) != len(self.target_values):
            raise InputError(f"the model's losses take {len(self.target_values)} target(s), got {len(targets)}")
        arrays = []
        for value, y in zip(self.target_values, targets):
            y = np.asarray(y)
            if value.dtype.startswith("int"):
                if y.ndim == value.rank + 1 and y.shape[-1] == 1:
                    y = y.reshape(y.shape[:-1])
                if y.dtype.kind == "f" and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
                    raise InputError(f"{value.name}: class labels must be whole numbers")
            expected = value.type.concrete(batch)
            if y.shape != expected:
                raise InputError(f"{value.name} expects shape {expected} for a batch of {batch}, got {y.shape}")
            arrays.append(np.ascontiguousarray(y, dtype=value.dtype))
        return arrays

    def _weights(self, sample_weight, batch: int) -> tuple:
        """(per-sample loss weights, the same divided by the batch: the program's input),
        made once per batch size when there are none."""
        if sample_weight is None:
            if batch not in self._uniform_weights:
                ones = np.ones(batch, np.float32)
                self._uniform_weights[batch] = (ones, ones / batch)
            return self._uniform_weights[batch]
        weights = np.asarray(sample_weight, np.float32)
        return weights, weights / batch

    def _program_inputs(self, inputs: list, targets: list, scaled_weights, batch: int) -> list:
        """The training program's inputs: the model's, fresh noise for Dropout and the
        like (drawn into the program's own input views, which it then does not copy), the
        targets, and the per-sample loss weights divided by the batch."""
        views = self.program.input_views(batch)
        noise = views[len(inputs):len(inputs) + len(self.random_specs)]
        draw_random_inputs(self.random_specs, noise, self.rng)
        return list(inputs) + noise + list(targets) + [scaled_weights]

    def profile(self, inputs: list, targets: list, batch: int, repeats: int = 20) -> list:
        """(label, median seconds) of each step of the training program, then of the
        optimizer update (on copies: the model and its optimizer are left as they were)."""
        program_inputs = self._program_inputs(inputs, targets, self._weights(None, batch)[1], batch)
        steps = self.program.profile(program_inputs, batch, repeats)
        outputs = self.program(program_inputs, batch)
        grads = [outputs[i] for i in self.grad_outputs]
        optimizer, params = copy.deepcopy(self.optimizer), [p.copy() for p in self.params]  # the model's stay
        optimizer.apply(params, grads)  # builds the slots on a first step
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            optimizer.apply(params, grads)
            times.append(time.perf_counter() - start)
        return steps + [(f"optimizer ({type(self.optimizer).__name__})", float(np.median(times)))]

    def step(self, inputs: list, targets: list, sample_weight, batch: int) -> tuple:
        """One optimizer step on one batch: returns (loss, predictions). A non-finite loss
        leaves the weights as they were."""
        weights, scaled = self._weights(sample_weight, batch)
        # Views of the program's arena: read here, before the next step overwrites them.
        outputs = self.program.run_in_place(self._program_inputs(inputs, targets, scaled, batch), batch)
        loss = weighted_sum(outputs[0], weights) / batch
        grads = [outputs[i] for i in self.grad_outputs]
        for name, param, grad in zip(self.wrt, self.params, grads):
            regularizer = self.penalties.get(name, (None, None))[0]
            if regularizer is not None:
                loss += regularizer.loss(param)
                grad += regularizer.grad(param)
        if np.isfinite(loss) and not any(count_nonfinite(g.reshape(-1)) for g in grads):
            self.optimizer.apply(self.params, grads)
            for name, param in zip(self.wrt, self.params):
                constraint = self.penalties.get(name, (None, None))[1]
                if constraint is not None:
                    constraint.apply(param)
            for name, index in self.state_updates:
                np.copyto(self.arrays[name], outputs[index])
            self.model.weights_changed()
        return loss, [p.copy() for p in outputs[1 : 1 + self.n_outputs]]
