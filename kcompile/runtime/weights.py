"""The model's weights in Keras's `model.weights` order, and writing them back into
files Keras loads.

The arrays are the graph's own parameter arrays (shared, updated in place), so a
training step, set_weights and the next predict all see one set of weights. Saving
patches a copy of the file the model came from (same format: the datasets the weights
were read from are overwritten); another format goes through Keras itself."""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile

import h5py
import numpy as np

from ..errors import KcompileError


class WeightStore:
    def __init__(self, graph):
        self.graph = graph
        saved = graph.meta.get("saved_weights")
        if saved is None:
            raise KcompileError("this model carries no Keras weight layout (was it loaded from an artifact?)")
        param_of = {(info["layer"], info["index"]): name for name, info in graph.meta.get("keras_weights", {}).items()}
        self.entries = []  # (layer path, index, param name or None, dataset path)
        self.arrays = []
        for path, index, array, dataset in saved:
            param = param_of.get((path, index))
            self.entries.append((path, index, param, dataset))
            self.arrays.append(graph.params[param] if param else np.array(array))

    def get_weights(self) -> list:
        return [a.copy() for a in self.arrays]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self.arrays):
            raise KcompileError(f"set_weights: the model has {len(self.arrays)} weights, got {len(weights)}")
        for (path, index, _, _), target, new in zip(self.entries, self.arrays, weights):
            new = np.asarray(new)
            if new.shape != target.shape:
                raise KcompileError(f"set_weights: weight {index} of layer {path!r} has shape {target.shape}, "
                                    f"got {new.shape}")
            np.copyto(target, new.astype(target.dtype, copy=False))

    # -- files ------------------------------------------------------------------------------
    def save_model(self, path: str, source_path: str | None, live_model=None):
        """Write the model (config from its source, these weights) to `path`."""
        source_format = _format_of(source_path) if source_path else None
        target_format = _format_of(path)
        if source_path and source_format == target_format:
            _atomic(path, lambda tmp: self._patch_copy(source_path, tmp, target_format))
        else:
            _atomic(path, lambda tmp: self._save_with_keras(source_path, tmp, live_model, target_format))

    def _patch_copy(self, source: str, out: str, fmt: str):
        if fmt == "h5":
            shutil.copyfile(source, out)
            with h5py.File(out, "r+") as f:
                self._write_datasets(f)
            return
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for name in src.namelist():
                data = src.read(name)
                if name == "model.weights.h5":
                    data = self._patched_weights_file(data)
                dst.writestr(name, data)

    def _patched_weights_file(self, data: bytes) -> bytes:
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as f:
            self._write_datasets(f)
        return buffer.getvalue()

    def _write_datasets(self, f):
        for (path, index, _, dataset), array in zip(self.entries, self.arrays):
            if dataset is None or dataset not in f:
                raise KcompileError(f"cannot find where weight {index} of layer {path!r} is stored in the file")
            f[dataset][...] = array

    def _save_with_keras(self, source, out, live_model, fmt):
        """Another format than the source's: Keras builds the file from the source model."""
        model = live_model
        if model is None:
            import keras

            model = keras.models.load_model(source, compile=False, safe_mode=False)
        model.set_weights(self.get_weights())
        model.save(out if fmt == "keras" or out.endswith(".h5") else out)

    def save_weights(self, path: str, source_path: str | None, live_model=None):
        """Keras's `.weights.h5` (the weights part of a .keras file)."""
        if not path.endswith(".weights.h5"):
            raise KcompileError(f"save_weights needs a file name ending in .weights.h5, got {path!r}")
        if source_path and _format_of(source_path) == "keras":
            with zipfile.ZipFile(source_path) as src:
                data = self._patched_weights_file(src.read("model.weights.h5"))
            _atomic(path, lambda tmp: open(tmp, "wb").write(data))
            return

        def with_keras(tmp):
            model = live_model
            if model is None:
                import keras

                model = keras.models.load_model(source_path, compile=False, safe_mode=False)
            model.set_weights(self.get_weights())
            model.save_weights(tmp)

        _atomic(path, with_keras)

    def load_weights(self, path: str, walker_for):
        """Read a `.weights.h5` (Keras 3) or a model file and set these weights from it."""
        from ..frontend.files import read_model_file
        from ..frontend.weights import keras_tree_from_h5

        if path.endswith(".weights.h5"):
            with h5py.File(path, "r") as f:
                tree = keras_tree_from_h5(f)
        else:
            tree = read_model_file(path).weights
        entries = walker_for().record_weights(self.graph.meta["model_config"], tree)
        self.set_weights([array for _, _, array, _ in entries])


def _format_of(path: str) -> str:
    if path.endswith(".keras"):
        return "keras"
    if path.endswith((".h5", ".hdf5")):
        return "h5"
    raise KcompileError(f"{path}: save to a .keras or .h5 file")


def _atomic(path: str, write):
    """Write through a temporary file in the same folder, then rename: never a half file."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    suffix = ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".kcompile-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
