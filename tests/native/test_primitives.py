"""Every primitive has a native lowering, and each example matches the interpreter
(all examples in one library, so the test compiles once per instruction set)."""
import numpy as np
import pytest

from kcompile.codegen.native import NativeLibrary, build_library, host_isa, missing_lowerings
from kcompile.codegen.native.module import Isa
from kcompile.ir import interpret
from support.primitive_examples import build_combined_graph


def test_every_primitive_has_a_lowering():
    assert missing_lowerings() == []


def _isa(kind):
    host = host_isa()
    if kind == "host":
        return host
    if "+avx2" not in host.features.split(",") or host.width == 8:
        pytest.skip("the host already is (or cannot run) the 8-wide AVX2 variant")
    return Isa(width=8, registers=16, cpu="haswell", features="")


@pytest.mark.parametrize("kind", ["host", "avx2"])
def test_every_primitive_example_matches_the_interpreter(native_tmp, kind):
    graph, arrays, spans = build_combined_graph(batch=2)
    library = native_tmp / f"liball_examples_{kind}.so"
    build_library(graph, str(library), optimize=False, isa=_isa(kind))  # unoptimized: each primitive on its own
    lib = NativeLibrary(str(library), num_threads=2)
    try:
        checked = 0
        for batch in (1, 2):
            inputs = [a[:batch] for a in arrays]
            expected = interpret(graph, inputs)
            got = lib(inputs)
            assert len(got) == len(expected)
            for name, start, stop in spans:
                for k in range(start, stop):
                    assert got[k].dtype == expected[k].dtype, f"{name} output {k}"
                    np.testing.assert_allclose(got[k], expected[k], rtol=1e-4, atol=1e-5,
                                               err_msg=f"{name} batch {batch}")
                    checked += 1
        assert checked >= 2 * len(spans)
    finally:
        lib.close()


def test_integer_elementwise_rules_match_the_interpreter(native_tmp):
    from kcompile.ir import GraphBuilder

    b = GraphBuilder("ints")
    x = b.input("x", (None, 7), dtype="int32")
    y = b.input("y", (None, 7), dtype="int32")
    b.output([b.neg(x), b.abs(x), b.square(x), b.relu(x), b.sign(x), b.floor(x), b.add(x, y), b.sub(x, y),
              b.mul(x, y), b.maximum(x, y), b.minimum(x, y)])
    library = str(native_tmp / "libints.so")
    build_library(b.graph, library, optimize=False)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(-50, 50, (3, 7)).astype(np.int32) for _ in range(2)]
    with NativeLibrary(library) as lib:
        for got, expected in zip(lib(inputs), interpret(b.graph, inputs)):
            np.testing.assert_array_equal(got, expected)
