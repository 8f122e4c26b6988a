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

_configured = False


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
    products from then on. OpenBLAS's kernel prefetches past the packed panels of a small
    product; until a large product has written there, those pages are unmapped and (we
    measured on a 2-core VM, where a TLB miss costs a nested page walk) its products ran
    at 20-30 GFLOP/s instead of 45-60 (a dense layer's 128x784 @ 784x256, one tile per
    thread), in every later call of the process. 25 ms once, on 2 threads."""
    from .kernels.blas import prime_buffers

    threads = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # every thread of the pool
    try:
        prime_buffers(numba.config.NUMBA_NUM_THREADS)
    finally:
        numba.set_num_threads(threads)
