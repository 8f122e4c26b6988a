"""Walking a Keras model config (Sequential or functional, nested, shared layers) and
lowering each layer call into IR with the lowering table."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import LayerConfigError, ModelFileError, UnsupportedLayerError
from ..ir import Graph, GraphBuilder, Value
from .context import LayerContext
from .files import ModelSource
from .registry import LAYER_LOWERINGS, OP_LOWERINGS
from .weights import EMPTY, LayerWeights, to_snake_case

MODEL_CLASSES = ("Functional", "Sequential", "Model")
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")


@dataclass(frozen=True)
class TensorRef:
    layer: str
    node: int
    tensor: int


@dataclass
class Call:
    args: list
    kwargs: dict


@dataclass
class LayerSpec:
    class_name: str
    name: str
    config: dict
    calls: list = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    @property
    def is_model(self) -> bool:
        return self.class_name in MODEL_CLASSES


# -- reading configs -------------------------------------------------------------------


def _is_keras3_tensor(obj) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


def _is_ref_triple(obj, layer_names) -> bool:
    return (
        isinstance(obj, list)
        and len(obj) == 3
        and isinstance(obj[0], str)
        and obj[0] in layer_names
        and all(isinstance(i, int) for i in obj[1:])
    )


def _convert_tensors(obj, layer_names):
    """Replace serialized tensors (Keras 3 dicts, Keras 2 triples) by TensorRefs."""
    if _is_keras3_tensor(obj):
        return TensorRef(*obj["config"]["keras_history"])
    if isinstance(obj, dict) and obj.get("class_name") in ("__tensor__", "__numpy__"):
        return np.asarray(obj["config"]["value"], dtype=obj["config"].get("dtype") or "float32")
    if _is_ref_triple(obj, layer_names):
        return TensorRef(*obj)
    if isinstance(obj, list):
        return [_convert_tensors(o, layer_names) for o in obj]
    if isinstance(obj, dict):
        return {k: _convert_tensors(v, layer_names) for k, v in obj.items()}
    return obj


def _parse_call(node, layer_names) -> Call:
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        return Call(_convert_tensors(node.get("args", []), layer_names), _convert_tensors(node.get("kwargs", {}), layer_names))
    # Keras 2: [[layer, node, tensor, kwargs], ...], one entry per input tensor;
    # TFOpLambda nodes hold a single entry, not nested.
    if node and isinstance(node[0], str):
        node = [node]
    refs = [TensorRef(e[0], e[1], e[2]) for e in node]
    kwargs = _convert_tensors(node[0][3], layer_names) if node and len(node[0]) > 3 else {}
    return Call([refs[0]] if len(refs) == 1 else [refs], kwargs)


def parse_layer(raw: dict, layer_names) -> LayerSpec:
    class_name = raw.get("class_name")
    config = raw.get("config") or {}
    name = raw.get("name") or config.get("name")
    if not class_name or not name:
        raise ModelFileError(f"layer entry without class_name or name: {str(raw)[:200]}")
    calls = [_parse_call(n, layer_names) for n in raw.get("inbound_nodes", [])]
    return LayerSpec(class_name, name, config, calls, raw)


def _flatten(obj) -> list:
    if isinstance(obj, (list, tuple)):
        return [x for o in obj for x in _flatten(o)]
    if isinstance(obj, dict):
        return [x for o in obj.values() for x in _flatten(o)]
    return [obj]


def _map_refs(obj, fn):
    if isinstance(obj, TensorRef):
        return fn(obj)
    if isinstance(obj, list):
        return [_map_refs(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _map_refs(v, fn) for k, v in obj.items()}
    return obj


def _endpoint_refs(spec, layer_names) -> tuple:
    """input_layers / output_layers: one triple, a list of triples, or a dict of them."""
    if isinstance(spec, dict):
        names = list(spec)
        return [TensorRef(*spec[k]) for k in names], names
    if _is_ref_triple(spec, layer_names):
        return [TensorRef(*spec)], None
    return [TensorRef(*s) for s in spec], None


def dtype_name(dtype) -> str | None:
    if isinstance(dtype, dict):
        return (dtype.get("config") or {}).get("name")
    return dtype


# -- the walker ---------------------------------------------------------------------------


class ModelWalker:
    """Lowers a ModelSource into a Graph, layer call by layer call."""

    def __init__(self, source: ModelSource, training: bool = False, input_shapes=None, lowerings=None,
                 custom_objects=None, safe_mode: bool = True):
        self.source = source
        self.training = training
        self.custom_objects = dict(custom_objects or {})
        self.safe_mode = safe_mode
        self.input_shapes = dict(input_shapes or {})
        self.lowerings = lowerings if lowerings is not None else LAYER_LOWERINGS
        self.keras_major = source.keras_major
        name = (source.config.get("config") or {}).get("name") or "model"
        self.b = GraphBuilder(name)
        self._params: dict = {}
        self.value_masks: dict = {}  # value name -> its Keras mask (a Value)
        self.layer_configs: dict = {}  # layer path -> config (regularizers, constraints)
        self.random_inputs: list = []  # training mode: noise the runtime draws each step
        self.state_updates: list = []  # training mode: (param name, new value) per step
        self.layer_log: list = []  # (layer path, class, node range) for summaries

    # -- entry point ------------------------------------------------------------------
    def build(self) -> Graph:
        config = self.source.config
        if config.get("class_name") not in MODEL_CLASSES:
            raise ModelFileError(
                f"{self.source.path}: the top-level object is a {config.get('class_name')!r}, not a Keras model"
            )
        outputs, names = self.lower_model(config, self.source.weights, prefix="", inputs=None)
        self.b.output([v for v, _ in outputs], names)
        graph = self.b.graph
        saved = self.record_weights(config, self.source.weights)
        graph.meta.update(
            source=self.source.path,
            format=self.source.format,
            keras_version=self.source.keras_version,
            training_config=self.source.training_config,
            layers=self.layer_log,
            keras_weights={v.name: info for v, info in self._params.values()},
            # Keras's model.weights order: [(layer path, index, array, dataset path in the file)]
            saved_weights=saved,
            model_config=config,
            layer_configs=self.layer_configs,
            live_model=self.source.extra.get("live_model"),
        )
        if self.training:
            # Random inputs follow the model's inputs; state updates follow its outputs.
            graph.meta["random_inputs"] = [dict(spec, name=v.name) for v, spec in self.random_inputs]
            graph.meta["state_updates"] = [(param, len(graph.outputs) + k) for k, (param, _) in enumerate(self.state_updates)]
            graph.outputs = graph.outputs + [v for _, v in self.state_updates]
            graph.output_names = graph.output_names + [f"update/{param}" for param, _ in self.state_updates]
        return graph

    # -- models -----------------------------------------------------------------------
    def _layers(self, config: dict, weights: LayerWeights):
        """A model config's layers (LayerSpecs), their names, and each layer's saved weights."""
        class_name = config.get("class_name")
        body = config.get("config") or {}
        raw_layers = body.get("layers")
        if raw_layers is None:
            raise ModelFileError(f"{self.source.path}: model {body.get('name')!r} ({class_name}) lists no layers")
        names = {l.get("name") or (l.get("config") or {}).get("name") for l in raw_layers}
        layers = [parse_layer(l, names) for l in raw_layers]
        sub_weights = weights.sublayers([l.name for l in layers], body.get("name", "model"))
        keys = self._container_keys(layers, class_name == "Sequential")
        weights_of = {l.name: sub_weights.get(l.name) or sub_weights.get(k) or EMPTY for l, k in zip(layers, keys)}
        return layers, names, weights_of

    def record_weights(self, config: dict, weights: LayerWeights, prefix: str = "") -> list:
        """Every saved weight in Keras's `model.weights` order (layers in config order,
        nested models in place): [(layer path, index, array, dataset path in the file)]."""
        layers, _, weights_of = self._layers(config, weights)
        entries = []
        for layer in layers:
            path = f"{prefix}{layer.name}"
            if layer.is_model:
                entries += self.record_weights(layer.raw, weights_of[layer.name], f"{path}/")
            else:
                entries += [(path, i, a, p) for i, (a, p) in enumerate(weights_of[layer.name].flat_entries(layer.class_name))]
        return entries

    def lower_model(self, config: dict, weights: LayerWeights, prefix: str, inputs):
        """Lower a Sequential or functional model; `inputs` None means the top level.
        Returns [(value, mask)] for the outputs and the output names."""
        class_name = config.get("class_name")
        body = config.get("config") or {}
        layers, names, weights_of = self._layers(config, weights)
        if class_name == "Sequential":
            return self._lower_sequential(body, layers, weights_of, prefix, inputs)
        return self._lower_functional(body, layers, weights_of, prefix, inputs, names)

    @staticmethod
    def _container_keys(layers, sequential: bool) -> list:
        """The group keys Keras gives layers in `.keras` files (for files without names)."""
        used: dict = {}
        keys = []
        for layer in layers:
            if sequential and layer.class_name == "InputLayer":
                keys.append(None)
                continue
            key = to_snake_case(layer.class_name)
            if key in used:
                used[key] += 1
                key = f"{key}_{used[key]}"
            else:
                used[key] = 0
            keys.append(key)
        return keys

    def _make_input(self, layer: LayerSpec, shape=None):
        config = layer.config
        shape = shape or config.get("batch_shape") or config.get("batch_input_shape")
        if shape is None and "shape" in config:
            shape = [None] + list(config["shape"])
        if shape is None:
            raise ModelFileError(f"input {layer.name!r} has no shape in the config")
        shape = self.input_shapes.get(layer.name, shape)
        shape = (None,) + tuple(shape[1:])
        if None in shape[1:]:
            raise LayerConfigError(
                f"input {layer.name!r} has shape {shape} with an unknown non-batch dimension; "
                f"pass input_shapes={{{layer.name!r}: (None, ...)}} with every other dimension fixed"
            )
        dtype = dtype_name(config.get("dtype")) or "float32"
        if dtype in FLOAT_DTYPES:
            dtype = "float32"
        elif dtype not in ("int32", "int64", "bool"):
            raise LayerConfigError(f"input {layer.name!r} has dtype {dtype!r}, which kcompile does not support")
        return self.b.input(layer.name, shape, dtype), None

    def _lower_sequential(self, body, layers, weights_of, prefix, inputs):
        rest = [l for l in layers if l.class_name != "InputLayer"]
        if inputs is None:
            first = layers[0] if layers else None
            if first is not None and first.class_name == "InputLayer":
                current = self._make_input(first)
            else:
                shape = body.get("build_input_shape")
                if shape is None and rest:
                    shape = rest[0].config.get("batch_input_shape") or rest[0].config.get("batch_shape")
                    shape = shape or (rest[0].raw.get("build_config") or {}).get("input_shape")
                if shape is None:
                    raise ModelFileError(
                        f"{self.source.path}: Sequential model {body.get('name')!r} was never built, so its input shape is unknown"
                    )
                name = f"{rest[0].name}_input" if rest else "input"
                current = self._make_input(LayerSpec("InputLayer", name, {"batch_shape": shape}), shape)
        else:
            current = inputs[0]
        for layer in rest:
            (current,) = self._lower_call(layer, weights_of[layer.name], prefix, Call([TensorRef("", 0, 0)], {}), {TensorRef("", 0, 0): current})
        name = rest[-1].name if rest else "output"
        return [current], [name]

    def _lower_functional(self, body, layers, weights_of, prefix, inputs, layer_names):
        by_name = {l.name: l for l in layers}
        in_refs, _ = _endpoint_refs(body.get("input_layers", []), layer_names)
        out_refs, out_names = _endpoint_refs(body.get("output_layers", []), layer_names)
        tensors: dict = {}
        for i, ref in enumerate(in_refs):
            layer = by_name.get(ref.layer)
            if layer is None:
                raise ModelFileError(f"model input refers to unknown layer {ref.layer!r}")
            tensors[TensorRef(ref.layer, 0, 0)] = self._make_input(layer) if inputs is None else inputs[i]
        offsets = self._node_offsets(layers, by_name)
        pending = [(l, k) for l in layers if l.class_name != "InputLayer" for k in range(len(l.calls))]
        while pending:
            remaining = []
            for layer, k in pending:
                call = layer.calls[k]
                refs = [r for r in _flatten([call.args, call.kwargs]) if isinstance(r, TensorRef)]
                resolved = {r: tensors.get(self._key(r, offsets)) for r in refs}
                if any(v is None for v in resolved.values()):
                    remaining.append((layer, k))
                    continue
                outs = self._lower_call(layer, weights_of[layer.name], prefix, call, resolved)
                for t, out in enumerate(outs):
                    tensors[TensorRef(layer.name, k, t)] = out
            if len(remaining) == len(pending):
                missing = ", ".join(f"{l.name}[{k}]" for l, k in remaining[:5])
                raise ModelFileError(f"cannot order the layer calls {missing}: their inputs are never produced")
            pending = remaining
        outputs = []
        for ref in out_refs:
            value = tensors.get(self._key(ref, offsets))
            if value is None:
                raise ModelFileError(f"model output {ref} is never produced")
            outputs.append(value)
        return outputs, out_names or [r.layer for r in out_refs]

    def _node_offsets(self, layers, by_name) -> dict:
        """tf-keras counts a nested model's own construction node: its calls start at 1."""
        offsets = {}
        if self.keras_major >= 3:
            return offsets
        for layer in layers:
            for call in layer.calls:
                for ref in _flatten([call.args, call.kwargs]):
                    if isinstance(ref, TensorRef) and ref.layer in by_name:
                        target = by_name[ref.layer]
                        if target.is_model and ref.node >= len(target.calls):
                            offsets[ref.layer] = 1
        return offsets

    @staticmethod
    def _key(ref: TensorRef, offsets) -> TensorRef:
        return TensorRef(ref.layer, ref.node - offsets.get(ref.layer, 0), ref.tensor)

    # -- layers -------------------------------------------------------------------------
    def _lowering_for(self, layer: LayerSpec):
        if layer.is_model:
            return None
        if self._is_operation(layer):
            lowering = OP_LOWERINGS.get(layer.class_name)
            if lowering is None:
                raise UnsupportedLayerError(
                    f"node {layer.name!r} applies keras.ops.{layer.class_name}, which kcompile cannot lower yet"
                )
            return lowering
        lowering = self.lowerings.get(layer.class_name) or self.lowerings.get(layer.raw.get("registered_name") or "")
        if lowering is None:
            from .custom import fallback_lowering  # custom and Lambda layers

            lowering = fallback_lowering(self, layer)
        return lowering

    @staticmethod
    def _is_operation(layer: LayerSpec) -> bool:
        """A keras.ops node rather than a layer. Legacy .h5 files drop the module, but
        operation configs never carry the `trainable` flag every layer config has."""
        module = layer.raw.get("module") or ""
        if module:
            return module.startswith(("keras.src.ops", "keras.ops"))
        return "trainable" not in layer.config and layer.class_name in OP_LOWERINGS

    def _check_dtype_policy(self, layer: LayerSpec):
        policy = dtype_name(layer.config.get("dtype"))
        if policy not in (None, "float32"):
            raise LayerConfigError(
                f"layer {layer.name!r} ({layer.class_name}) uses dtype policy {policy!r}; kcompile computes in float32"
            )

    def _lower_call(self, layer: LayerSpec, weights, prefix, call: Call, resolved: dict) -> list:
        path = f"{prefix}{layer.name}"
        args = _map_refs(call.args, lambda r: resolved[r][0])
        kwargs = {k: v for k, v in call.kwargs.items() if k not in ("training", "mask")}
        kwargs = _map_refs(kwargs, lambda r: resolved[r][0])
        masks = [resolved[r][1] for r in _flatten(call.args) if isinstance(r, TensorRef)]
        explicit = call.kwargs.get("mask")
        if explicit is not None:
            masks = [self._as_float_mask(resolved[r][0]) for r in _flatten([explicit]) if isinstance(r, TensorRef)]
        if layer.is_model:
            inputs = list(zip(_flatten(args), masks))
            outputs, _ = self.lower_model(layer.raw, weights, f"{path}/", inputs)
            return outputs
        self._check_dtype_policy(layer)
        lowering = self._lowering_for(layer)
        ctx = LayerContext(self, layer, weights, path)
        ctx.masks = masks
        self.layer_configs[path] = layer.config
        start = len(self.b.graph.nodes)
        log_index = len(self.layer_log)
        self.layer_log.append(None)  # filled below; wrapped sublayers log after their parent
        with self.b.meta(layer=path):
            try:
                result = lowering.fn(ctx, *args, **kwargs)
            except TypeError as e:
                if "argument" not in str(e):
                    raise
                raise LayerConfigError(f"layer {layer.name!r} ({layer.class_name}): unsupported call ({e})") from None
        self.layer_log[log_index] = (path, layer.class_name, start, len(self.b.graph.nodes))
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        if lowering.masking == "custom":
            out_masks = ctx.output_masks or [None] * len(outputs)
        elif lowering.masking == "propagate" and masks:
            out_masks = [masks[0]] * len(outputs)
        else:
            out_masks = [None] * len(outputs)
        for value, mask in zip(outputs, out_masks):
            if mask is not None:
                self.value_masks[value.name] = mask
        return list(zip(outputs, out_masks))

    def lower_inner(self, ctx: LayerContext, layer_config: dict, weights, inputs, masks) -> list:
        """Lower a layer wrapped by another (TimeDistributed's, Bidirectional's), each
        input a positional argument. Returns [(value, mask)]."""
        inner = parse_layer({**layer_config, "inbound_nodes": []}, set())
        masks = list(masks) + [None] * (len(inputs) - len(masks))
        refs = {TensorRef(f"__arg{i}", 0, 0): pair for i, pair in enumerate(zip(inputs, masks))}
        return self._lower_call(inner, weights, f"{ctx.path}/", Call(list(refs), {}), refs)

    def random_input(self, ctx: LayerContext, shape: tuple, **spec) -> Value:
        """A graph input the training loop fills with fresh noise every step; spec says
        what to draw (see kcompile.training.trainer.draw_random_inputs)."""
        value = self.b.input(f"random/{ctx.path}", shape)
        self.random_inputs.append((value, spec))
        return value

    def state_update(self, param: Value, new_value: Value):
        """Training mode: `param` takes `new_value` after each step (moving statistics)."""
        self.state_updates.append((param.name, new_value))

    def _as_float_mask(self, value: Value) -> Value:
        return value if value.dtype == "float32" else self.b.cast(value, dtype="float32")

    def weight_param(self, ctx: LayerContext, index: int, role: str, array: np.ndarray) -> Value:
        key = (ctx.path, index)
        if key not in self._params:
            value = self.b.param(np.asarray(array, np.float32) if array.dtype.kind == "f" else array, f"{ctx.path}/{role}")
            trainable = bool(ctx.config.get("trainable", True))
            self._params[key] = (value, {"layer": ctx.path, "index": index, "role": role, "trainable": trainable})
        return self._params[key][0]
