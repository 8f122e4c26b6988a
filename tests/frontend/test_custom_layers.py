"""Custom layers and Lambda layers: registered lowerings, tracing with TensorFlow,
safe mode for Lambda bytecode, custom_objects. Every model is compared with Keras."""
import numpy as np
import pytest

import kcompile
from kcompile import zoo
from kcompile.frontend import tf_ops
from kcompile.frontend.custom import register_layer, unregister_layer
from kcompile.frontend.tracing import Tracer
from kcompile.ir import GraphBuilder, interpret
from support.keras_models import assert_close, keras3, keras_outputs, randomize, tf_keras
from support.no_tensorflow import run_without_tensorflow

K = keras3()
ops = K.ops
L = K.layers


def inputs_for(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (batch,) + tuple(t.shape[1:])).astype(np.float32) for t in model.inputs]


def check_graph(graph, model, what, batches=(1, 7)):
    for batch in batches:
        inputs = inputs_for(model, batch, seed=batch)
        expected = keras_outputs(model, inputs)
        got = interpret(graph, inputs)
        assert len(got) == len(expected), what
        for g, e in zip(got, expected):
            assert_close(g, e, f"{what} batch {batch}")


def saved(model, tmp_path, name, fmt="keras"):
    path = str(tmp_path / f"{name}.{fmt}")
    model.save(path)
    return path


def load_and_check(model, path, what, **options):
    graph = kcompile.load_graph(path, **options)
    check_graph(graph, model, what)
    return graph


@pytest.fixture
def registration():
    """register_layer for the duration of one test."""
    added = []

    def register(name_or_class, fn, **options):
        register_layer(name_or_class, **options)(fn)
        added.append(name_or_class)

    yield register
    for name in added:
        unregister_layer(name)


# -- the seed's Antirectifier ----------------------------------------------------------------------


antirectifier_lowering = zoo.antirectifier_lowering


@pytest.fixture(scope="module")
def antirectifier_k3():
    layer_class = zoo.antirectifier_layer_class(K)
    return randomize(zoo.antirectifier(K, layer_class=layer_class), seed=5), layer_class


def test_antirectifier_registered_lowering(antirectifier_k3, registration, tmp_path):
    model, layer_class = antirectifier_k3
    registration(layer_class, antirectifier_lowering)
    for fmt in ("keras", "h5"):
        graph = load_and_check(model, saved(model, tmp_path, "ar", fmt), f"antirectifier registered [{fmt}]")
        # The registered lowering ran (its maximum), not the tracer (Keras's normalize uses minimum).
        ops_used = {n.op for n in graph.nodes}
        assert "maximum" in ops_used and "minimum" not in ops_used


def test_antirectifier_registered_by_name_for_tf_keras(registration, tmp_path):
    T = tf_keras()
    model = randomize(zoo.antirectifier(T), seed=6)
    registration("Antirectifier", antirectifier_lowering)
    load_and_check(model, saved(model, tmp_path, "ar_tfk", "h5"), "tf-keras antirectifier registered")


def test_antirectifier_traced_with_custom_objects(antirectifier_k3, tmp_path):
    model, layer_class = antirectifier_k3
    path = saved(model, tmp_path, "ar")
    graph = load_and_check(model, path, "antirectifier traced", custom_objects={"Antirectifier": layer_class})
    layers = {n.meta.get("layer") for n in graph.nodes if n.op == "concat"}
    assert layers == {layer.name for layer in model.layers if isinstance(layer, layer_class)}


def test_antirectifier_traced_for_tf_keras(tmp_path):
    T = tf_keras()
    layer_class = zoo.antirectifier_layer_class(T)  # tf.math.l2_normalize, tf.concat
    model = randomize(zoo.antirectifier(T, layer_class=layer_class), seed=7)
    load_and_check(model, saved(model, tmp_path, "ar_tfk", "h5"), "tf-keras antirectifier traced",
                   custom_objects={"Antirectifier": layer_class})


def test_antirectifier_traced_with_keras_registration(tmp_path):
    layer_class = zoo.antirectifier_layer_class(K)
    registered = K.saving.register_keras_serializable(package="kcompile_tests")(layer_class)
    try:
        model = randomize(zoo.antirectifier(K, layer_class=registered), seed=8)
        path = saved(model, tmp_path, "ar_registered")
        load_and_check(model, path, "antirectifier registered with Keras")
    finally:
        K.saving.get_custom_objects().pop("kcompile_tests>Antirectifier", None)
    # Once Keras forgets the class, the file cannot be traced and says so.
    with pytest.raises(kcompile.UnsupportedLayerError, match="register_layer"):
        kcompile.load_graph(path)


def test_antirectifier_compiled_for_cpu(antirectifier_k3, tmp_path):
    model, layer_class = antirectifier_k3
    compiled = kcompile.compile(saved(model, tmp_path, "ar"), custom_objects={"Antirectifier": layer_class})
    for batch in (1, 7):
        (x,) = inputs_for(model, batch, seed=batch)
        assert_close(compiled(x), keras_outputs(model, [x])[0], f"compiled antirectifier batch {batch}")


def test_live_model_with_unregistered_custom_layer(antirectifier_k3):
    model, _ = antirectifier_k3
    check_graph(kcompile.load_graph(model), model, "live antirectifier")


# -- more custom layers -----------------------------------------------------------------------------


class ScaledDense(L.Layer):
    """Own weights: a trainable kernel and a non-trainable scale."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel")
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", trainable=False, name="scale")

    def call(self, x):
        return ops.tanh(ops.matmul(x, self.kernel)) * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Standardize(L.Layer):
    """Reductions over two axes: (x - mean) / sqrt(var + eps), then the max over time."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        var = ops.var(x, axis=(1, 2), keepdims=True)
        y = (x - mean) / ops.sqrt(var + 1e-3)
        return ops.concatenate([ops.max(y, axis=1), ops.sum(ops.abs(y), axis=1) / 6.0], axis=-1)


class EinsumAttention(L.Layer):
    """keras.ops.einsum with a weight and between two tensors with a batch dimension."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 8), initializer="glorot_uniform", name="w")

    def call(self, x):
        q = ops.einsum("btd,de->bte", x, self.w)
        scores = ops.softmax(ops.einsum("bqe,bke->bqk", q, q) / 3.0, axis=-1)
        return ops.einsum("bqk,bkd->bqd", scores, x)


class Gate(L.Layer):
    """A gated residual with a Dense sublayer; used twice in a functional model."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.proj = L.Dense(6)

    def build(self, input_shape):
        self.gate = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="gate")
        self.proj.build(input_shape)

    def call(self, x):
        return x + ops.sigmoid(self.gate) * ops.relu(self.proj(x))


class Cumulative(L.Layer):
    def call(self, x):
        return ops.cumsum(x, axis=1)


CUSTOM = {c.__name__: c for c in (ScaledDense, Standardize, EinsumAttention, Gate, Cumulative)}


def test_layer_with_its_own_weights(tmp_path):
    model = randomize(K.Sequential([K.Input((5,)), L.Dense(4), ScaledDense(3, name="scaled")]), seed=1)
    graph = load_and_check(model, saved(model, tmp_path, "scaled"), "ScaledDense", custom_objects=CUSTOM)
    weights = {info["role"]: info for info in graph.meta["keras_weights"].values() if info["layer"] == "scaled"}
    assert set(weights) == {"kernel", "scale"}
    assert [weights["kernel"]["index"], weights["scale"]["index"]] == [0, 1]
    # Weights are graph parameters (trainable ones stay trainable), not folded constants.
    assert "scaled/kernel" in graph.params and weights["kernel"]["trainable"]
    load_and_check(model, saved(model, tmp_path, "scaled", "h5"), "ScaledDense [h5]", custom_objects=CUSTOM)


def test_layer_with_reductions(tmp_path):
    model = K.Sequential([K.Input((6, 4)), Standardize(name="standardize")])
    load_and_check(model, saved(model, tmp_path, "standardize"), "Standardize", custom_objects=CUSTOM)


def test_layer_with_einsum(tmp_path):
    model = randomize(K.Sequential([K.Input((5, 4)), EinsumAttention(name="attend")]), seed=2)
    graph = load_and_check(model, saved(model, tmp_path, "einsum"), "EinsumAttention", custom_objects=CUSTOM)
    assert "attend/w" in graph.params


def test_shared_custom_layer_in_a_functional_model(tmp_path):
    a, c = K.Input((6,), name="a"), K.Input((6,), name="c")
    gate = Gate(name="gate")
    out = L.Dense(2)(L.concatenate([gate(a), gate(L.Dense(6)(c))]))
    model = randomize(K.Model([a, c], out), seed=3)
    graph = load_and_check(model, saved(model, tmp_path, "shared"), "shared Gate", custom_objects=CUSTOM)
    gate_params = sorted(n for n in graph.params if n.startswith("gate/"))
    assert len(gate_params) == 3, gate_params  # gate, proj kernel, proj bias: once, for both calls
    assert {n.meta.get("layer") for n in graph.nodes if n.op == "sigmoid"} == {"gate"}
    assert sum(n.op == "sigmoid" for n in graph.nodes) == 2
    load_and_check(model, saved(model, tmp_path, "shared", "h5"), "shared Gate [h5]", custom_objects=CUSTOM)


def lambda_model():
    return K.Sequential([
        K.Input((5,)),
        L.Dense(4),
        # A lambda sees no module globals once reloaded (as in Keras): tensor methods only.
        L.Lambda(lambda x: x[:, :2] * 2.0 + x[:, 2:] ** 2, name="twist"),
    ])


def test_lambda_layer_with_safe_mode_off(tmp_path):
    model = randomize(lambda_model(), seed=4)
    path = saved(model, tmp_path, "lambda")
    load_and_check(model, path, "Lambda", safe_mode=False)
    with pytest.raises(kcompile.UnsupportedLayerError) as info:
        kcompile.load_graph(path)
    message = str(info.value)
    assert "'twist'" in message and "bytecode" in message
    assert "safe_mode=False" in message and "register_layer" in message


def test_lambda_layer_of_a_live_model_needs_no_opt_in():
    # The function is the caller's own object, not bytecode read from a file.
    model = randomize(lambda_model(), seed=4)
    check_graph(kcompile.load_graph(model), model, "live Lambda")


def test_lambda_layer_from_tf_keras_with_safe_mode_off(tmp_path):
    T = tf_keras()
    model = randomize(T.Sequential([T.Input((5,)), T.layers.Dense(4),
                                    T.layers.Lambda(lambda x: x[:, 1:] * 3.0 - x[:, :1], name="shift")]), seed=9)
    path = saved(model, tmp_path, "lambda_tfk", "h5")
    with pytest.raises(kcompile.UnsupportedLayerError, match="safe_mode=False"):
        kcompile.load_graph(path)
    load_and_check(model, path, "tf-keras Lambda", safe_mode=False)


def test_lambda_bytecode_is_never_run_in_safe_mode(tmp_path):
    marker = tmp_path / "marker.txt"

    writer = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x + 1.0)[1]")  # the path in the bytecode
    model = K.Sequential([K.Input((3,)), L.Lambda(writer, name="writer")])
    path = saved(model, tmp_path, "writer")
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    with pytest.raises(kcompile.UnsupportedLayerError, match="safe_mode=False"):
        kcompile.load_graph(path)
    with pytest.raises(kcompile.UnsupportedLayerError, match="safe_mode=False"):
        kcompile.compile(path)
    assert not marker.exists()
    # The same file with safe_mode=False runs the code: the check above can fail.
    kcompile.load_graph(path, safe_mode=False)
    assert marker.exists()


def test_an_untraceable_op_names_the_op_and_the_layer(tmp_path):
    model = K.Sequential([K.Input((4,)), Cumulative(name="running_total")])
    with pytest.raises(kcompile.UnsupportedLayerError) as info:
        kcompile.load_graph(saved(model, tmp_path, "cumsum"), custom_objects=CUSTOM)
    message = str(info.value)
    assert "Cumsum" in message and "running_total" in message and "register_layer" in message


def test_a_wrong_lowering_is_caught_by_the_check_against_keras(tmp_path, monkeypatch):
    model = randomize(K.Sequential([K.Input((5,)), ScaledDense(3, name="scaled")]), seed=1)
    path = saved(model, tmp_path, "scaled")
    monkeypatch.setitem(tf_ops.TF_OPS, "Tanh", lambda tr, op, x: tr.b.sigmoid(tr.value(x)))
    with pytest.raises(kcompile.UnsupportedLayerError, match="'scaled'.*does not match the Keras layer"):
        kcompile.load_graph(path, custom_objects=CUSTOM)


class TensorFlowOps(L.Layer):
    """TensorFlow functions called directly: shapes, slicing, gathering, logic, padding."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=(4, 3), initializer="random_normal", name="table")

    def call(self, x):  # (b, 4, 6)
        import tensorflow as tf

        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        a, c = tf.split(x, 2, axis=-1)
        gathered = tf.gather(a, [2, 0], axis=1)
        chosen = tf.where(a > 0.0, a, c * 0.5)
        turned = tf.stack(tf.unstack(tf.transpose(chosen, [0, 2, 1]), axis=1)[::-1], axis=1)
        padded = tf.pad(turned, [[0, 0], [1, 0], [0, 2]])
        tiled = tf.squeeze(tf.expand_dims(tf.tile(gathered, [1, 2, 1]), 2), axis=2)
        inside = tf.cast(tf.logical_and(tiled > -0.5, tiled < 0.5), tf.float32)
        soft = tf.nn.softmax(tf.clip_by_value(padded, -1.0, 1.0))
        last = x[..., -1]
        return tf.concat([
            tf.reduce_max(soft, axis=-1) + tf.reduce_sum(inside, axis=-1),
            tf.reshape(tf.matmul(x[:, :, :4], self.table), [-1, 12]),
            tf.reshape(x[:, ::-1, 1:5:2], [-1, 8]),
            tf.nn.l2_normalize(flat, axis=1)[:, :4],
            tf.nn.relu6(last) + tf.nn.leaky_relu(last) + tf.nn.elu(last) + tf.math.softplus(last),
        ], axis=1)


def test_layer_calling_tensorflow_functions(tmp_path):
    model = randomize(K.Sequential([K.Input((4, 6)), TensorFlowOps(name="tf_ops")]), seed=11)
    load_and_check(model, saved(model, tmp_path, "tf_ops"), "TensorFlowOps",
                   custom_objects={"TensorFlowOps": TensorFlowOps})


def test_builtin_keras_layer_without_a_lowering_is_traced(tmp_path):
    if "RMSNormalization" not in dir(L):
        pytest.skip("this Keras has no RMSNormalization")
    model = randomize(K.Sequential([K.Input((4, 6)), L.RMSNormalization(name="rms")]), seed=12)
    load_and_check(model, saved(model, tmp_path, "rms"), "RMSNormalization")


EINSUMS = [
    ("bi,ij->bj", (None, 4), (4, 3)), ("bqd,bkd->bqk", (None, 5, 4), (None, 6, 4)),
    ("bij->bji", (None, 3, 4), None), ("bij->bi", (None, 3, 4), None), ("...d,de->...e", (None, 2, 5, 4), (4, 3)),
    ("bi,bi->b", (None, 4), (None, 4)), ("bhqd,bhkd->bhqk", (None, 2, 3, 4), (None, 2, 5, 4)),
    ("ij,bjk->bik", (3, 4), (None, 4, 2)), ("bi,j->bij", (None, 3), (4,)), ("bxy,y->bx", (None, 3, 4), (4,)),
]


@pytest.mark.parametrize("equation,shape_a,shape_c", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_lowering_matches_numpy(equation, shape_a, shape_c):
    shapes = [s for s in (shape_a, shape_c) if s is not None]
    b = GraphBuilder()
    out = tf_ops.einsum(Tracer(None, b, "test", "Test"), equation, *[b.input(f"x{i}", s) for i, s in enumerate(shapes)])
    b.output([out])
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=tuple(3 if d is None else d for d in s)).astype(np.float32) for s in shapes]
    np.testing.assert_allclose(interpret(b.graph, arrays)[0], np.einsum(equation, *arrays), rtol=1e-5, atol=1e-5)


def test_without_tensorflow_a_registered_lowering_still_works(antirectifier_k3, tmp_path):
    model, _ = antirectifier_k3
    model.save(str(tmp_path / "ar.keras"))
    x = inputs_for(model, 3)[0]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", keras_outputs(model, [x])[0])
    result = run_without_tensorflow(
        """
        import numpy as np, kcompile
        from kcompile.frontend.custom import register_layer
        from kcompile.ir import interpret
        try:
            kcompile.load_graph("ar.keras")
        except kcompile.UnsupportedLayerError as e:
            assert "TensorFlow is not installed" in str(e) and "register_layer" in str(e), e
        else:
            raise AssertionError("loaded without a lowering")

        @register_layer("Antirectifier")
        def antirectifier(ctx, x):
            b = ctx.b
            x = b.sub(x, b.reduce_mean(x, axes=(1,), keepdims=True))
            x = b.mul(x, b.rsqrt(b.maximum(b.reduce_sum(b.square(x), axes=(1,), keepdims=True), ctx.const(1e-12))))
            return b.concat(b.relu(x), b.relu(b.neg(x)), axis=1)

        y, expected = interpret(kcompile.load_graph("ar.keras"), np.load("x.npy"))[0], np.load("y.npy")
        assert np.all(np.abs(y - expected) <= 1e-5 + 1e-4 * np.abs(expected))
        print("ok")
        """,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "ok"


def test_register_layer_is_public():
    assert kcompile.register_layer is register_layer
