"""The native backend: a standalone shared library with a small C API (kc_model.h),
compiled from the IR through LLVM (llvmlite) and linked with the system C compiler.

    build_library(graph, "libmodel.so")   # writes libmodel.so and model.h
    run_library("libmodel.so", [x])       # runs it from Python (ctypes)

See build.py for the pipeline, module.py for the code layout, runtime.c for the C side."""
from .build import HERE, NativeBuild, build_library, build_runner, header_path, host_isa
from .library import NativeLibrary, run_library
from .lowerings import LOWERINGS, missing_lowerings

__all__ = ["HERE", "LOWERINGS", "NativeBuild", "NativeLibrary", "build_library", "build_runner", "header_path",
           "host_isa", "missing_lowerings", "run_library"]
