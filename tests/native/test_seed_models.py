"""The six seed models as native libraries: a C program (kc_runner, compiled here with
the system compiler; it dlopens the library, no Python in its process) runs each on
inputs written by the test and matches Keras at batch 1 and 7. `nm -D` of every
library shows the C API and C-library imports only."""
import os
import re

import numpy as np
import pytest

import kcompile
from kcompile import zoo
from kcompile.codegen.native import build_library
from native.tools import dynamic_symbols, needed_libraries
from support.keras_models import assert_close, keras3, keras_outputs, randomize

SEEDS = ["mnist_mlp", "mnist_cnn", "cifar10_cnn", "cifar10_resnet", "pretrained_word_embeddings", "antirectifier"]
PYTHON_SYMBOL = re.compile(r"(^_?Py|_Py|numba|NRT_|^PyInit)", re.IGNORECASE)
ALLOWED_NEEDED = re.compile(r"^(libc|libm|libpthread|libdl|ld-linux)[.-]")


def _model(name, K):
    if name == "antirectifier":
        layer = zoo.antirectifier_layer_class(K)
        return randomize(zoo.antirectifier(K, layer_class=layer), seed=3), {"Antirectifier": layer}
    return randomize(zoo.SEED_MODELS[name](K), seed=3), None


def _inputs(model, batch):
    rng = np.random.default_rng(batch)
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return rng.integers(0, 20000, shape).astype(np.int32)
    return rng.normal(0, 1, shape).astype(np.float32)


def check_symbols(library):
    defined, undefined = dynamic_symbols(library)
    python = [s for s in defined + undefined if PYTHON_SYMBOL.search(s)]
    assert not python, f"Python/Numba symbols in {library}: {python}"
    assert defined and all(s.startswith("kc_") for s in defined), f"exports beyond the C API: {defined}"
    assert {"kc_model_create", "kc_model_run", "kc_model_destroy", "kc_last_error"} <= set(defined)
    needed = needed_libraries(library)
    assert all(ALLOWED_NEEDED.match(n) for n in needed), f"{library} needs {needed}"


@pytest.mark.parametrize("name", SEEDS)
def test_seed_model_runs_in_c_and_matches_keras(name, tmp_path, run_c):
    K = keras3()
    model, custom = _model(name, K)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    graph = kcompile.load_graph(path, custom_objects=custom) if custom else kcompile.load_graph(path)
    library = tmp_path / f"lib{name}.so"
    build = build_library(graph, str(library))
    assert os.path.exists(build.header) and build.header.endswith(f"{name}.h")
    check_symbols(library)
    for batch in (1, 7):
        x = _inputs(model, batch)
        (expected,) = keras_outputs(model, [x])
        (got,) = run_c(str(library), [x], [expected.shape])
        assert_close(got, expected, f"{name} (C program) batch {batch}")
        if x.dtype != np.float32:  # integer inputs also in their own dtype
            (got,) = run_c(str(library), [x], [expected.shape], native=True)
            assert_close(got, expected, f"{name} (C program, int32 input) batch {batch}")
