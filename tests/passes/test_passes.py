"""Each pass: the structure it produces (before/after) and unchanged numerics."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, interpret, verify
from kcompile.passes import INFERENCE_PIPELINE, PASSES, plan_memory, run_pipeline
from kcompile.passes.cleanup import fold_broadcasts, remove_identities
from kcompile.passes.constant_folding import fold_constants
from kcompile.passes.cse import eliminate_common_subexpressions
from kcompile.passes.dead_code import eliminate_dead_code
from kcompile.passes.expand_composites import expand_composites
from kcompile.passes.fold_scale_shift import fold_scale_shift
from kcompile.passes.fuse_elementwise import fuse_elementwise
from kcompile.passes.fuse_epilogue import fuse_epilogues
from kcompile.passes.layout import optimize_layout
from kcompile.passes.memory import describe

RNG = np.random.default_rng(0)


def w(*shape):
    return RNG.normal(0, 0.5, shape).astype(np.float32)


def same_numerics(before, after, *shapes):
    verify(after)
    inputs = [RNG.normal(0, 1, (3,) + s).astype(np.float32) for s in shapes]
    for a, b in zip(interpret(before, inputs), interpret(after, inputs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def ops(graph):
    return [n.op for n in graph.nodes]


def conv_bn_relu():
    """What the frontend makes of Conv2D(bias) -> BatchNormalization -> ReLU -> Dropout."""
    b = GraphBuilder("conv_bn_relu")
    x = b.input("x", (None, 6, 6, 3))
    y = b.conv(x, b.param(w(3, 3, 3, 4), "k"), strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)), groups=1)
    y = b.add(y, b.param(w(4), "bias"))
    var, gamma, beta, mean = b.param(np.abs(w(4)) + 0.5, "var"), b.param(w(4), "g"), b.param(w(4), "beta"), b.param(w(4), "m")
    inv = b.mul(b.rsqrt(b.add(var, b.const(1e-3))), gamma)
    y = b.add(b.mul(y, inv), b.add(b.neg(b.mul(mean, inv)), beta))
    y = b.identity(b.relu(y))
    b.output([y])
    return b.graph


def test_conv_bn_relu_becomes_one_fused_conv():
    g = conv_bn_relu()
    out = run_pipeline(g, check=True)
    assert ops(out) == ["conv"]
    epilogue = out.nodes[0].attrs["epilogue"]
    assert [step[0] for step in epilogue] == ["add", "relu"]
    same_numerics(g, out, (6, 6, 3))


def test_remove_identities_and_dead_code():
    b = GraphBuilder()
    x = b.input("x", (None, 4))
    b.exp(x)  # dead
    b.output([b.identity(b.identity(b.tanh(x)))])
    g = b.graph
    out = eliminate_dead_code(remove_identities(g))
    assert ops(out) == ["tanh"]
    same_numerics(g, out, (4,))


def test_fold_broadcasts_lets_elementwise_ops_broadcast_themselves():
    b = GraphBuilder()
    x = b.input("x", (None, 5, 4))
    per_channel = b.exp(b.reduce_sum(x, axes=(1,), keepdims=True))  # (?, 1, 4)
    spread = b.broadcast_to(per_channel, shape=(None, 5, 4))
    scaled = b.mul(spread, x)  # x supplies the full shape: reads per_channel directly
    alone = b.neg(spread)  # unary: needs the full tensor
    row = b.input("row", (None, 1, 4))
    both_small = b.add(spread, row)  # (?,1,4) + (?,1,4) would lose the 5: keeps the broadcast
    b.output([scaled, alone, both_small])
    g = b.graph
    out = eliminate_dead_code(fold_broadcasts(g))
    users = {n.op: n for n in out.nodes}
    assert users["mul"].inputs[0] is per_channel and users["mul"].output.shape == (None, 5, 4)
    assert users["neg"].inputs[0] is spread and users["add"].inputs[0] is spread
    assert ops(out).count("broadcast_to") == 1
    verify(out)
    inputs = [RNG.normal(0, 1, (3, 5, 4)).astype(np.float32), RNG.normal(0, 1, (3, 1, 4)).astype(np.float32)]
    for a, c in zip(interpret(g, inputs), interpret(out, inputs)):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


def test_fold_constants_computes_parameter_only_nodes():
    b = GraphBuilder()
    x = b.input("x", (None, 4))
    k = b.reshape(b.transpose(b.param(w(2, 8), "k"), perm=(1, 0)), shape=(4, 4))
    b.output([b.matmul(x, k)])
    g = b.graph
    out = fold_constants(g)
    assert ops(out) == ["matmul"] and out.is_param(out.nodes[0].inputs[1])
    same_numerics(g, out, (4,))


def test_cse_merges_equal_nodes_and_params():
    b = GraphBuilder()
    x = b.input("x", (None, 4))
    c1, c2 = b.param(np.ones(4, np.float32), "c1"), b.param(np.ones(4, np.float32), "c2")
    b.output([b.add(b.exp(b.add(x, c1)), b.exp(b.add(x, c2)))])
    g = b.graph
    out = eliminate_common_subexpressions(g)
    assert ops(out) == ["add", "exp", "add"] and len(out.params) == 1
    same_numerics(g, out, (4,))


def test_fold_scale_shift_into_matmul_and_conv_transpose():
    b = GraphBuilder()
    x = b.input("x", (None, 5))
    y = b.sub(b.mul(b.add(b.matmul(x, b.param(w(5, 3), "k")), b.param(w(3), "bias")), b.param(w(3), "s")), b.const(0.5))
    z = b.input("z", (None, 3, 3, 2))
    t = b.div(b.conv_transpose(z, b.param(w(2, 2, 4, 2), "kt"), strides=(2, 2), dilations=(1, 1), pads=((0, 0), (0, 0))),
              b.param(np.abs(w(4)) + 1, "d"))
    b.output([y, t])
    g = b.graph
    out = fold_scale_shift(g)
    assert ops(out) == ["matmul", "add", "conv_transpose"]
    verify(out)
    inputs = [RNG.normal(size=(3, 5)).astype(np.float32), RNG.normal(size=(3, 3, 3, 2)).astype(np.float32)]
    for a, c in zip(interpret(g, inputs), interpret(out, inputs)):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


def test_fold_scale_shift_leaves_shared_values_alone():
    b = GraphBuilder()
    x = b.input("x", (None, 5))
    y = b.matmul(x, b.param(w(5, 3), "k"))
    b.output([b.mul(y, b.param(w(3), "s")), y])  # y is also an output
    assert ops(fold_scale_shift(b.graph)) == ["matmul", "mul"]


def test_epilogue_takes_bias_activation_and_residual():
    b = GraphBuilder()
    x = b.input("x", (None, 4, 4, 3))
    r = b.input("r", (None, 4, 4, 5))
    y = b.conv(x, b.param(w(1, 1, 3, 5), "k"), strides=(1, 1), dilations=(1, 1), pads=((0, 0), (0, 0)), groups=1)
    y = b.relu(b.add(b.add(y, b.param(w(5), "bias")), r))
    b.output([b.sigmoid(b.mul(y, y))])  # y read twice: the chain stops before mul
    g = b.graph
    out = fuse_epilogues(g)
    assert ops(out) == ["conv", "mul", "sigmoid"]
    assert [s[0] for s in out.nodes[0].attrs["epilogue"]] == ["add", "add", "relu"]
    verify(out)
    inputs = [RNG.normal(size=(2, 4, 4, 3)).astype(np.float32), RNG.normal(size=(2, 4, 4, 5)).astype(np.float32)]
    np.testing.assert_allclose(interpret(g, inputs)[0], interpret(out, inputs)[0], rtol=1e-5, atol=1e-6)


def test_training_epilogues_take_a_bias_that_changes_between_calls():
    """A trainable bias is an input without a batch axis: only the training pipeline's
    fuse_training_epilogues takes it, as a per-channel operand (not a residual), and the
    Numba program reads its current value at each call."""
    from kcompile.codegen.numba_cpu.compiler import compile_graph
    from kcompile.passes import fuse_training_epilogues

    b = GraphBuilder()
    x = b.input("x", (None, 5, 5, 3))
    bias = b.input("bias", (4,))
    r = b.input("r", (None, 3, 3, 4))
    y = b.conv(x, b.param(w(3, 3, 3, 4), "k"), strides=(1, 1), dilations=(1, 1), pads=((0, 0), (0, 0)), groups=1)
    b.output([b.relu(b.add(b.sub(y, bias), r))])
    g = b.graph
    assert ops(fuse_epilogues(g)) == ["conv", "sub", "add", "relu"]  # inference graphs: constants only
    out = fuse_training_epilogues(g)
    assert ops(out) == ["conv"] and [s[0] for s in out.nodes[0].attrs["epilogue"]] == ["sub", "add", "relu"]
    verify(out)
    bias_now = RNG.normal(size=4).astype(np.float32)
    program = compile_graph(out, external={"bias": bias_now})
    for _ in range(2):  # updated in place between calls, as an optimizer does
        inputs = [RNG.normal(size=(2, 5, 5, 3)).astype(np.float32), RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)]
        expected = interpret(g, [inputs[0], bias_now, inputs[1]])[0]
        np.testing.assert_allclose(program(inputs, 2)[0], expected, rtol=1e-5, atol=1e-5)
        bias_now += 1.0


@pytest.mark.parametrize("shape,window,strides,pads", [
    ((6, 8, 5), (2, 2), (2, 2), ((0, 0), (0, 0))),  # 2x2 windows tiling the input
    ((7, 5, 3), (2, 2), (2, 2), ((0, 0), (0, 0))),  # ... all but an odd last row and column
    ((6, 6, 3), (3, 3), (3, 3), ((0, 0), (0, 0))),  # other windows that tile it
    ((5, 5, 3), (3, 3), (2, 2), ((1, 1), (1, 1))),  # overlapping, padded
])
def test_training_epilogues_mask_a_max_pool_gradient(shape, window, strides, pads):
    """ReLU's gradient after a max pool's becomes max_pool_grad's epilogue in training
    graphs (its other operand, the ReLU output, read as the residual); the Numba kernels
    run it on each path (2x2, tiled, general) and match the interpreter. The other
    backends refuse such a node by name (CUDA's check, the same helper, needs a GPU or
    the simulator to reach)."""
    from kcompile.codegen.native.program import compile_graph as compile_native
    from kcompile.codegen.numba_cpu.compiler import compile_graph
    from kcompile.codegen.onnx import export_graph
    from kcompile.errors import KcompileError
    from kcompile.passes import fuse_training_epilogues

    b = GraphBuilder()
    y = b.input("y", (None,) + shape)  # a ReLU's output: what the pool read
    g = b.input("g", (None,) + tuple((n + lo + hi - k) // s + 1 for n, k, s, (lo, hi) in
                                      zip(shape[:2], window, strides, pads)) + shape[2:])
    dx = b.emit("max_pool_grad", y, g, window=window, strides=strides, pads=pads)
    b.output([b.relu_grad(b.mul(dx, b.const(2.0)), y)])
    before = b.graph
    assert ops(fuse_epilogues(before)) == ["max_pool_grad", "mul", "relu_grad"]  # inference graphs: not fused
    out = fuse_training_epilogues(before)
    assert ops(out) == ["max_pool_grad"]
    assert [step[0] for step in out.nodes[0].attrs["epilogue"]] == ["mul", "relu_grad"]
    verify(out)
    inputs = [np.maximum(RNG.normal(size=(3,) + shape), 0).astype(np.float32),
              RNG.normal(size=(3,) + g.shape[1:]).astype(np.float32)]
    expected = interpret(before, inputs)[0]
    assert np.count_nonzero(expected) > 0
    np.testing.assert_allclose(interpret(out, inputs)[0], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(compile_graph(out)(inputs, 3)[0], expected, rtol=1e-6, atol=1e-6)
    for other_backend in (export_graph, compile_native):
        with pytest.raises(KcompileError, match="max_pool_grad .* fused epilogue"):
            other_backend(out)


def test_reductions_take_an_elementwise_producer_only_they_read():
    """fuse_reduction_prologues (training pipeline): sum(square(centered)) becomes one
    fused_reduce_sum while `centered`, read twice, stays; the Numba program's reduction
    kernels (split over the batch, and over a static tensor's first axis) match the
    interpreter."""
    from kcompile.codegen.numba_cpu.compiler import compile_graph
    from kcompile.passes import fuse_reduction_prologues

    b = GraphBuilder()
    x = b.input("x", (None, 4, 4, 3))
    z = b.input("z", (5, 3))
    centered = b.sub(x, b.param(w(1, 1, 1, 3), "mean"))
    variance = b.reduce_sum(b.square(centered), axes=(1, 2), keepdims=True)
    dot = b.reduce_sum(b.mul(z, b.relu(z)), axes=(0,), keepdims=False)
    b.output([variance, b.mul(centered, b.const(2.0)), dot])
    g = b.graph
    out = fuse_reduction_prologues(g)
    assert ops(out) == ["sub", "fused_reduce_sum", "relu", "fused_reduce_sum", "mul"]
    verify(out)
    z_now = RNG.normal(size=(5, 3)).astype(np.float32)
    program = compile_graph(out, external={"z": z_now})
    assert program.source.count("out.reshape(-1)[:] = ZERO") == 2  # two reduction kernels
    for batch in (1, 3):
        x_now = RNG.normal(size=(batch, 4, 4, 3)).astype(np.float32)
        for got, expected in zip(program([x_now], batch), interpret(g, [x_now, z_now])):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_elementwise_chains_fuse_into_one_node():
    b = GraphBuilder()
    x = b.input("x", (None, 6))
    gelu = b.mul(b.mul(b.const(0.5), x), b.add(b.const(1.0), b.erf(b.mul(x, b.const(0.7071)))))
    b.output([b.softmax(gelu, axis=-1)])
    g = b.graph
    out = fuse_elementwise(g)
    assert ops(out) == ["fused_elementwise", "softmax"]
    assert len(out.nodes[0].attrs["program"]) == 5
    same_numerics(g, out, (6,))


def test_layout_cancels_transposes_through_per_channel_ops():
    """channels_first Conv -> BatchNorm(axis=1) -> Conv leaves transposes that cancel."""
    b = GraphBuilder()
    x = b.input("x", (None, 3, 5, 5))
    y = b.transpose(x, perm=(0, 2, 3, 1))
    y = b.conv(y, b.param(w(3, 3, 3, 4), "k1"), strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)), groups=1)
    y = b.transpose(y, perm=(0, 3, 1, 2))
    y = b.add(b.mul(y, b.param(w(1, 4, 1, 1), "s")), b.param(w(1, 4, 1, 1), "t"))
    y = b.transpose(y, perm=(0, 2, 3, 1))
    y = b.conv(y, b.param(w(1, 1, 4, 2), "k2"), strides=(1, 1), dilations=(1, 1), pads=((0, 0), (0, 0)), groups=1)
    b.output([b.transpose(y, perm=(0, 3, 1, 2))])
    g = b.graph
    out = optimize_layout(g)
    assert ops(out) == ["transpose", "conv", "mul", "add", "conv", "transpose"]
    same_numerics(g, out, (3, 5, 5))


def test_memory_plan_reuses_buffers():
    b = GraphBuilder()
    x = b.input("x", (None, 64))
    h = x
    for k in range(6):
        h = b.relu(b.matmul(h, b.param(w(64, 64), f"k{k}")))
    b.output([h])
    g = b.graph
    plan = plan_memory(g)
    assert plan.per_sample_bytes < plan.unplanned_per_sample / 3
    assert "saved" in describe(plan)
    # No two values live at the same time share bytes.
    live = {}
    for i, node in enumerate(g.nodes):
        for v in node.inputs:
            live.setdefault(v.name, [i, i])[1] = i
        for v in node.outputs:
            live.setdefault(v.name, [i, i])
    live[g.outputs[0].name][1] = len(g.nodes)
    spans = [(plan.buffers[plan.storage[n][1]], s) for n, s in live.items() if plan.storage[n][0] == "buffer"]
    for i, (b1, s1) in enumerate(spans):
        for b2, s2 in spans[i + 1:]:
            if b1 is b2:
                continue
            overlap_time = s1[0] <= s2[1] and s2[0] <= s1[1]
            overlap_space = b1.offset < b2.offset + b2.size and b2.offset < b1.offset + b1.size
            assert not (overlap_time and overlap_space)


def test_expand_composites_writes_out_batch_norm_train():
    """The composite becomes its decomposition, in place (the nodes after it read its
    outputs' replacements); a graph without composites comes back as it is."""
    b = GraphBuilder("bn_train")
    x = b.input("x", (None, 4, 3))
    y, mean, variance = b.batch_norm_train(b.relu(x), b.param(w(3), "gamma"), b.param(w(3), "beta"), axes=(0, 1),
                                           epsilon=1e-3)
    b.output([b.tanh(y), mean, variance])
    before = b.graph
    after = expand_composites(before)
    assert "batch_norm_train" in ops(before) and "batch_norm_train" not in ops(after)
    assert ops(after)[0] == "relu" and ops(after)[-1] == "tanh"
    same_numerics(before, after, (4, 3))
    assert expand_composites(after) is after


def test_every_pass_has_a_name_and_the_pipeline_is_a_list():
    assert set(PASSES) == {p.__name__ for p in INFERENCE_PIPELINE}
    assert isinstance(INFERENCE_PIPELINE, list)


@pytest.mark.parametrize("name", sorted(PASSES))
def test_each_pass_alone_keeps_numerics(name):
    g = conv_bn_relu()
    same_numerics(g, PASSES[name](g), (6, 6, 3))
