"""Numba threading setup, done before any parallel kernel runs.

kcompile's parallel kernels may be entered from several Python threads at once
(concurrent predict calls), which Numba's default workqueue layer does not allow.
OpenMP and TBB are thread-safe. OpenMP comes first: its workers spin briefly between
parallel regions, so the many short regions of batch-1 inference start fastest (a
784x512 product: 19 us with OpenMP, 40 us with TBB, 120 us with workqueue, measured
here). TBB's library sits in the environment's lib folder, which the loader does not
search, so it is loaded by path for the fallback."""
from __future__ import annotations

import ctypes
import glob
import os
import sys

import numba
import numpy as np

_configured = False
PRIME_ROWS, PRIME_COLUMNS = 384, 768  # each thread's tile of the priming product


def _preload_tbb() -> bool:
    for folder in (os.path.join(sys.prefix, "lib"), os.path.join(sys.base_prefix, "lib")):
        for path in sorted(glob.glob(os.path.join(folder, "libtbb.so.1*"))):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                continue
    return False


def _omp_available() -> bool:
    try:
        import numba.np.ufunc.omppool  # noqa: F401
    except ImportError:
        return False
    return True


def configure_threading():
    """Pick a thread-safe Numba threading layer (omp, else tbb)."""
    global _configured
    if _configured:
        return
    _configured = True
    chosen = os.environ.get("NUMBA_THREADING_LAYER")
    if chosen == "tbb":
        _preload_tbb()
    elif not chosen:
        numba.config.THREADING_LAYER = "omp" if _omp_available() else ("tbb" if _preload_tbb() else "threadsafe")
    # A cached `run` contains the parallel kernels it calls, but loading it from the
    # cache does not start Numba's thread pool the way compiling a parallel function
    # does; start it here, or the first parallel region crashes.
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()
    limit_blas_threads()
    prime_blas()


def limit_blas_threads():
    """Every BLAS call in the kernels runs inside a parallel loop, one call per tile, so
    the BLAS that Numba calls (SciPy's OpenBLAS) must stay single-threaded. NumPy's own
    BLAS is a different library and keeps the user's setting."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    for lib in controller.lib_controllers:
        path = getattr(lib, "filepath", "") or ""
        if lib.internal_api == "openblas" and "scipy_openblas64" not in path and "scipy" in path:
            lib.set_num_threads(1)


def prime_blas():
    """One large BLAS product on every thread of Numba's pool, once per process: 2x faster
    products from then on. Single-threaded OpenBLAS on a thread that has only run small
    products stayed 3x slower for the whole process (128x784 @ 784x256, a dense layer's
    tile: 11-16 GFLOP/s per core against 32-37) until one large product had run on that
    thread. The product is matmul's own (each thread's tile 384x768 @ 768x768), so no
    kernel is loaded for it that programs with products do not load anyway; 20-30 ms on
    2 threads."""
    from .kernels.epilogue import NO_CHANNELS, NO_EPILOGUE, NO_RESIDUAL
    from .kernels.gemm import matmul

    threads = numba.get_num_threads()
    pool = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(pool)  # every thread of the pool
    try:
        a = np.ones((PRIME_ROWS * pool, PRIME_COLUMNS), np.float32)
        b = np.ones((PRIME_COLUMNS, PRIME_COLUMNS), np.float32)
        matmul(a, b, np.empty((a.shape[0], PRIME_COLUMNS), np.float32), NO_EPILOGUE, NO_CHANNELS, NO_RESIDUAL)
    finally:
        numba.set_num_threads(threads)
