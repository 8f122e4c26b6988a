"""Loading a native library from Python through ctypes (for `kcompile run` and tests).

    lib = NativeLibrary("libmodel.so")
    outputs = lib([x])            # NumPy arrays in, NumPy arrays out
    lib.close()

The library's own C API does the work; ctypes releases the GIL during a run, so
several Python threads may run one NativeLibrary at once."""
from __future__ import annotations

import ctypes

import numpy as np

from ...errors import InputError, KcompileError

DTYPES = {0: np.float32, 1: np.int32, 2: np.int64, 3: np.bool_}
NATIVE_TYPES = 1


def _signatures(lib):
    c = ctypes
    vp, i64, i = c.c_void_p, c.c_int64, c.c_int
    table = {
        "kc_model_create": (i, [c.POINTER(vp)]),
        "kc_model_destroy": (None, [vp]),
        "kc_model_run": (i, [vp, c.POINTER(vp), c.POINTER(vp), i64]),
        "kc_model_run_ex": (i, [vp, c.POINTER(vp), i, c.POINTER(vp), i, i64, i]),
        "kc_model_set_num_threads": (i, [vp, i]),
        "kc_model_num_threads": (i, [vp]),
        "kc_model_num_inputs": (i, [vp]),
        "kc_model_num_outputs": (i, [vp]),
        "kc_model_input_name": (c.c_char_p, [vp, i]),
        "kc_model_output_name": (c.c_char_p, [vp, i]),
        "kc_model_input_rank": (i, [vp, i]),
        "kc_model_output_rank": (i, [vp, i]),
        "kc_model_input_shape": (i, [vp, i, c.POINTER(i64), i]),
        "kc_model_output_shape": (i, [vp, i, c.POINTER(i64), i]),
        "kc_model_input_dtype": (i, [vp, i]),
        "kc_model_output_dtype": (i, [vp, i]),
        "kc_model_input_size": (i, [vp, i, i64, c.POINTER(i64)]),
        "kc_model_output_size": (i, [vp, i, i64, c.POINTER(i64)]),
        "kc_model_has_batch": (i, [vp]),
        "kc_model_name": (c.c_char_p, [vp]),
        "kc_last_error": (c.c_char_p, []),
        "kc_status_string": (c.c_char_p, [i]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


class TensorSpec:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, shape, dtype

    def __repr__(self):
        return f"TensorSpec({self.name!r}, {self.shape}, {np.dtype(self.dtype).name})"


class NativeLibrary:
    """A loaded kcompile native library and one model handle."""

    def __init__(self, path: str, num_threads: int | None = None):
        try:
            self.lib = ctypes.CDLL(path)
            _signatures(self.lib)
        except (OSError, AttributeError) as e:
            raise KcompileError(f"{path}: not a kcompile native library ({e})") from None
        self.path = path
        handle = ctypes.c_void_p()
        self._check(self.lib.kc_model_create(ctypes.byref(handle)))
        self.handle = handle
        if num_threads is not None:
            self._check(self.lib.kc_model_set_num_threads(self.handle, int(num_threads)))
        self.inputs = [self._spec(k, False) for k in range(self.lib.kc_model_num_inputs(self.handle))]
        self.outputs = [self._spec(k, True) for k in range(self.lib.kc_model_num_outputs(self.handle))]
        self.has_batch = bool(self.lib.kc_model_has_batch(self.handle))
        self._input_pointers = ctypes.c_void_p * max(len(self.inputs), 1)
        self._output_pointers = ctypes.c_void_p * max(len(self.outputs), 1)
        self.name = self.lib.kc_model_name(self.handle).decode()

    def _check(self, status: int):
        if status != 0:
            message = self.lib.kc_last_error().decode()
            kind = self.lib.kc_status_string(status).decode()
            error = InputError if status in (1, 2, 3, 5) else KcompileError
            raise error(f"{kind}: {message}")

    def _spec(self, k: int, output: bool) -> TensorSpec:
        side = "output" if output else "input"
        lib = self.lib
        rank = getattr(lib, f"kc_model_{side}_rank")(self.handle, k)
        dims = (ctypes.c_int64 * max(rank, 1))()
        self._check(getattr(lib, f"kc_model_{side}_shape")(self.handle, k, dims, rank))
        shape = tuple(None if d == -1 else int(d) for d in dims[:rank])
        name = getattr(lib, f"kc_model_{side}_name")(self.handle, k).decode()
        return TensorSpec(name, shape, DTYPES[getattr(lib, f"kc_model_{side}_dtype")(self.handle, k)])

    def _size(self, k: int, batch: int, output: bool) -> int:
        count = ctypes.c_int64()
        fn = self.lib.kc_model_output_size if output else self.lib.kc_model_input_size
        self._check(fn(self.handle, k, batch, ctypes.byref(count)))
        return count.value

    def __call__(self, inputs) -> list:
        """Run on arrays (a list in input order, a dict by name, or one array)."""
        if isinstance(inputs, dict):
            missing = [s.name for s in self.inputs if s.name not in inputs]
            if missing:
                raise InputError(f"missing inputs {missing}")
            inputs = [inputs[s.name] for s in self.inputs]
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if len(inputs) != len(self.inputs):
            raise InputError(f"the model takes {len(self.inputs)} inputs, got {len(inputs)}")
        arrays, batch = [], None
        for spec, array in zip(self.inputs, inputs):
            array = np.ascontiguousarray(array, dtype=spec.dtype)
            if array.ndim != len(spec.shape) or any(e is not None and e != a for e, a in zip(spec.shape, array.shape)):
                raise InputError(f"input {spec.name!r} expects shape {spec.shape}, got {array.shape}")
            if None in spec.shape:
                b = array.shape[spec.shape.index(None)]
                if batch is not None and b != batch:
                    raise InputError(f"inputs disagree on the batch size ({batch} and {b})")
                batch = b
            arrays.append(array)
        batch = 1 if batch is None else batch
        if batch < 1:
            raise InputError("the batch is empty")
        shapes = []
        for k, spec in enumerate(self.outputs):
            shape = list(spec.shape)
            if None in shape:
                shape[shape.index(None)] = self._size(k, batch, True) // max(
                    int(np.prod([d for d in shape if d is not None], dtype=np.int64)), 1)
            shapes.append(tuple(shape))
        return self.run_checked(arrays, shapes, batch)

    def run_checked(self, arrays: list, output_shapes: list, batch: int) -> list:
        """Run on inputs already checked against the model (contiguous, of the input dtypes
        and shapes), into new outputs of `output_shapes`: CompiledModel's path, which has
        validated its inputs already."""
        outputs = [np.empty(shape, spec.dtype) for shape, spec in zip(output_shapes, self.outputs)]
        in_ptrs = self._input_pointers(*[a.ctypes.data for a in arrays])
        out_ptrs = self._output_pointers(*[o.ctypes.data for o in outputs])
        self._check(self.lib.kc_model_run_ex(self.handle, in_ptrs, len(arrays), out_ptrs, len(outputs), batch,
                                             NATIVE_TYPES))
        return outputs

    def set_num_threads(self, n: int):
        self._check(self.lib.kc_model_set_num_threads(self.handle, int(n)))

    def close(self):
        if getattr(self, "handle", None) is not None:
            self.lib.kc_model_destroy(self.handle)
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass


def run_library(path: str, inputs, num_threads: int | None = None) -> list:
    """Load the library, run it once on `inputs`, return the outputs (NumPy arrays)."""
    with NativeLibrary(path, num_threads) as lib:
        return lib(inputs)
