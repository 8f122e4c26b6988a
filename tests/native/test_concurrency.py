"""One library handle run from several threads at once (ctypes releases the GIL): each
run gets a workspace of its own (the handle's, with its thread pool, or a private
one), so every result matches the interpreter."""
import threading

import numpy as np
import pytest

from kcompile.codegen.native import NativeLibrary, build_library
from kcompile.ir import GraphBuilder, interpret
from kcompile.passes import run_pipeline


def conv_graph():
    rng = np.random.default_rng(0)
    b = GraphBuilder("convnet")
    x = b.input("x", (None, 16, 16, 8))
    w = b.param(rng.normal(0, 0.2, (3, 3, 8, 24)).astype(np.float32), "w")
    y = b.relu(b.add(b.conv(x, w, strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)), groups=1),
                     b.param(rng.normal(0, 0.1, 24).astype(np.float32), "b")))
    y = b.max_pool(y, window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))
    y = b.reshape(y, shape=(None, 8 * 8 * 24))
    y = b.softmax(b.matmul(y, b.param(rng.normal(0, 0.05, (8 * 8 * 24, 10)).astype(np.float32), "d")), axis=-1)
    b.output([y])
    return b.graph


@pytest.mark.parametrize("spin_us", ["300", "0"], ids=["spinning-workers", "sleeping-workers"])
def test_concurrent_runs_give_correct_results(native_tmp, monkeypatch, spin_us):
    monkeypatch.setenv("KC_SPIN_US", spin_us)  # read when a handle starts its pool
    graph = run_pipeline(conv_graph())
    library = native_tmp / f"libconvnet{spin_us}.so"
    build_library(graph, str(library), optimize=False)
    rng = np.random.default_rng(1)
    cases = [rng.normal(size=(b, 16, 16, 8)).astype(np.float32) for b in (1, 3, 5, 8, 2, 6)]
    expected = [interpret(graph, [x])[0] for x in cases]
    lib = NativeLibrary(str(library), num_threads=2)
    errors = []

    def work(k):
        try:
            for i in range(12):
                j = (k + i) % len(cases)
                (got,) = lib([cases[j]])
                np.testing.assert_allclose(got, expected[j], rtol=1e-4, atol=1e-6)
                if k == 0 and i in (4, 8):  # resizing the pool while others run
                    lib.set_num_threads(3 if i == 4 else 2)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lib.close()
    assert not errors, errors[0]
