"""Reading Keras model files (`.keras` zips and legacy `.h5`) without TensorFlow or Keras.

Both formats become a `ModelSource`: the model's config (plain JSON data, never
executed), its weights per top-level layer, and what the file says about itself.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..errors import ModelFileError
from .weights import LayerWeights, decode, keras_tree_from_h5

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class ModelSource:
    config: dict  # {"class_name": ..., "config": {...}}
    weights: LayerWeights  # children: one per top-level layer
    keras_version: str = "3"
    training_config: dict | None = None
    path: str | None = None
    format: str = "keras"
    extra: dict = field(default_factory=dict)

    @property
    def keras_major(self) -> int:
        try:
            return int(str(self.keras_version).split(".")[0])
        except ValueError:
            return 3


def read_model_file(path) -> ModelSource:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a folder (a TensorFlow SavedModel?); kcompile reads .keras and .h5 files")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        return _read_keras_zip(path)
    if head == HDF5_MAGIC:
        return _read_legacy_h5(path)
    raise ModelFileError(f"{path}: not a Keras model file (neither a .keras zip nor HDF5)")


def _json(text, what: str, path: str) -> dict:
    try:
        return json.loads(decode(text))
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: {what} is not valid JSON ({e})") from None


def _read_keras_zip(path: str) -> ModelSource:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise ModelFileError(f"{path}: the .keras archive has no config.json member")
            config = _json(zf.read("config.json"), "config.json", path)
            metadata = _json(zf.read("metadata.json"), "metadata.json", path) if "metadata.json" in names else {}
            if "model.weights.h5" in names:
                data = zf.read("model.weights.h5")
            elif "model.weights.npz" in names:
                raise ModelFileError(f"{path}: npz weight storage is not supported; save with the default h5 weights")
            else:
                raise ModelFileError(f"{path}: the .keras archive has no model.weights.h5 member")
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{path}: damaged .keras archive ({e})") from None
    except (OSError, EOFError) as e:
        raise ModelFileError(f"{path}: cannot read the .keras archive ({e})") from None
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            weights = keras_tree_from_h5(f)
    except OSError as e:
        raise ModelFileError(f"{path}: model.weights.h5 inside the archive is damaged ({e})") from None
    if "class_name" not in config or "config" not in config:
        raise ModelFileError(f"{path}: config.json does not describe a Keras model")
    return ModelSource(
        config=config,
        weights=weights,
        keras_version=metadata.get("keras_version", "3"),
        path=path,
        format="keras",
        extra={"metadata": metadata},
    )


def _read_legacy_h5(path: str) -> ModelSource:
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                what = "weights only (save_weights output)" if "layer_names" in f.attrs else "not a Keras model"
                raise ModelFileError(f"{path}: HDF5 file without a model_config attribute: {what}")
            config = _json(f.attrs["model_config"], "model_config", path)
            training = f.attrs.get("training_config")
            root = f["model_weights"] if "model_weights" in f else f
            weights = LayerWeights(children={name: _h5_layer(root, name, path) for name in _layer_names(root)})
            version = decode(f.attrs.get("keras_version", root.attrs.get("keras_version", "2")))
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read HDF5 ({e}); the file may be truncated") from None
    return ModelSource(
        config=config,
        weights=weights,
        keras_version=version,
        training_config=_json(training, "training_config", path) if training is not None else None,
        path=path,
        format="h5",
    )


def _layer_names(root) -> list:
    return [decode(n) for n in root.attrs.get("layer_names", [])]


def _h5_layer(root, name: str, path: str) -> LayerWeights:
    if name not in root:
        raise ModelFileError(f"{path}: no weights group for layer {name!r}")
    group = root[name]
    own, paths = [], []
    for weight_name in (decode(n) for n in group.attrs.get("weight_names", [])):
        if weight_name not in group:
            raise ModelFileError(f"{path}: layer {name!r} lists weight {weight_name!r} but the file lacks it")
        own.append((weight_name.replace(":0", ""), np.asarray(group[weight_name])))
        paths.append(f"{group.name}/{weight_name}")
    return LayerWeights(own, group_name=name, paths=paths)
