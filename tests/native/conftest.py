"""Shared fixtures for the native backend's tests: the C runner (a C program that
dlopens a library; no Python in its process) and a function running it on arrays."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from kcompile.codegen.native import build_runner


@pytest.fixture(scope="session")
def native_tmp(tmp_path_factory):
    if not shutil.which(os.environ.get("CC", "gcc")):
        pytest.skip("the native backend needs a C compiler")
    return tmp_path_factory.mktemp("native")


@pytest.fixture(scope="session")
def runner(native_tmp):
    return build_runner(str(native_tmp / "kc_runner"))


@pytest.fixture(scope="session")
def run_c(runner):
    """run_c(library, inputs, output_shapes, native=False, env=None) -> outputs.

    Writes each input to a raw file (float32, or the array's own dtype with native),
    runs `kc_runner LIB run BATCH ...` in a subprocess and reads the raw outputs."""

    def run(library, inputs, output_shapes, native=False, env=None, dtypes=None, folder=None):
        folder = folder or os.path.dirname(library)
        batch = int(inputs[0].shape[0])
        in_files, out_files = [], []
        for k, x in enumerate(inputs):
            path = os.path.join(folder, f"in{k}.bin")
            np.ascontiguousarray(x if native else x.astype(np.float32)).tofile(path)
            in_files.append(path)
        out_files = [os.path.join(folder, f"out{k}.bin") for k in range(len(output_shapes))]
        cmd = [runner, str(library), "run", str(batch)] + (["--native"] if native else [])
        cmd += in_files + ["--"] + out_files
        full_env = dict(os.environ, **(env or {}))
        result = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120)
        assert result.returncode == 0, f"kc_runner failed ({result.returncode}): {result.stderr}"
        dtypes = dtypes or [np.float32] * len(output_shapes)
        return [np.fromfile(p, dtype=d).reshape(s) for p, s, d in zip(out_files, output_shapes, dtypes)]

    return run
