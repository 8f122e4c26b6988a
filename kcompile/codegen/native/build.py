"""build_library: an IR graph -> a standalone shared library with a C API.

    graph --run_pipeline--> optimized graph --plan_memory--> memory plan
          --LOWERINGS--> LLVM IR (llvmlite) --O3, host CPU--> kernels.o
    weights blob (.incbin) + tables (model_data.c) + runtime.c  --gcc -shared-->  libNAME.so
    kc_model.h --> NAME.h next to the library

The library imports only libc, libm and libpthread (no Python, no Numba runtime)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ...errors import KcompileError
from ...ir import Graph
from ...passes import expand_composites, plan_memory, run_pipeline
from .lowerings import LOWERINGS
from .module import Isa, NativeModule

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPE_CODES = {"float32": 0, "int32": 1, "int64": 2, "bool": 3}
API = [
    "kc_model_create", "kc_model_destroy", "kc_model_run", "kc_model_run_ex", "kc_model_set_num_threads",
    "kc_model_num_threads", "kc_model_num_inputs", "kc_model_num_outputs", "kc_model_input_name",
    "kc_model_output_name", "kc_model_input_rank", "kc_model_output_rank", "kc_model_input_shape",
    "kc_model_output_shape", "kc_model_input_dtype", "kc_model_output_dtype", "kc_model_input_size",
    "kc_model_output_size", "kc_model_has_batch", "kc_model_name", "kc_last_error", "kc_status_string",
]


@dataclass
class NativeBuild:
    library: str
    header: str
    graph: Graph  # the graph that was compiled (after the passes)
    isa: Isa
    weights_bytes: int
    arena_per_sample: int
    arena_static: int
    steps: int


def host_isa() -> Isa:
    """The build machine's CPU: AVX-512 -> 16 floats per vector and 32 registers."""
    import llvmlite.binding as llvm

    _init_llvm()
    features = llvm.get_host_cpu_features().flatten()
    flags = set(features.split(","))
    if "+avx512f" in flags:
        width, registers = 16, 32
    elif "+avx2" in flags or "+avx" in flags:
        width, registers = 8, 16
    else:
        width, registers = 4, 16
    return Isa(width=width, registers=registers, cpu=llvm.get_host_cpu_name(), features=features)


_llvm_ready = False


def _init_llvm():
    global _llvm_ready
    if not _llvm_ready:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _llvm_ready = True


def generate(graph: Graph, isa: Isa) -> NativeModule:
    """Lower every node of an (optimized) graph; returns the filled NativeModule."""
    plan = plan_memory(graph)
    nm = NativeModule(graph, plan, isa)
    for node in graph.nodes:
        lower = LOWERINGS.get(node.op)
        if lower is None:
            raise KcompileError(f"the native backend has no lowering for primitive {node.op!r}")
        nm.begin_node(node)
        lower(nm, node)
        nm.end_node()
    nm.finish()
    return nm


def compile_object(module, isa: Isa) -> bytes:
    """LLVM IR -> an optimized, position-independent object file for the host CPU."""
    import llvmlite.binding as llvm

    _init_llvm()
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(cpu=isa.cpu, features=isa.features, opt=3, reloc="pic", codemodel="default")
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    mod = llvm.parse_assembly(str(module))
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod)


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor_entry(nm: NativeModule, value, name: str) -> str:
    if value.rank > 8:
        raise KcompileError(f"native backend: tensor {name!r} has rank {value.rank} (at most 8)")
    base, per_sample, offset = nm.c_address(value)
    dims = [-1 if d is None else int(d) for d in value.shape] + [0] * (8 - value.rank)
    dyn = value.type.dynamic_axis
    factor = max(nm.factor(value), 1) if dyn is not None else 1
    return (f"    {{{_c_string(name)}, {value.rank}, {{{', '.join(str(d) for d in dims)}}}, "
            f"{DTYPE_CODES[value.dtype]}, {-1 if dyn is None else dyn}, {factor}, {base}, {per_sample}, {offset}, "
            f"{value.type.static_size()}}},")


def model_tables(nm: NativeModule, graph: Graph) -> str:
    per_sample, static = nm.arena_sizes()
    names = graph.output_names if len(graph.output_names) == len(graph.outputs) else [v.name for v in graph.outputs]
    inputs = [_tensor_entry(nm, v, v.name) for v in graph.inputs] or ["    {0},"]
    outputs = [_tensor_entry(nm, v, n) for v, n in zip(graph.outputs, names)] or ["    {0},"]
    has_batch = any(v.type.dynamic_axis is not None for v in graph.inputs)
    labels = [f"    {_c_string(s.label)}," for s in nm.steps] or ["    0,"]
    return "\n".join([
        "/* Generated by kcompile: the model's input/output tables. */",
        '#include "kc_internal.h"',
        "",
        "static const kc_tensor_info inputs[] = {", *inputs, "};",
        "static const kc_tensor_info outputs[] = {", *outputs, "};",
        "static const char *const steps[] = {", *labels, "};",
        "",
        "const kc_model_info kcrt_model = {",
        f"    {_c_string(graph.name)}, {len(graph.inputs)}, {len(graph.outputs)}, inputs, outputs,",
        f"    {per_sample}, {static}, {int(has_batch)}, {len(nm.steps)}, steps,",
        f"    {microbatch(nm, graph)},",
        "};",
        "",
    ])


MICROBATCH_BYTES = 2 << 20  # arena bytes a slice of a large batch aims at (measured: 4-8 samples
# of the seed CNNs run 10-15% faster than one pass over a batch of 128)
MICROBATCH_MIN = 4


def sliceable(graph: Graph) -> bool:
    """Whether running the batch in slices gives the same result: inputs and outputs are
    batch-first (or fixed), and no node mixes samples (a batch-sized input feeding a
    fixed-size output, a gather from a batch-sized table)."""
    for v in list(graph.inputs) + list(graph.outputs):
        if v.type.dynamic_axis not in (None, 0):
            return False
    for node in graph.nodes:
        dynamic_in = any(v.type.dynamic_axis is not None for v in node.inputs)
        if dynamic_in and any(v.type.dynamic_axis is None for v in node.outputs):
            return False
        if node.op == "gather" and node.inputs[0].type.dynamic_axis is not None:
            return False
    return True


def microbatch(nm: NativeModule, graph: Graph) -> int:
    per_sample, _ = nm.arena_sizes()
    if not sliceable(graph) or per_sample <= 0:
        return 0
    return max(MICROBATCH_MIN, MICROBATCH_BYTES // per_sample)


def header_text(graph: Graph, library_name: str) -> str:
    """kc_model.h with a comment describing this model's tensors."""
    with open(os.path.join(HERE, "kc_model.h")) as f:
        text = f.read()
    names = graph.output_names if len(graph.output_names) == len(graph.outputs) else [v.name for v in graph.outputs]

    def describe(v, name):
        dims = ", ".join("batch" if d is None else str(d) for d in v.shape)
        return f" *   {name}: {v.dtype} [{dims}]"

    lines = [f"/* Model {graph.name!r} ({library_name}).", " * Inputs:"]
    lines += [describe(v, v.name) for v in graph.inputs]
    lines += [" * Outputs:"] + [describe(v, n) for v, n in zip(graph.outputs, names)]
    lines += [" */", ""]
    return "\n".join(lines) + text


def header_path(library: str) -> str:
    folder, name = os.path.split(os.path.abspath(library))
    stem = name[:-3] if name.endswith(".so") else os.path.splitext(name)[0]
    if stem.startswith("lib") and len(stem) > 3:
        stem = stem[3:]
    return os.path.join(folder, stem + ".h")


def _run(cmd, what):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise KcompileError(f"native backend: {what} failed ({' '.join(cmd[:3])} ...):\n{result.stderr[-4000:]}")
    return result


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise KcompileError("native backend: no C compiler found (install gcc or set CC)")
    return cc


def build_library(graph: Graph, out_path: str, optimize: bool = True, isa: Isa | None = None,
                  keep: str | None = None) -> NativeBuild:
    """Compile `graph` into the shared library `out_path` and its header (NAME.h next to
    it). optimize: run the inference passes first. keep: a folder to leave the
    intermediate files in (kernels.ll, kernels.o, model_data.c, weights.bin)."""
    graph = run_pipeline(graph) if optimize else expand_composites(graph)
    isa = isa or host_isa()
    nm = generate(graph, isa)
    obj = compile_object(nm.module, isa)
    out_path = os.path.abspath(out_path)
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    work = keep or tempfile.mkdtemp(prefix="kcompile-native-")
    os.makedirs(work, exist_ok=True)
    try:
        weights = nm.blob.data()
        files = {
            "kernels.o": obj,
            "weights.bin": weights,
            "model_data.c": model_tables(nm, graph).encode(),
            "exports.map": ("{\n  global:\n" + "".join(f"    {n};\n" for n in API) + "  local: *;\n};\n").encode(),
        }
        if keep:
            files["kernels.ll"] = str(nm.module).encode()
        for name, data in files.items():
            with open(os.path.join(work, name), "wb") as f:
                f.write(data)
        bin_path = os.path.join(work, "weights.bin").replace("\\", "\\\\").replace('"', '\\"')
        with open(os.path.join(work, "weights.S"), "w") as f:
            f.write("\n".join([
                "    .section .rodata",
                "    .balign 64",
                "    .globl kcrt_weights",
                "    .hidden kcrt_weights",
                "    .type kcrt_weights, @object",
                "kcrt_weights:",
                f'    .incbin "{bin_path}"',
                "    .size kcrt_weights, .-kcrt_weights",
                '    .section .note.GNU-stack,"",@progbits',
                "",
            ]))
        tmp_out = os.path.join(work, "lib.so")
        _run([compiler(), "-O2", "-std=gnu11", "-Wall", "-Werror=incompatible-pointer-types", "-Werror=int-conversion",
              "-shared", "-fPIC", "-fvisibility=hidden", f"-I{HERE}",
              "-o", tmp_out, os.path.join(HERE, "runtime.c"), os.path.join(work, "model_data.c"),
              os.path.join(work, "kernels.o"), os.path.join(work, "weights.S"),
              f"-Wl,--version-script={os.path.join(work, 'exports.map')}", "-Wl,-z,noexecstack",
              "-lpthread", "-lm"], "linking the library")
        shutil.move(tmp_out, out_path)
        header = header_path(out_path)
        with open(header, "w") as f:
            f.write(header_text(graph, os.path.basename(out_path)))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    per_sample, static = nm.arena_sizes()
    return NativeBuild(out_path, header, graph, isa, len(weights), per_sample, static, len(nm.steps))


def build_runner(out_path: str) -> str:
    """Compile kc_runner.c (a C driver that dlopens any kcompile library) to out_path."""
    _run([compiler(), "-O2", "-Wall", f"-I{HERE}", "-o", out_path, os.path.join(HERE, "kc_runner.c"), "-ldl"],
         "compiling kc_runner")
    return out_path


__all__ = ["NativeBuild", "build_library", "build_runner", "compile_object", "generate", "header_path", "host_isa"]
