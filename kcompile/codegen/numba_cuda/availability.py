"""Is there something to run CUDA kernels on? Checked before compiling for target="cuda",
without crashing when the answer is no: numba-cuda installed, then either the CUDA
simulator (NUMBA_ENABLE_CUDASIM=1, set before numba is imported) or a CUDA driver with a
device, and the CUDA toolkit's NVVM compiler."""
from __future__ import annotations

import importlib.util
import os

from ...errors import KcompileError

INSTALL = "pip install 'kcompile[cuda]' (numba-cuda>=0.20)"
SIMULATOR_HINT = ("To test without a GPU, set NUMBA_ENABLE_CUDASIM=1 in the environment before Python imports "
                  "numba (the CUDA simulator runs the kernels on the CPU, slowly: keep the inputs tiny).")


def simulator_enabled() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def require_cuda():
    """numba.cuda, ready to compile and launch kernels; else a KcompileError naming what is missing."""
    try:
        installed = importlib.util.find_spec("numba_cuda") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        raise KcompileError(f"target='cuda' needs numba-cuda, which is not installed: {INSTALL}. {SIMULATOR_HINT}")
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "").strip() not in ("", "0") and not simulator_enabled():
        raise KcompileError("NUMBA_ENABLE_CUDASIM=1 was set after numba was imported; numba reads it once, at import. "
                            "Set it before starting Python.")
    try:
        from numba import cuda
    except Exception as e:  # a broken installation: report it, do not crash
        raise KcompileError(f"target='cuda': importing numba.cuda failed ({type(e).__name__}: {e}). {INSTALL}.") from e
    if simulator_enabled():
        return cuda
    try:
        available = cuda.is_available()
    except Exception as e:
        available, reason = False, f"{type(e).__name__}: {e}"
    else:
        reason = None
    if not available:
        reason = reason or _driver_error(cuda) or "the CUDA driver found no CUDA-capable device"
        raise KcompileError(f"target='cuda' found no usable NVIDIA GPU: {' '.join(str(reason).split())} "
                            f"(needs an NVIDIA driver and a CUDA-capable device). {SIMULATOR_HINT}")
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as e:
        raise KcompileError(f"target='cuda' found a GPU but not the CUDA toolkit's NVVM compiler "
                            f"({' '.join(str(e).split())}): install the toolkit, e.g. pip install 'numba-cuda[cu12]' "
                            f"or 'numba-cuda[cu13]' to match the driver.") from e
    return cuda


def _driver_error(cuda):
    try:
        return cuda.cuda_error()
    except Exception:
        return None


def cuda_status() -> tuple:
    """(True, "") when target="cuda" can run here, else (False, the reason)."""
    try:
        require_cuda()
    except KcompileError as e:
        return False, str(e)
    return True, ""
