"""The ONNX backend: every primitive, every layer case and the seed models export, pass
onnx.checker's full check, and ONNX Runtime's outputs match the interpreter / Keras."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import kcompile
from kcompile import zoo
from kcompile.codegen.onnx import MIN_OPSET, default_opset, export_graph, missing_lowerings
from kcompile.errors import KcompileError
from kcompile.ir import GraphBuilder, Kind, interpret, primitive
from kcompile.ir import registry
from kcompile.passes import run_pipeline
from support.keras_models import assert_close, build_case, case_inputs, keras3, keras_outputs, randomize, tf_keras
from support.layer_cases import BY_NAME, CASES
from support.no_tensorflow import run_without_tensorflow
from support.primitive_examples import EXAMPLES, build_example_graph


def session(model):
    """An ONNX Runtime session on one thread (a ModelProto or a path)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_checked(graph, **kw):
    model = export_graph(graph, **kw)
    onnx.checker.check_model(model, full_check=True)
    # float32 throughout: no double-precision weights or constants.
    assert all(t.data_type != onnx.TensorProto.DOUBLE for t in model.graph.initializer)
    return model


def run_onnx(model, graph, arrays):
    return session(model).run(None, {v.name: a for v, a in zip(graph.inputs, arrays)})


def assert_matches(got, expected, what):
    assert len(got) == len(expected), f"{what}: {len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        assert str(g.dtype) == str(e.dtype), f"{what} output {i}: dtype {g.dtype} != {e.dtype}"
        assert_close(g, e, f"{what} output {i}")


# -- the table ------------------------------------------------------------------------------------
def test_every_primitive_has_an_onnx_lowering():
    assert missing_lowerings() == []


def test_default_opset_is_the_newest_onnx_runtime_runs():
    opset = default_opset()
    assert MIN_OPSET <= opset <= onnx.defs.onnx_opset_version()
    graph, arrays = build_example_graph("relu", *EXAMPLES["relu"][0])
    model = export_graph(graph)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    run_onnx(model, graph, arrays)  # ONNX Runtime runs it
    if opset < onnx.defs.onnx_opset_version():  # and not the next opset
        with pytest.raises(Exception):
            session(export_graph(graph, opset=opset + 1))
    with pytest.raises(KcompileError, match="opset"):
        export_graph(graph, opset=MIN_OPSET - 1)


# -- every primitive example, against the interpreter ---------------------------------------------------
PRIMITIVE_EXAMPLES = [(op, k) for op in sorted(EXAMPLES) for k in range(len(EXAMPLES[op]))]


@pytest.mark.parametrize("opset", [None, MIN_OPSET], ids=["default_opset", "min_opset"])
@pytest.mark.parametrize("op,k", PRIMITIVE_EXAMPLES, ids=[f"{op}-{k}" for op, k in PRIMITIVE_EXAMPLES])
def test_primitive_example_matches_interpreter(op, k, opset):
    graph, arrays = build_example_graph(op, *EXAMPLES[op][k])
    model = export_checked(graph, opset=opset)
    sess = session(model)
    for batch_arrays in (arrays, [np.concatenate([a, a[:1]], axis=0) for a in arrays]):  # two batch sizes
        got = sess.run(None, {v.name: a for v, a in zip(graph.inputs, batch_arrays)})
        assert_matches(got, interpret(graph, batch_arrays), f"{op} example {k}")


def test_fused_programs_and_epilogues_export():
    """After the passes: a Gemm with its bias, Conv with B, and fused elementwise chains."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("fused")
    x = b.input("img", (None, 6, 6, 3))
    w = b.param(rng.normal(size=(3, 3, 3, 4)).astype(np.float32), "conv/kernel")
    bias = b.param(rng.normal(size=(4,)).astype(np.float32), "conv/bias")
    y = b.relu(b.add(b.conv(x, w, strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1))), bias))
    y = b.reshape(b.reduce_mean(y, axes=(1, 2)), shape=(None, 4))
    k = b.param(rng.normal(size=(4, 5)).astype(np.float32), "dense/kernel")
    c = b.param(rng.normal(size=(5,)).astype(np.float32), "dense/bias")
    z = b.add(b.matmul(y, k), c)
    gelu = b.mul(b.mul(z, b.const(0.5)), b.add(b.const(1.0), b.erf(b.mul(z, b.const(0.7071067811865476)))))
    b.output([b.softmax(gelu, axis=-1)], ["probs"])
    graph = b.graph
    optimized = run_pipeline(graph)
    assert any(n.attrs.get("epilogue") for n in optimized.nodes)
    model = export_checked(optimized)
    ops = [n.op_type for n in model.graph.node]
    assert "Gemm" in ops
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert len(conv.input) == 3, "the conv bias should be Conv's B input"
    arrays = [rng.normal(size=(3, 6, 6, 3)).astype(np.float32)]
    assert_matches(run_onnx(model, optimized, arrays), interpret(graph, arrays), "fused graph")


def test_rnn_lowerings():
    """Unmasked RNNs are ONNX's LSTM / GRU / RNN; masked ones (and ones with computed
    weights) a Scan whose size does not grow with the sequence length."""
    onnx_ops = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}
    for op, onnx_op in onnx_ops.items():
        for inputs, attrs in EXAMPLES[op]:
            graph, _ = build_example_graph(op, inputs, attrs)
            ops = [n.op_type for n in export_graph(graph).graph.node]
            assert (onnx_op in ops) != attrs["has_mask"] and ("Scan" in ops) == attrs["has_mask"], (op, attrs, ops)
    rng = np.random.default_rng(0)
    b = GraphBuilder("lstm_computed_weights")
    x, mask = b.input("x", (None, 40, 3)), b.input("mask", (None, 40))
    kernel = b.input("kernel", (3, 8))  # not a constant: the ONNX LSTM cannot take it
    recurrent = b.param(rng.normal(0, 0.5, (2, 8)).astype(np.float32), "recurrent")
    bias = b.param(rng.normal(0, 0.5, (8,)).astype(np.float32), "bias")
    rnn_attrs = dict(units=2, activation="tanh", recurrent_activation="hard_sigmoid", go_backwards=True,
                     return_sequences=True, zero_output_for_mask=False, has_initial_state=False)
    y1, *_ = b.lstm(x, kernel, recurrent, bias, has_mask=False, **rnn_attrs)
    y2, h, c = b.lstm(x, b.param(rng.normal(0, 0.5, (3, 8)).astype(np.float32), "k2"), recurrent, bias, mask,
                      has_mask=True, **rnn_attrs)
    b.output([y1, y2, h, c])
    graph = b.graph
    model = export_checked(graph)
    assert [n.op_type for n in model.graph.node].count("Scan") == 2 and len(model.graph.node) < 40
    m = (rng.random((3, 40)) > 0.3).astype(np.float32)
    arrays = [rng.normal(size=(3, 40, 3)).astype(np.float32), m, rng.normal(0, 0.5, (3, 8)).astype(np.float32)]
    assert [v.name for v in graph.inputs] == ["x", "mask", "kernel"]
    assert_matches(run_onnx(model, graph, arrays), interpret(graph, arrays), "Scan RNNs")


# -- every layer case and the seed models, against Keras ---------------------------------------------------
def check_against_keras(model, graph, make_inputs, what):
    """Export the graph before and after the passes; ONNX Runtime matches Keras at batch 1 and 7."""
    exported = [export_checked(graph), export_checked(run_pipeline(graph))]
    sessions = [session(m) for m in exported]
    for batch in (1, 7):
        inputs = make_inputs(batch)
        expected = keras_outputs(model, inputs)
        for label, sess in zip(("raw", "optimized"), sessions):
            got = sess.run(None, {v.name: a for v, a in zip(graph.inputs, inputs)})
            assert_matches(got, expected, f"{what} ({label} graph) batch {batch}")
    return exported


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer_case_matches_keras(case):
    K, k3 = (keras3(), True) if case.keras3 else (tf_keras(), False)
    model = randomize(build_case(case, K, k3, "functional"), seed=len(case.name))
    graph = kcompile.load_graph(model)
    check_against_keras(model, graph, lambda batch: case_inputs(case, model, batch, seed=batch), case.name)


# tf-keras builds some layers differently (hard_sigmoid is clip(0.2 x + 0.5), other names
# and weight layouts): a few cases in that flavour too.
TF_KERAS_CASES = ["lstm_no_bias", "gru_reset_before", "masked_bidirectional", "resizing_nearest", "conv2d_groups"]


@pytest.mark.parametrize("name", TF_KERAS_CASES)
def test_tf_keras_layer_case_matches_keras(name):
    case = BY_NAME[name]
    model = randomize(build_case(case, tf_keras(), False, "functional"), seed=len(case.name))
    graph = kcompile.load_graph(model)
    check_against_keras(model, graph, lambda batch: case_inputs(case, model, batch, seed=batch), f"{name} (tf-keras)")


SEEDS = {
    "mnist_mlp": zoo.mnist_mlp,
    "mnist_cnn": zoo.mnist_cnn,
    "cifar10_cnn": zoo.cifar10_cnn,
    "resnet20_v1": zoo.cifar10_resnet_v1,
    "resnet29_v2": zoo.cifar10_resnet_v2,
    "pretrained_word_embeddings": zoo.pretrained_word_embeddings,
}


def seed_inputs(model, batch):
    rng = np.random.default_rng(batch)
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return [rng.integers(0, 20000, shape).astype(np.int32)]
    return [rng.normal(0, 1, shape).astype(np.float32)]


@pytest.mark.parametrize("name", list(SEEDS))
def test_seed_model_matches_keras(name, tmp_path):
    model = randomize(SEEDS[name](keras3()), seed=3)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    graph = kcompile.load_graph(path)
    raw, optimized = check_against_keras(model, graph, lambda batch: seed_inputs(model, batch), name)
    ops = {n.op_type for n in optimized.graph.node}
    if name == "mnist_mlp":
        assert "Gemm" in ops
    if name in ("mnist_cnn", "resnet20_v1"):
        convs = [n for n in optimized.graph.node if n.op_type == "Conv"]
        assert convs and all(len(n.input) == 3 for n in convs), "conv biases (and folded BatchNorm) are Conv's B"
    if name in ("mnist_cnn", "cifar10_cnn") or name.startswith("resnet"):
        # The transposes around Conv/pooling cancel between layers, and the one back to
        # channels-last before Flatten -> Dense is folded into the Dense kernel: only the
        # input's transpose is left; for a one-channel image that is a Reshape (no copy).
        ops = [n.op_type for n in optimized.graph.node]
        one_channel = model.inputs[0].shape[-1] == 1
        assert ops.count("Transpose") == (0 if one_channel else 1), ops
        assert ops[0] == ("Reshape" if one_channel else "Transpose"), ops
    if name == "pretrained_word_embeddings":
        # Conv1D and MaxPooling1D run as 2-D operators; the Squeeze/Unsqueeze pairs
        # between them cancel, as the transposes do.
        for node in optimized.graph.node:
            if node.op_type in ("Conv", "MaxPool"):
                kernel = next(a for a in node.attribute if a.name == "kernel_shape")
                assert len(kernel.ints) == 2 and kernel.ints[0] == 1, node.name
        op_types = [n.op_type for n in optimized.graph.node]
        assert op_types.count("Unsqueeze") == 1 and op_types.count("Transpose") == 2
    # Each weight is stored once, in one layout.
    assert len(optimized.graph.initializer) == len({t.name for t in optimized.graph.initializer})
    weights = sum(int(np.prod(t.dims)) for t in optimized.graph.initializer)
    assert weights <= model.count_params() + 64


# -- files, names and metadata --------------------------------------------------------------------------------
def test_names_metadata_and_dynamic_batch(tmp_path):
    L = keras3().layers
    a, b = keras3().Input((5, 3), name="sequence"), keras3().Input((4,), name="state")
    y, h, c = L.LSTM(4, return_sequences=True, return_state=True, name="encoder")(a, initial_state=[b, b])
    probs = L.Dense(2, activation="softmax", name="probs")(h)
    model = randomize(keras3().Model([a, b], [probs, y, c]))
    path = str(tmp_path / "two_in_three_out.keras")
    model.save(path)
    graph = kcompile.load_graph(path)
    out = str(tmp_path / "model.onnx")
    export_graph(run_pipeline(graph), out)
    loaded = onnx.load(out)
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.producer_name == "kcompile" and loaded.producer_version == kcompile.__version__
    props = {p.key: p.value for p in loaded.metadata_props}
    assert props["source"] == path and props["keras_version"] == graph.meta["keras_version"]
    assert [i.name for i in loaded.graph.input] == ["sequence", "state"]
    # Keras 3 names all three LSTM outputs "encoder"; ONNX names are unique (tf-keras's suffixes).
    assert list(model.output_names) == graph.output_names == ["probs", "encoder", "encoder"]
    assert [o.name for o in loaded.graph.output] == ["probs", "encoder", "encoder_1"]
    for value in list(loaded.graph.input) + list(loaded.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and all(d.dim_value > 0 for d in dims[1:]), value.name
    for batch in (1, 3):
        inputs = [np.random.default_rng(batch).normal(size=(batch,) + s).astype(np.float32) for s in ((5, 3), (4,))]
        got = session(out).run(None, {"sequence": inputs[0], "state": inputs[1]})
        assert_matches(got, keras_outputs(model, inputs), f"batch {batch}")


def test_shared_weights_outputs_aliasing_inputs_and_repeated_outputs():
    rng = np.random.default_rng(0)
    b = GraphBuilder("shared")
    x = b.input("x", (None, 3))
    w = b.param(rng.normal(size=(3, 3)).astype(np.float32), "shared/kernel")
    h = b.matmul(b.tanh(b.matmul(x, w)), w)
    b.output([h, x, h, w], ["h", "x_again", "h_again", "the_kernel"])
    model = export_checked(b.graph)
    assert [i.name for i in model.graph.initializer].count("shared/kernel") == 1
    assert len(model.graph.initializer) == 1
    assert [o.name for o in model.graph.output] == ["h", "x_again", "h_again", "the_kernel"]
    arrays = [rng.normal(size=(2, 3)).astype(np.float32)]
    assert_matches(run_onnx(model, b.graph, arrays), interpret(b.graph, arrays), "aliases")


def test_external_data_for_large_models(tmp_path):
    model = randomize(zoo.mnist_mlp(keras3()))
    graph = run_pipeline(kcompile.load_graph(model))
    path = str(tmp_path / "mlp.onnx")
    proto = export_graph(graph, path, external_data_threshold=1024)
    assert sorted(os.listdir(tmp_path)) == ["mlp.onnx", "mlp.onnx.data"]
    assert os.path.getsize(path) < 100_000 < os.path.getsize(path + ".data")
    assert proto.graph.initializer[0].raw_data, "the returned model keeps its weights in memory"
    header = onnx.load(path, load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in header.graph.initializer)
    onnx.checker.check_model(path, full_check=True)
    x = np.random.default_rng(0).normal(size=(5, 784)).astype(np.float32)
    (got,) = session(path).run(None, {graph.inputs[0].name: x})
    assert_close(got, keras_outputs(model, [x])[0], "external data")


@pytest.fixture
def fake_primitive():
    """A primitive with no ONNX lowering and no decomposition (a user-registered layer),
    removed again so other tests see the registry as it was."""
    name = "onnx_test_unlowerable"

    @primitive(name, Kind.ELEMENTWISE)
    class Unlowerable:
        infer = staticmethod(lambda x: x)
        reference = staticmethod(lambda x: x * 2)

    yield name
    registry._PRIMITIVES.pop(name)


def test_missing_lowering_fails_and_writes_nothing(fake_primitive, tmp_path):
    b = GraphBuilder("custom")
    x = b.input("x", (None, 4))
    with b.meta(layer="my_custom_layer"):
        y = b.emit(fake_primitive, b.relu(x))
    b.output([b.sigmoid(y)], ["out"])
    path = tmp_path / "custom.onnx"
    with pytest.raises(KcompileError) as info:
        export_graph(b.graph, str(path))
    assert fake_primitive in str(info.value) and "my_custom_layer" in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def decomposable_primitive():
    name = "onnx_test_hard_swish"

    @primitive(name, Kind.ELEMENTWISE)
    class HardSwish:
        infer = staticmethod(lambda x: x)
        reference = staticmethod(lambda x: (x * np.clip(x / 6 + 0.5, 0, 1)).astype(x.dtype))

        @staticmethod
        def decompose(b, x):
            return b.mul(x, b.clip(b.add(b.mul(x, b.const(1 / 6)), b.const(0.5)), low=0.0, high=1.0))

    yield name
    registry._PRIMITIVES.pop(name)


def test_primitive_without_lowering_exports_through_its_decomposition(decomposable_primitive):
    b = GraphBuilder("custom")
    x = b.input("x", (None, 5))
    b.output([b.tanh(b.emit(decomposable_primitive, b.neg(x)))], ["y"])
    graph = b.graph
    arrays = [np.linspace(-5, 5, 15, dtype=np.float32).reshape(3, 5)]
    model = export_checked(graph)
    assert "Clip" in [n.op_type for n in model.graph.node]
    assert_matches(run_onnx(model, graph, arrays), interpret(graph, arrays), "decomposed")
    fused = run_pipeline(graph)  # also from inside a fused program
    assert [n.op for n in fused.nodes] == ["fused_elementwise"]
    assert_matches(run_onnx(export_checked(fused), fused, arrays), interpret(graph, arrays), "decomposed, fused")


def test_export_without_tensorflow(tmp_path):
    model = randomize(zoo.mnist_cnn(keras3()), seed=1)
    model.save(str(tmp_path / "cnn.keras"))
    x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", keras_outputs(model, [x])[0])
    result = run_without_tensorflow(
        """
        import sys, numpy as np, onnxruntime as ort, kcompile
        from kcompile.passes import run_pipeline
        from kcompile.codegen.onnx import export_graph
        graph = run_pipeline(kcompile.load_graph("cnn.keras"))
        export_graph(graph, "cnn.onnx")
        sess = ort.InferenceSession("cnn.onnx", providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {graph.inputs[0].name: np.load("x.npy")})
        expected = np.load("y.npy")
        assert np.all(np.abs(y - expected) <= 1e-5 + 1e-4 * np.abs(expected))
        assert not any(m.split(".")[0] in ("tensorflow", "keras", "tf_keras") for m in sys.modules)
        print("ok")
        """,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "ok"
