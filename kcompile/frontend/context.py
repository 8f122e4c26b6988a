"""LayerContext: what a layer lowering sees of its layer (config, weights, builder)."""
from __future__ import annotations

import numpy as np

from ..errors import LayerConfigError
from ..ir import GraphBuilder, Value
from .weights import LayerWeights

_MISSING = object()


class LayerContext:
    def __init__(self, walker, layer, weights: LayerWeights, path: str):
        self.walker = walker
        self.b: GraphBuilder = walker.b
        self.layer = layer
        self.name: str = layer.name
        self.class_name: str = layer.class_name
        self.config: dict = layer.config
        self.path = path  # unique within the model: "sub/dense" for nested layers
        self.saved = weights
        self.masks: list = []
        self.output_masks = None
        self._arrays = None

    @property
    def keras_major(self) -> int:
        return self.walker.keras_major

    @property
    def training(self) -> bool:
        return self.walker.training

    def mask_of(self, value):
        """The Keras mask travelling with a tensor, or None."""
        return None if value is None else self.walker.value_masks.get(value.name)

    def error(self, message: str) -> LayerConfigError:
        return LayerConfigError(f"layer {self.name!r} ({self.class_name}): {message}")

    def cfg(self, key: str, default=_MISSING):
        if key in self.config:
            return self.config[key]
        if default is _MISSING:
            raise self.error(f"config has no {key!r}")
        return default

    # -- weights --------------------------------------------------------------------
    def arrays(self) -> list:
        """The layer's saved variables in Keras's `layer.weights` order."""
        if self._arrays is None:
            self._arrays = self.saved.flat(self.class_name)
        return self._arrays

    def expect_weights(self, count: int):
        found = len(self.arrays())
        if found != count:
            raise self.error(f"the config implies {count} weights, the file holds {found}")

    def weight(self, index: int, role: str, shape: tuple | None = None) -> Value:
        """Keras weight `index` of this layer as a graph parameter named `<layer>/<role>`.
        A shared layer's later calls reuse the same parameter."""
        arrays = self.arrays()
        if index >= len(arrays):
            raise self.error(f"expects a weight #{index} ({role}), the file holds {len(arrays)}")
        array = arrays[index]
        if shape is not None and tuple(array.shape) != tuple(shape):
            raise self.error(f"weight {role} has shape {tuple(array.shape)}, the config implies {tuple(shape)}")
        return self.walker.weight_param(self, index, role, array)

    def const(self, value) -> Value:
        return self.b.const(np.asarray(value, np.float32))

    # -- sublayers ----------------------------------------------------------------------
    def lower_sublayer(self, layer_config: dict, weights: LayerWeights, *inputs, masks=()) -> list:
        """Lower a wrapped layer (TimeDistributed, Bidirectional) as if called on inputs;
        returns [(value, mask)] for its outputs."""
        return self.walker.lower_inner(self, layer_config, weights, list(inputs), list(masks))
