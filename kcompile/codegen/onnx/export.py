"""export_graph: an IR Graph (before or after the inference passes) to an ONNX model."""
from __future__ import annotations

import functools
import os
import shutil
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import KcompileError
from ...ir import Graph, all_primitives
from .context import LoweringContext
from .elementwise import ELEMENTWISE
from .table import LOWERINGS

MIN_OPSET = 13  # Squeeze/Unsqueeze/ReduceSum take axes as inputs; Softmax works on one axis
PROTOBUF_LIMIT = 2**31  # a ModelProto serializes to at most 2 GiB


missing_lowerings = LOWERINGS.missing


@functools.lru_cache(maxsize=None)
def default_opset() -> int:
    """The newest ai.onnx opset both the onnx package and the installed ONNX Runtime run."""
    newest = onnx.defs.onnx_opset_version()
    try:
        import onnxruntime
    except ImportError:
        return newest
    for opset in range(newest, MIN_OPSET - 1, -1):
        if _runtime_loads(onnxruntime, opset):
            return opset
    return MIN_OPSET


def _runtime_loads(onnxruntime, opset: int) -> bool:
    """Whether ONNX Runtime loads a small model stamped with `opset` (a few of the
    operators whose newest versions came last)."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 1])
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Transpose", ["c"], ["t"], perm=[1, 0]),
        helper.make_node("Reshape", ["t", "shape"], ["y"]),
    ]
    shape = numpy_helper.from_array(np.array([2, 1], np.int64), "shape")
    graph = helper.make_graph(nodes, "probe", [x], [y], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # a refusal is the answer, not an error to print
    try:
        onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:  # ONNX Runtime raises its own exception types for unknown opsets
        return False
    return True


def _unlowerable(graph: Graph) -> dict:
    """op -> layers using it, for every op that has neither a lowering nor a decomposition
    (ops inside fused programs and epilogues included)."""
    prims = all_primitives()

    def lowerable(op, table):
        return op in table or (op in prims and prims[op].decompose is not None)

    missing: dict = {}
    for node in graph.nodes:
        used = [(node.op, LOWERINGS)]
        for key in ("program", "epilogue"):
            used += [(step[0], ELEMENTWISE) for step in node.attrs.get(key, ()) or ()]
        for op, table in used:
            if not lowerable(op, table):
                missing.setdefault(op, []).append(node.meta.get("layer") or node.outputs[0].name)
    return missing


def output_names(graph: Graph) -> list:
    """The ONNX output names: the Keras output names, where a name repeats (Keras 3 gives
    every output of a multi-output layer the layer's name) the later ones get _1, _2, ...
    as tf-keras names them; a name already taken by a different input gets one too."""
    names = list(graph.output_names) or [v.name for v in graph.outputs]
    inputs = {v.name: v for v in graph.inputs}
    taken, result = set(), []
    for name, value in zip(names, graph.outputs):
        unique, k = name, 0
        while unique in taken or (unique in inputs and inputs[unique] is not value):
            k += 1
            unique = f"{name}_{k}"
        taken.add(unique)
        result.append(unique)
    return result


def export_graph(graph: Graph, path=None, opset: int | None = None,
                 external_data_threshold: int = 2**31 - 2**20) -> onnx.ModelProto:
    """Lower `graph` to an ONNX model; write it to `path` when given (atomically: a
    failed export leaves no file). When the weights take more than
    `external_data_threshold` bytes they go to `<file>.data` beside the model (ONNX
    external data); the returned model keeps them in memory either way. The dynamic
    batch dimension is the dim_param "batch"; inputs and outputs carry the Keras names
    (see output_names for repeated ones). opset defaults to default_opset()."""
    import kcompile  # for __version__ (kcompile/__init__ may still be importing this module)

    newest = onnx.defs.onnx_opset_version()
    opset = default_opset() if opset is None else int(opset)
    if not MIN_OPSET <= opset <= newest:
        raise KcompileError(f"ONNX export supports opsets {MIN_OPSET} to {newest}, not {opset}")
    missing = _unlowerable(graph)
    if missing:
        listing = "; ".join(f"{op!r} (in {', '.join(map(str, layers[:3]))})" for op, layers in sorted(missing.items()))
        raise KcompileError(
            f"cannot export {graph.name!r} to ONNX: no ONNX lowering for {listing}. Add one to "
            f"kcompile.codegen.onnx.LOWERINGS or give the primitive a decompose rule."
        )

    out_names = output_names(graph)
    input_names = [v.name for v in graph.inputs]
    ctx = LoweringContext(graph, opset, LOWERINGS, reserved=input_names + out_names)
    onnx_graph = ctx.lower_graph(input_names, out_names)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="kcompile", producer_version=kcompile.__version__)
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    source = graph.meta.get("source")
    model.doc_string = f"Exported by kcompile {kcompile.__version__}" + (f" from {source}" if source else "")
    props = {"source": source, "source_format": graph.meta.get("format"),
             "keras_version": graph.meta.get("keras_version")}
    helper.set_model_props(model, {k: str(v) for k, v in props.items() if v is not None})

    weight_bytes = sum(len(t.raw_data) for t in onnx_graph.initializer)
    if weight_bytes < PROTOBUF_LIMIT - 2**20:
        onnx.checker.check_model(model)
    if path is not None:
        write_model(model, os.fspath(path), external=weight_bytes > external_data_threshold)
    return model


def write_model(model: onnx.ModelProto, path: str, external: bool):
    """Save through a temporary folder beside `path`, then move into place; with
    `external`, the weights go to `<name>.data` next to it."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    scratch = tempfile.mkdtemp(prefix=".kcompile-onnx-", dir=directory)
    try:
        tmp = os.path.join(scratch, base)
        if external:
            location = base + ".data"
            copy = onnx.ModelProto()
            copy.CopyFrom(model)  # save_model moves the tensors out of the proto it saves
            onnx.save_model(copy, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=location, size_threshold=0)
            os.replace(os.path.join(scratch, location), os.path.join(directory, location))
        else:
            onnx.save_model(model, tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
