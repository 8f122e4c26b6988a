"""Layers kcompile has no built-in lowering for: custom layers and Lambda layers.

A layer class without an entry in the lowering table is lowered, in this order:

1. by a lowering the user registered with `register_layer` (kcompile.register_layer);
2. by tracing: when TensorFlow is installed and the class is available (the user's
   `custom_objects`, Keras's registered objects, or Keras itself), the layer is rebuilt
   from its config, given its saved weights, and its `call` is traced with TensorFlow
   and lowered op by op (tracing.py, tf_ops.py);
3. otherwise an UnsupportedLayerError says why, and how to provide a lowering.

Lambda layers (and any config holding Python bytecode) are refused unless the user passes
`safe_mode=False`: the bytecode in a model file is never executed otherwise.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import inspect
import sys

import numpy as np

from ..errors import UnsupportedLayerError
from .registry import LayerLowering

# Lowerings registered by users, keyed by Keras class name and by registered name
# ("package>Name"). Consulted for classes the built-in table does not know.
CUSTOM_LOWERINGS: dict[str, LayerLowering] = {}


def _names_of(name_or_class) -> list:
    if isinstance(name_or_class, str):
        return [name_or_class]
    if isinstance(name_or_class, type):
        names = [name_or_class.__name__]
        registered = _keras_registered_name(name_or_class)
        if registered and registered not in names:
            names.append(registered)
        return names
    raise TypeError(f"register_layer takes a class name or a class, not {type(name_or_class).__name__}")


def _keras_registered_name(cls) -> str | None:
    """The `package>Name` Keras registered the class under, if any (without importing Keras)."""
    for module_name in ("keras", "tf_keras"):
        if module_name not in sys.modules:
            continue
        try:
            module = importlib.import_module(module_name)
            name = module.saving.get_registered_name(cls)
        except Exception:  # noqa: BLE001 (old Keras versions lack the function)
            continue
        if name and name != cls.__name__:
            return name
    return None


def register_layer(name_or_class, masking: str = "drop"):
    """Register a lowering for a custom Keras layer class.

    `name_or_class` is the class name as saved in model files ("Antirectifier"), a
    registered name ("my_package>Antirectifier"), or the class itself (registered under
    its `__name__` and its Keras registered name). The decorated function is called as
    `fn(ctx, *inputs, **call_kwargs)` for every call of the layer and returns the output
    Value (or a tuple of them), built from IR primitives with `ctx.b`, so registered
    layers get gradients and every backend for free:

        import kcompile

        @kcompile.register_layer("Antirectifier")
        def antirectifier(ctx, x):
            b = ctx.b
            x = b.sub(x, b.reduce_mean(x, axes=(1,), keepdims=True))
            # ops.normalize: x / sqrt(max(sum(x^2), 1e-12)) along axis 1
            sum_sq = b.reduce_sum(b.square(x), axes=(1,), keepdims=True)
            x = b.mul(x, b.rsqrt(b.maximum(sum_sq, ctx.const(1e-12))))
            return b.concat(b.relu(x), b.relu(b.neg(x)), axis=1)

        model = kcompile.compile("antirectifier.keras")

    What `ctx` offers: `ctx.config` (the layer's saved config), `ctx.name`,
    `ctx.weight(index, role)` (saved weight `index`, in Keras's `layer.weights` order, as
    a trainable graph parameter), `ctx.arrays()` (the saved weights as arrays),
    `ctx.const(value)` and `ctx.error(message)`.

    masking: "drop" (outputs carry no Keras mask), "propagate" (they carry the first
    input's mask), or "custom" (the lowering reads ctx.masks and sets ctx.output_masks).
    Without a registration, kcompile traces the layer's call with TensorFlow when it can.
    """
    if masking not in ("propagate", "drop", "custom"):
        raise ValueError(f"masking must be 'propagate', 'drop' or 'custom', not {masking!r}")
    names = _names_of(name_or_class)

    def register(fn):
        for name in names:
            CUSTOM_LOWERINGS[name] = LayerLowering(fn, masking)
        return fn

    return register


def unregister_layer(name_or_class):
    """Remove the lowerings register_layer added for a class (names as in register_layer)."""
    for name in _names_of(name_or_class):
        CUSTOM_LOWERINGS.pop(name, None)


def registered_lowering(layer):
    for name in (layer.raw.get("registered_name"), layer.class_name, layer.class_name.split(">")[-1]):
        if name and name in CUSTOM_LOWERINGS:
            return CUSTOM_LOWERINGS[name]
    return None


# -- safe mode ----------------------------------------------------------------------------------


def holds_bytecode(config) -> bool:
    """Whether a layer config carries Python bytecode: Keras 3 `__lambda__` objects, or
    tf-keras's `function_type`/`output_shape_type`/`mask_type` "lambda"."""
    if isinstance(config, dict):
        if config.get("class_name") == "__lambda__":
            return True
        if any(k.endswith("_type") and v == "lambda" for k, v in config.items()):
            return True
        return any(holds_bytecode(v) for v in config.values())
    if isinstance(config, list):
        return any(holds_bytecode(v) for v in config)
    return False


def _safe_mode_error(layer) -> UnsupportedLayerError:
    kind = "a Lambda layer" if layer.class_name == "Lambda" else f"a {layer.class_name} layer"
    return UnsupportedLayerError(
        f"layer {layer.name!r} is {kind} whose config holds Python bytecode, and kcompile does not run "
        f"code stored in model files (loading it would execute whatever the file contains). If you trust "
        f"this file, pass safe_mode=False to kcompile.compile / kcompile.load_graph (as with "
        f"keras.models.load_model) to let Keras rebuild the layer and kcompile trace it; or write its "
        f"lowering with kcompile.register_layer({layer.class_name!r}) (ctx.name tells the layers apart)."
    )


# -- finding the Keras class ------------------------------------------------------------------------


def _keras_modules(walker, layer):
    """(tensorflow, the Keras that wrote the model); an error saying what is missing."""
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError:
        raise _no_lowering_error(layer, " (TensorFlow is not installed, so its call cannot be traced)") from None
    live = walker.source.extra.get("live_model")
    legacy = type(live).__module__.startswith("tf_keras") if live is not None else walker.keras_major < 3
    package = "tf_keras" if legacy else "keras"
    try:
        keras = importlib.import_module(package)
    except ImportError:
        raise _no_lowering_error(layer, f" ({package} is not installed, so the layer cannot be rebuilt)") from None
    if not legacy and keras.backend.backend() != "tensorflow":
        raise _no_lowering_error(
            layer, f" (tracing needs Keras's TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r})")
    return tf, keras


def _candidate_names(layer) -> list:
    names = [layer.raw.get("registered_name"), layer.class_name, layer.class_name.split(">")[-1]]
    return list(dict.fromkeys(n for n in names if n))


def find_class(keras, walker, layer):
    """The layer's class from custom_objects, Keras's registered objects, or Keras itself."""
    names = _candidate_names(layer)
    for name in names:
        if name in walker.custom_objects:
            return walker.custom_objects[name]
    for name in names:
        cls = keras.saving.get_registered_object(name)
        if cls is not None:
            return cls
    module = layer.raw.get("module") or ""
    builtin = module.startswith("keras") if module else ">" not in layer.class_name
    if builtin:
        cls = getattr(keras.layers, layer.class_name, None)
        if isinstance(cls, type):
            return cls
    return None


def _find_live_layer(model, path: str):
    """The layer object at `path` ("outer/inner/name") in a live model, or None."""
    current = model
    for part in path.split("/"):
        layers = getattr(current, "layers", None)
        if layers is None:
            return None
        current = next((l for l in layers if l.name == part), None)
        if current is None:
            return None
    return current


def _safe_mode_scope(keras, safe_mode: bool):
    package = keras.__name__.split(".")[0]
    try:
        module = importlib.import_module(f"{package}.src.saving.serialization_lib")
        return module.SafeModeScope(safe_mode)
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def rebuild_layer(keras, cls, walker, layer):
    """A new Keras layer from the saved config (not yet built)."""
    objects = dict(walker.custom_objects)
    for name in _candidate_names(layer):
        objects.setdefault(name, cls)
    config = copy.deepcopy(layer.config)  # from_config may modify it
    with keras.utils.custom_object_scope(objects), _safe_mode_scope(keras, walker.safe_mode):
        parameters = inspect.signature(cls.from_config).parameters
        extra = {}
        if "custom_objects" in parameters:
            extra["custom_objects"] = objects
        if "safe_mode" in parameters:
            extra["safe_mode"] = walker.safe_mode
        return cls.from_config(config, **extra)


def _short_name(variable) -> str:
    return str(getattr(variable, "name", "") or "").split("/")[-1].split(":")[0]


def _file_role(name: str, layer_name: str) -> str:
    name = name.split(":")[0]
    return name[len(layer_name) + 1:] if name.startswith(layer_name + "/") else name


def saved_order(keras_layer, saved, prefix: str = "") -> list | None:
    """[(variable, role)] in the order of LayerWeights.flat(), or None when the layer's
    structure does not match the file. A `.keras` tree holds a layer's own variables
    (trainable, then non-trainable), then each sublayer's under its attribute name, in key
    order; a legacy `.h5` list is `layer.weights`, with the names the file records."""
    if not saved.children:
        variables = list(keras_layer.weights)
        names = saved.names()
        if len(names) == len(variables) and all(names):
            roles = [_file_role(n, keras_layer.name) for n in names]
        else:
            roles = [_short_name(v) for v in variables]
        return [(v, prefix + r) for v, r in zip(variables, roles)]
    own = list(getattr(keras_layer, "_trainable_variables", [])) + list(
        getattr(keras_layer, "_non_trainable_variables", []))
    if len(own) != len(saved.own):
        return None
    ordered = [(v, prefix + _short_name(v)) for v in own]
    for key in sorted(saved.children):
        child = getattr(keras_layer, key, None)
        if child is None or not hasattr(child, "weights"):
            return None
        sub = saved_order(child, saved.children[key], f"{prefix}{key}/")
        if sub is None:
            return None
        ordered += sub
    return ordered


def _variables_for(ctx, keras_layer) -> list:
    """[(variable, role)] matching ctx.arrays() one to one."""
    arrays = ctx.arrays()
    fallback = [(v, _short_name(v)) for v in keras_layer.weights]
    for pairs in (saved_order(keras_layer, ctx.saved), fallback):
        if pairs is not None and [tuple(v.shape) for v, _ in pairs] == [a.shape for a in arrays]:
            return pairs
    raise UnsupportedLayerError(
        f"layer {ctx.name!r} ({ctx.class_name}): the rebuilt Keras layer has weights of shapes "
        f"{[tuple(v.shape) for v in keras_layer.weights]}, the file holds {[a.shape for a in arrays]}"
    )


def _example(tf, value):
    return tf.zeros(value.type.concrete(1), dtype={"float32": tf.float32, "int32": tf.int32,
                                                    "int64": tf.int64, "bool": tf.bool}[value.dtype])


def _provide(walker, layer, tf, keras, cls, ctx, args, kwargs):
    """(tf, the Keras layer built with the saved weights, [(variable, role)] in ctx.arrays() order)."""
    from .tracing import flatten_values, replace_values

    live = walker.source.extra.get("live_model")
    keras_layer = _find_live_layer(live, ctx.path) if live is not None else None
    if keras_layer is not None:  # the user's own object: built, weights set
        return tf, keras_layer, _variables_for(ctx, keras_layer)
    if cls is None:
        raise _no_lowering_error(layer, "")
    try:
        keras_layer = rebuild_layer(keras, cls, walker, layer)
        example = replace_values((list(args), kwargs), [_example(tf, v) for v in flatten_values((list(args), kwargs))])
        keras_layer(*example[0], **example[1], training=False)  # builds the layer
    except UnsupportedLayerError:
        raise
    except Exception as e:  # noqa: BLE001 (Keras and user code raise anything)
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({layer.class_name}): Keras cannot rebuild it from its config: "
            f"{type(e).__name__}: {e}"
        ) from e
    variables = _variables_for(ctx, keras_layer)
    for (variable, _), array in zip(variables, ctx.arrays()):
        dtype = getattr(variable.dtype, "name", variable.dtype)  # tf.DType (tf-keras) or a string (Keras 3)
        variable.assign(np.asarray(array, dtype=np.dtype(dtype)))
    return tf, keras_layer, variables


def _no_lowering_error(layer, reason: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"layer {layer.name!r} has class {layer.class_name!r}, which kcompile cannot lower{reason}. Register a "
        f"lowering with kcompile.register_layer({layer.class_name!r}), or make the class available "
        f"(custom_objects={{{layer.class_name.split('>')[-1]!r}: cls}} or keras.saving.register_keras_serializable) "
        f"so that kcompile can trace it with TensorFlow"
    )


def fallback_lowering(walker, layer):
    """The lowering for a layer class with no table entry, or an error that says why
    there is none and how to provide one."""
    lowering = registered_lowering(layer)
    if lowering is not None:
        return lowering
    live = walker.source.extra.get("live_model")
    if live is None and walker.safe_mode and holds_bytecode(layer.raw.get("config", layer.config)):
        raise _safe_mode_error(layer)
    tf, keras = _keras_modules(walker, layer)
    cls = find_class(keras, walker, layer)
    if cls is None and (live is None or not _has_live_layer(live, layer.name)):
        raise _no_lowering_error(layer, ": its class is not available")
    from .tracing import lower_by_tracing

    provide = functools.partial(_provide, walker, layer, tf, keras, cls)
    return LayerLowering(functools.partial(lower_by_tracing, provide), "drop")


def _has_live_layer(model, name: str) -> bool:
    for sub in getattr(model, "layers", []):
        if sub.name == name or _has_live_layer(sub, name):
            return True
    return False
