"""Per-shape algorithm choices, measured on this machine and remembered.

A convolution runs as im2col tiles into BLAS GEMMs, by direct accumulation, (stride 1)
as one GEMM per window tap over the input grid, as an implicit GEMM on a register-
tiled micro-kernel, or (3x3, stride 1) by Winograd's F(2x2, 3x3) or F(4x4, 3x3); its
kernel gradient by im2col, taps, the micro-kernel or Winograd. Which is
faster depends on the shape and on the machine (here im2col won over direct
accumulation even at 9 input taps, against the rule of thumb; taps win at few channels,
where im2col's copies cost most; the micro-kernel at 16 channels and more, by little
at 16; Winograd, where it applies, on most of the seed CNNs' 3x3 convolutions). The
first compile that meets a shape times the candidates on random data at a small batch
and records the winner in the cache folder (`tuning.json`), keyed by the kernel
library's digest and the thread count, so that later compiles of any model with that
shape generate the same code without measuring. KCOMPILE_TUNE=0 skips measuring and
uses im2col."""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time

import numpy as np

from ..common import cache_root

TUNE_BATCH = 32  # samples per measurement: at 8, data that stays in cache favoured taps over im2col at 128
REPEATS = 7
MEASURE_MAX_K = 128  # window x channels above which direct accumulation never won (not measured)

_lock = threading.Lock()
_choices: dict | None = None


def _path() -> str:
    return os.path.join(cache_root(), "tuning.json")


def _load() -> dict:
    global _choices
    if _choices is None:
        try:
            with open(_path()) as f:
                _choices = json.load(f)
        except (OSError, ValueError):
            _choices = {}
    return _choices


def _save(choices: dict):
    """Write atomically: concurrent compiles may read the file at any time."""
    folder = cache_root()
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tuning-", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(choices, f, indent=0, sort_keys=True)
    os.replace(tmp, _path())


def _seconds(fn) -> float:
    """One timed run (the fastest of the rounds counts: noise only ever adds time)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fastest(key: str, candidates: dict) -> int:
    """The method among `candidates` ({method: run once}) that runs fastest, measured the
    first time `key` is met and read from the cache after."""
    with _lock:
        choices = _load()
        if key in choices:
            return choices[key]
        for run in candidates.values():
            run()  # the first call may load or compile the kernel
        # Rounds alternate between the candidates, so that a burst of load on a shared
        # machine slows them all rather than the one measured at that moment.
        seconds = {method: float("inf") for method in candidates}
        for _ in range(REPEATS):
            for method, run in candidates.items():
                seconds[method] = min(seconds[method], _seconds(run))
        choices[key] = min(seconds, key=seconds.get)
        try:
            _save(choices)
        except OSError:
            pass  # a read-only cache: measure again next time
        return choices[key]


def _key(kind: str, *shapes) -> str:
    import numba

    from .compiler import library_digest

    return f"{kind} {' '.join(map(str, shapes))} threads={numba.get_num_threads()} library={library_digest()}"


def _tuning_off() -> bool:
    return os.environ.get("KCOMPILE_TUNE", "1") == "0"


def _unit_strides(geometry: tuple) -> bool:
    return tuple(geometry[3:6]) == (1, 1, 1)


def conv_candidates(geometry: tuple, k: int, filters: int, groups: int, every_size: bool = False) -> list:
    """The `kernels.conv` methods for a convolution of this geometry and a (k, filters)
    kernel matrix, im2col first. A 1x1 window at stride 1 is one GEMM whatever the method;
    the other kernels handle ungrouped convolutions only; direct accumulation is left out
    above MEASURE_MAX_K (it never won there) unless `every_size`; Winograd where
    `winograd.applies`, with either tile size."""
    from .kernels import conv as C
    from .kernels import winograd

    window = geometry[0] * geometry[1] * geometry[2]
    unit_strides = _unit_strides(geometry)
    if groups != 1 or (window == 1 and unit_strides):
        return [C.IM2COL]
    methods = [C.IM2COL, C.IGEMM]
    if window > 1:
        methods += [C.DIRECT] if every_size or k <= MEASURE_MAX_K else []
        methods += [C.TAPS] if unit_strides else []
    if winograd.applies(tuple(geometry), groups, k // window, filters):
        methods += [C.WINOGRAD_2, C.WINOGRAD_4]
    return methods


def weight_grad_candidates(geometry: tuple, channels: int, filters: int) -> list:
    """The `kernels.grad.conv_weight_grad` methods, im2col first: taps at stride 1 only,
    the micro-kernel with filters in whole vectors, Winograd where `winograd.applies`."""
    from .kernels import conv as C
    from .kernels import winograd
    from .kernels.igemm import W as VECTOR_WIDTH

    methods = [C.IM2COL] + ([C.TAPS] if _unit_strides(geometry) else [])
    methods += [C.IGEMM] if filters % VECTOR_WIDTH == 0 else []
    if winograd.applies(tuple(geometry), 1, channels, filters):
        methods += [C.WINOGRAD_2, C.WINOGRAD_4]
    return methods


def conv_method(x_shape: tuple, w2d_shape: tuple, out_shape: tuple, geometry: tuple, groups: int) -> int:
    """The fastest `kernels.conv` method (IM2COL, DIRECT, TAPS, IGEMM or a WINOGRAD) for these
    5-D shapes (batch axis first, None for the batch)."""
    from .kernels import conv as C
    from .kernels.epilogue import NO_CHANNELS, NO_EPILOGUE, NO_RESIDUAL

    methods = conv_candidates(geometry, w2d_shape[0], w2d_shape[1], groups)
    if len(methods) == 1 or _tuning_off():
        return C.IM2COL
    from .threads import configure_threading

    configure_threading()  # measuring runs parallel kernels
    rng = np.random.default_rng(0)
    x = rng.random((TUNE_BATCH,) + tuple(x_shape[1:]), dtype=np.float32)
    w2d = rng.random(w2d_shape, dtype=np.float32)
    out = np.empty((TUNE_BATCH,) + tuple(out_shape[1:]), np.float32)

    def run(method):
        return lambda: C.conv(x, w2d, out, geometry, 1, method, NO_EPILOGUE, NO_CHANNELS, NO_RESIDUAL)

    key = _key("conv", x_shape, w2d_shape, out_shape, geometry)
    return _fastest(key, {method: run(method) for method in methods})


def weight_grad_method(x_shape: tuple, g_shape: tuple, geometry: tuple) -> int:
    """The fastest `kernels.grad.conv_weight_grad` method (see weight_grad_candidates) for
    these 5-D shapes (batch axis first, None for the batch)."""
    from .kernels import conv as C
    from .kernels import grad as D

    candidates = weight_grad_candidates(geometry, x_shape[-1], g_shape[-1])
    if len(candidates) == 1 or _tuning_off():
        return C.IM2COL
    from .threads import configure_threading

    configure_threading()
    rng = np.random.default_rng(0)
    x = rng.random((TUNE_BATCH,) + tuple(x_shape[1:]), dtype=np.float32)
    g = rng.random((TUNE_BATCH,) + tuple(g_shape[1:]), dtype=np.float32)
    window = geometry[0] * geometry[1] * geometry[2]
    out = np.empty((window * x_shape[-1], g_shape[-1]), np.float32)

    def run(method):
        return lambda: D.conv_weight_grad(x, g, out, geometry, method)

    key = _key("conv_weight_grad", x_shape, g_shape, geometry)
    return _fastest(key, {method: run(method) for method in candidates})
