"""The seed models' architectures at tiny sizes, built directly in IR the way the Keras
frontend lowers their layers (Dense = matmul + bias + activation, BatchNormalization =
x * inv + shift over constants, Dropout = identity, Flatten = reshape, ...), so the CUDA
simulator can run them in seconds. The inference passes (BN folding, epilogue and
elementwise fusion) then act on them as on the real models.

No __init__.py in this folder on purpose: a package named `cuda` would shadow NVIDIA's
`cuda` namespace (cuda.bindings, used by numba-cuda) in the pytest process."""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder
from kcompile.ir.shapes import same_padding


class Layers:
    """Keras-like layer helpers over a GraphBuilder, with random weights."""

    def __init__(self, name: str, seed: int = 0):
        self.b = GraphBuilder(name)
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def weight(self, shape, fan_in, name):
        return self.b.param((self.rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name)

    def activation(self, x, activation):
        b = self.b
        if activation == "relu":
            return b.relu(x)
        if activation == "softmax":
            return b.softmax(x, axis=-1)
        return x

    def dense(self, x, units, activation=None):
        name = self._name("dense")
        with self.b.meta(layer=name):
            w = self.weight((x.shape[-1], units), x.shape[-1], f"{name}/kernel")
            bias = self.b.param(self.rng.normal(size=units).astype(np.float32) * 0.1, f"{name}/bias")
            return self.activation(self.b.add(self.b.matmul(x, w), bias), activation)

    def conv(self, x, filters, kernel, strides=1, padding="valid", activation=None, use_bias=True):
        name = self._name("conv")
        n = x.rank - 2
        window, stride = (kernel,) * n, (strides,) * n
        if padding == "same":
            pads = tuple(same_padding(size, kernel, strides) for size in x.shape[1:-1])
        else:
            pads = ((0, 0),) * n
        with self.b.meta(layer=name):
            w = self.weight(window + (x.shape[-1], filters), kernel ** n * x.shape[-1], f"{name}/kernel")
            y = self.b.conv(x, w, strides=stride, dilations=(1,) * n, pads=pads, groups=1)
            if use_bias:
                y = self.b.add(y, self.b.param(self.rng.normal(size=filters).astype(np.float32) * 0.1, f"{name}/bias"))
            return self.activation(y, activation)

    def batch_norm(self, x, epsilon=1e-3):
        name = self._name("batch_normalization")
        b, c = self.b, x.shape[-1]
        with b.meta(layer=name):
            gamma = b.param(self.rng.uniform(0.5, 1.5, c).astype(np.float32), f"{name}/gamma")
            beta = b.param(self.rng.normal(size=c).astype(np.float32) * 0.1, f"{name}/beta")
            mean = b.param(self.rng.normal(size=c).astype(np.float32) * 0.1, f"{name}/moving_mean")
            variance = b.param(self.rng.uniform(0.5, 1.5, c).astype(np.float32), f"{name}/moving_variance")
            inv = b.mul(b.rsqrt(b.add(variance, b.const(epsilon))), gamma)
            shift = b.add(b.neg(b.mul(mean, inv)), beta)
            return b.add(b.mul(x, inv), shift)

    def max_pool(self, x, pool):
        n = x.rank - 2
        with self.b.meta(layer=self._name("max_pooling")):
            return self.b.max_pool(x, window=(pool,) * n, strides=(pool,) * n, pads=((0, 0),) * n)

    def avg_pool(self, x, pool):
        n = x.rank - 2
        with self.b.meta(layer=self._name("average_pooling")):
            return self.b.avg_pool(x, window=(pool,) * n, strides=(pool,) * n, pads=((0, 0),) * n)

    def dropout(self, x):
        with self.b.meta(layer=self._name("dropout")):
            return self.b.identity(x)

    def flatten(self, x):
        with self.b.meta(layer=self._name("flatten")):
            return self.b.reshape(x, shape=(None, int(np.prod(x.shape[1:]))))

    def done(self, y):
        self.b.output([y])
        return self.b.graph


def mnist_mlp(features=20, hidden=16):
    L = Layers("mnist_mlp", 1)
    x = L.b.input("x", (None, features))
    h = L.dropout(L.dense(x, hidden, "relu"))
    h = L.dropout(L.dense(h, hidden, "relu"))
    return L.done(L.dense(h, 10, "softmax"))


def mnist_cnn(side=10, filters=(4, 6), hidden=8):
    L = Layers("mnist_cnn", 2)
    x = L.b.input("x", (None, side, side, 1))
    h = L.conv(x, filters[0], 3, activation="relu")
    h = L.conv(h, filters[1], 3, activation="relu")
    h = L.flatten(L.dropout(L.max_pool(h, 2)))
    h = L.dropout(L.dense(h, hidden, "relu"))
    return L.done(L.dense(h, 10, "softmax"))


def cifar10_cnn(side=12, filters=(4, 6), hidden=8):
    L = Layers("cifar10_cnn", 3)
    x = L.b.input("x", (None, side, side, 3))
    h = x
    for f in filters:
        h = L.activation(L.conv(h, f, 3, padding="same"), "relu")
        h = L.activation(L.conv(h, f, 3), "relu")
        h = L.dropout(L.max_pool(h, 2))
    h = L.activation(L.dense(L.flatten(h), hidden), "relu")
    return L.done(L.activation(L.dense(L.dropout(h), 10), "softmax"))


def cifar10_resnet(side=8, base=4, blocks=1):
    """ResNet v1 (Keras's cifar10_resnet example), `blocks` residual blocks per stack
    (depth 6 * blocks + 2: one block, depth 8, by default; three for ResNet20)."""
    L = Layers("cifar10_resnet", 4)
    b = L.b

    def resnet_layer(v, filters, kernel=3, strides=1, activation="relu", batch_normalization=True):
        v = L.conv(v, filters, kernel, strides=strides, padding="same")
        if batch_normalization:
            v = L.batch_norm(v)
        return L.activation(v, activation)

    x = b.input("x", (None, side, side, 3))
    h = resnet_layer(x, base)
    filters = base
    for stack in range(3):
        for block in range(blocks):
            strides = 2 if stack > 0 and block == 0 else 1
            y = resnet_layer(h, filters, strides=strides)
            y = resnet_layer(y, filters, activation=None)
            if stack > 0 and block == 0:
                h = resnet_layer(h, filters, kernel=1, strides=strides, activation=None, batch_normalization=False)
            with b.meta(layer=L._name("add")):
                h = b.add(h, y)
            h = L.activation(h, "relu")
        filters *= 2
    h = L.flatten(L.avg_pool(h, side // 4))
    return L.done(L.dense(h, 10, "softmax"))


def pretrained_word_embeddings(length=40, vocab=50, dim=8, filters=8, pool=2, hidden=8, labels=4):
    """The 20 Newsgroups text CNN: frozen Embedding, Conv1D/MaxPooling1D, global max."""
    L = Layers("pretrained_word_embeddings", 5)
    b = L.b
    x = b.input("x", (None, length), "int32")
    with b.meta(layer="embedding"):
        h = b.gather(b.param(L.rng.normal(size=(vocab, dim)).astype(np.float32), "embedding/embeddings"), x)
    h = L.max_pool(L.conv(h, filters, 5, activation="relu"), pool)
    h = L.max_pool(L.conv(h, filters, 5, activation="relu"), pool)
    h = L.conv(h, filters, 5, activation="relu")
    with b.meta(layer="global_max_pooling1d"):
        h = b.reduce_max(h, axes=(1,), keepdims=False)
    h = L.dense(h, hidden, "relu")
    return L.done(L.dense(h, labels, "softmax"))


def antirectifier(features=20, hidden=12):
    """Dense layers with the seed's custom Antirectifier layer (as its traced ops)."""
    L = Layers("antirectifier", 6)
    b = L.b

    def antirectify(v):
        with b.meta(layer=L._name("antirectifier")):
            v = b.sub(v, b.reduce_mean(v, axes=(1,), keepdims=True))
            norm = b.rsqrt(b.maximum(b.reduce_sum(b.square(v), axes=(1,), keepdims=True), b.const(1e-12)))
            v = b.mul(v, norm)
            return b.concat(b.relu(v), b.relu(b.neg(v)), axis=1)

    x = b.input("x", (None, features))
    h = L.dropout(antirectify(L.dense(x, hidden)))
    h = L.dropout(antirectify(L.dense(h, hidden)))
    return L.done(L.activation(L.dense(h, 10), "softmax"))


def lstm_text():
    """Not a seed model: an Embedding, a stacked LSTM and GRU, a classifier (the RNN path)."""
    L = Layers("lstm_text", 7)
    b = L.b
    x = b.input("x", (None, 6), "int32")
    with b.meta(layer="embedding"):
        h = b.gather(b.param(L.rng.normal(size=(20, 4)).astype(np.float32), "embedding/embeddings"), x)

    def weights(features, units, gates, bias_shape):
        return (L.weight((features, gates * units), features, "kernel"), L.weight((units, gates * units), units, "rk"),
                b.param(L.rng.normal(size=bias_shape).astype(np.float32) * 0.1, "bias"))

    common = dict(activation="tanh", recurrent_activation="sigmoid", go_backwards=False, zero_output_for_mask=False,
                  has_mask=False, has_initial_state=False)
    with b.meta(layer="lstm"):
        h = b.lstm(h, *weights(4, 5, 4, (20,)), units=5, return_sequences=True, **common)[0]
    with b.meta(layer="gru"):
        h = b.gru(h, *weights(5, 4, 3, (2, 12)), units=4, return_sequences=False, reset_after=True, **common)[0]
    return L.done(L.dense(h, 3, "softmax"))


SEED_GRAPHS = {
    "mnist_mlp": mnist_mlp,
    "mnist_cnn": mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "cifar10_resnet": cifar10_resnet,
    "pretrained_word_embeddings": pretrained_word_embeddings,
    "antirectifier": antirectifier,
    "lstm_text": lstm_text,
}

def edge_graphs():
    """Cases the examples leave out: infinite constants, the dynamic dimension moved off
    axis 0 or scaled by a reshape (time folded into the batch), int64 indices, a reduction
    over a static tensor, a graph input returned as an output."""
    rng = np.random.default_rng(7)
    w = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    graphs = {}

    b = GraphBuilder("infinities")
    x = b.input("x", (None, 3, 4))
    padded = b.pad(x, pads=((0, 0), (1, 0), (0, 2)), value=float("-inf"))
    b.output([padded, b.clip(x, low=float("-inf"), high=0.5), b.reduce_max(padded, axes=(2,), keepdims=False)])
    graphs["infinities"] = b.graph

    b = GraphBuilder("moved_batch")
    x = b.input("x", (None, 3, 4))
    t = b.transpose(x, perm=(1, 0, 2))  # (3, ?, 4)
    y = b.mul(b.relu(t), b.param(w(4), "scale"))
    b.output([b.transpose(y, perm=(1, 0, 2)), b.reduce_sum(t, axes=(2,), keepdims=True), x])
    graphs["moved_batch"] = b.graph

    b = GraphBuilder("batch_factor")
    x = b.input("x", (None, 4, 5))
    rows = b.reshape(x, shape=(None, 5))  # (4 ?, 5)
    h = b.relu(b.add(b.matmul(rows, b.param(w(5, 3), "w")), b.param(w(3), "bias")))
    b.output([b.softmax(b.reshape(h, shape=(None, 4, 3)), axis=-1)])
    graphs["batch_factor"] = b.graph

    b = GraphBuilder("int64_and_static")
    ids = b.input("ids", (None, 3), "int64")
    rows = b.gather(b.param(w(6, 2), "table"), ids)
    total = b.reduce_sum(b.param(w(2, 3), "c"), axes=(0, 1), keepdims=False)
    b.output([b.add(rows, total)])
    graphs["int64_and_static"] = b.graph
    return graphs


# The seed models at their real sizes (as kcompile.zoo builds them in Keras). Those
# without convolutions are cheap enough for the simulator at batch 1; all of them are
# for a real GPU (cuda_sim_checks.py --gpu, cuda_gpu_bench.py).
FULL_SIZE = {
    "mnist_mlp": lambda: mnist_mlp(784, 512),
    "antirectifier": lambda: antirectifier(784, 256),
    "mnist_cnn": lambda: mnist_cnn(28, (32, 64), 128),
    "cifar10_cnn": lambda: cifar10_cnn(32, (32, 64), 512),
    "cifar10_resnet": lambda: cifar10_resnet(32, 16, 3),  # ResNet20 v1
    "pretrained_word_embeddings": lambda: pretrained_word_embeddings(1000, 20000, 100, 128, 5, 128, 20),
}
SIMULATED_FULL_SIZE = ("mnist_mlp", "antirectifier")


def sample_inputs(graph, batch: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    arrays = []
    for v in graph.inputs:
        shape = v.type.concrete(batch)
        if v.dtype.startswith("int"):
            arrays.append(rng.integers(0, 20, shape).astype(v.dtype))
        else:
            arrays.append(rng.normal(size=shape).astype(np.float32))
    return arrays
