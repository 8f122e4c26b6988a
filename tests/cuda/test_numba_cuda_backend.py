"""The Numba CUDA backend (kcompile.codegen.numba_cuda).

Without a GPU, kernels run on numba-cuda's CUDA simulator in a subprocess (numba reads
NUMBA_ENABLE_CUDASIM once, at import, and the CPU backend's tests share this process):
every primitive example and the seed models' architectures must match the interpreter
within |y - ref| <= 1e-5 + 1e-4 |ref|. Every generated kernel must also compile to PTX
for a real GPU (when the CUDA toolkit's NVVM is installed), and target="cuda" on a
machine without a GPU must fail with a KcompileError that says what is missing.

This folder has no __init__.py on purpose: a package named `cuda` would shadow NVIDIA's
`cuda` namespace (cuda.bindings) that numba-cuda imports."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from cuda_seed_graphs import SEED_GRAPHS, SIMULATED_FULL_SIZE
from kcompile.codegen.numba_cuda import generate_source, missing_lowerings
from kcompile.codegen.numba_cuda.tuning import GPU
from kcompile.ir import all_primitives
from kcompile.ir.program import format_program
from kcompile.passes import plan_memory, run_pipeline
from support.primitive_examples import EXAMPLES

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EDGE_CASES = ["edge:infinities", "edge:moved_batch", "edge:batch_factor", "edge:int64_and_static"]
RUNTIME_CHECKS = ["runtime:predict", "runtime:gather_out_of_range", "runtime:device_residency"]
SIM_CHECKS = ([f"primitive:{op}" for op in sorted(EXAMPLES)] + [f"seed:{name}" for name in SEED_GRAPHS]
              + [f"full_size:{name}" for name in SIMULATED_FULL_SIZE] + EDGE_CASES + RUNTIME_CHECKS)


def run_python(args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """A fresh interpreter (numba not yet imported) with the given environment changes;
    a None value removes the variable. Generated kernels go to a temporary cache folder."""
    with tempfile.TemporaryDirectory() as cache:
        environment = {**os.environ, "KCOMPILE_CACHE": cache}
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=environment,
                              timeout=timeout)


def last_json_line(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines, f"subprocess failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return json.loads(lines[-1])


# -- the lowering table and the generated source (no numba-cuda needed) ---------------------------
def test_every_primitive_has_a_cuda_lowering():
    assert missing_lowerings() == []


def test_every_primitive_has_an_example_for_the_simulator():
    assert sorted(set(all_primitives()) - set(EXAMPLES)) == []


def _source(graph):
    source, _, _ = generate_source(graph, plan_memory(graph), GPU)
    return source


def _kernels(source) -> dict:
    """Generated kernel name -> its source text."""
    parts = source.split("@cuda.jit(cache=CACHE)\ndef ")[1:]
    return {part.split("(", 1)[0]: part.split("\n\n\n")[0] for part in parts}


def test_one_kernel_per_node_with_epilogues_inside_the_products():
    graph = run_pipeline(SEED_GRAPHS["mnist_mlp"]())
    assert [n.op for n in graph.nodes] == ["matmul", "matmul", "matmul", "softmax"]
    kernels = _kernels(_source(graph))
    tiled = [name for name in kernels if not name.endswith("_skinny")]
    assert len(tiled) == 4 and sum(name.endswith("_skinny") for name in kernels) == 3
    first = kernels[tiled[0]]
    # bias add and relu run on the accumulator before the one store: no kernels of their own
    assert "p0 = (y + e0[col])" in first and "p1 = max(p0, ZERO)" in first and "out[row, col] = p1" in first


def test_residual_add_and_batch_norm_fold_into_the_convolution_kernels():
    graph = run_pipeline(SEED_GRAPHS["cifar10_resnet"]())
    kernels = _kernels(_source(graph))
    convs = [n for n in graph.nodes if n.op == "conv"]
    assert len(convs) == 9 and not any(n.op in ("add", "mul", "relu", "fused_elementwise") for n in graph.nodes)
    with_residual = [src for name, src in kernels.items() if not name.endswith("_skinny") and "e1[row" in src]
    assert len(with_residual) == 3  # one residual add per stack, read at the output's index


def test_fused_elementwise_nodes_become_one_kernel_each():
    graph = run_pipeline(SEED_GRAPHS["antirectifier"]())
    fused = [n for n in graph.nodes if n.op == "fused_elementwise"]
    assert fused
    kernels = _kernels(_source(graph))
    # At most one kernel a node: nodes with the same code share theirs (see the CPU test).
    assert len([k for k in kernels if not k.endswith("_skinny")]) <= len([n for n in graph.nodes if n.op != "reshape"])
    for node in fused:
        program = node.attrs["program"]
        text = format_program(program, [f"in{k}" for k in range(len(node.inputs))])
        bodies = [src for src in kernels.values() if f": out = {text}" in src.split("\n")[1]]  # by docstring
        assert bodies, text
        for body in bodies:
            assert all(f"t{j} = " in body for j in range(len(program)))
            assert body.count("out[") == 1  # the whole chain in registers, one store


def test_nodes_with_the_same_code_share_a_kernel():
    import numpy as np

    from kcompile.ir import GraphBuilder

    b = GraphBuilder("repeated")
    h = b.input("x", (None, 6, 6, 16))
    for k in range(3):
        h = b.relu(b.add(h, b.param(np.full(16, k, np.float32))))
    b.output([h])
    kernels = _kernels(_source(b.graph))
    assert len(kernels) == 2, sorted(kernels)  # add and relu, called three times each


# -- the simulator ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def simulated():
    """All simulator checks, run once in a subprocess: check name -> {ok, detail, seconds}."""
    result = run_python([os.path.join(HERE, "cuda_sim_checks.py")], env={"NUMBA_ENABLE_CUDASIM": "1"})
    results = last_json_line(result)
    assert "error" not in results, results
    assert sorted(results) == sorted(SIM_CHECKS)
    return results


@pytest.mark.parametrize("check", SIM_CHECKS)
def test_simulator(simulated, check):
    outcome = simulated[check]
    assert outcome["ok"], outcome["detail"]


# -- compiled for a real GPU -------------------------------------------------------------------------
def test_on_a_real_gpu_when_there_is_one():
    """The same checks on the device (all six seeds at full size), where a GPU is present."""
    result = run_python([os.path.join(HERE, "cuda_sim_checks.py"), "--gpu"], env={"NUMBA_ENABLE_CUDASIM": None})
    results = last_json_line(result)
    if "error" in results:
        pytest.skip(f"no usable GPU: {results['error'][:200]}")
    failed = {name: outcome["detail"] for name, outcome in results.items() if not outcome["ok"]}
    assert failed == {}



def test_every_kernel_compiles_to_ptx_without_float64():
    results = last_json_line(run_python([os.path.join(HERE, "cuda_ptx_check.py")], env={"NUMBA_ENABLE_CUDASIM": None}))
    if "unavailable" in results:
        pytest.skip(f"no CUDA toolkit to compile PTX with: {results['unavailable']}")
    assert results["failures"] == {}
    assert results["float64"] == {}
    assert results["compiled"] > 100


# -- no GPU, no numba-cuda: clear errors --------------------------------------------------------------
ATTEMPT = """
import json, sys
import numpy as np
from kcompile.errors import KcompileError
from kcompile.ir import GraphBuilder
import kcompile.codegen.numba_cuda as backend
imported_early = "numba.cuda" in sys.modules
b = GraphBuilder("tiny")
b.output([b.relu(b.input("x", (None, 3)))])
try:
    program = backend.compile_graph(b.graph)
    outcome = {"compiled": True, "ok": bool(np.allclose(program([np.ones((1, 3), np.float32)], 1)[0], 1.0))}
except KcompileError as e:
    outcome = {"compiled": False, "message": str(e)}
outcome["imported_early"] = imported_early
print(json.dumps(outcome))
"""


def test_no_gpu_raises_a_clear_error():
    outcome = last_json_line(run_python(["-c", ATTEMPT], env={"NUMBA_ENABLE_CUDASIM": None}))
    assert outcome["imported_early"] is False  # importing the backend does not touch numba.cuda
    if outcome["compiled"]:
        assert outcome["ok"]
        pytest.skip("this machine has a usable GPU")
    message = outcome["message"]
    assert "target='cuda'" in message and "GPU" in message
    assert "driver" in message.lower()
    assert "NUMBA_ENABLE_CUDASIM=1" in message


def test_missing_numba_cuda_raises_a_clear_error():
    blocker = textwrap.dedent("""
        import importlib.abc, sys
        class _Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("numba_cuda", "_numba_cuda_redirector"):
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked in this test)")
        sys.meta_path.insert(0, _Block())
    """)
    outcome = last_json_line(run_python(["-c", blocker + ATTEMPT], env={"NUMBA_ENABLE_CUDASIM": "1"}))
    assert outcome["compiled"] is False
    assert "numba-cuda" in outcome["message"] and "pip install" in outcome["message"]


def test_simulator_flag_set_after_importing_numba_is_reported():
    late = "import numba, os\nos.environ['NUMBA_ENABLE_CUDASIM'] = '1'\n" + ATTEMPT
    outcome = last_json_line(run_python(["-c", late], env={"NUMBA_ENABLE_CUDASIM": None}))
    assert outcome["compiled"] is False
    assert "after numba was imported" in outcome["message"]
