"""Keras builders for the seed's reference models (needs Keras; imported only on use).

These are the models the project is measured on, built as Keras's own examples build
them: mnist_mlp, mnist_cnn, cifar10_cnn, cifar10_resnet (ResNet20 v1 / v2),
pretrained_word_embeddings, antirectifier. `keras_module` may be `keras` (Keras 3,
the default) or `tf_keras`.
"""
from __future__ import annotations

import importlib


def _keras(keras_module=None):
    return keras_module or importlib.import_module("keras")


def mnist_mlp(keras_module=None, dropout: float = 0.2):
    K = _keras(keras_module)
    L = K.layers
    return K.Sequential(
        [
            K.Input((784,)),
            L.Dense(512, activation="relu"),
            L.Dropout(dropout),
            L.Dense(512, activation="relu"),
            L.Dropout(dropout),
            L.Dense(10, activation="softmax"),
        ],
        name="mnist_mlp",
    )


def mnist_cnn(keras_module=None, dropout: float = 0.25):
    K = _keras(keras_module)
    L = K.layers
    return K.Sequential(
        [
            K.Input((28, 28, 1)),
            L.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            L.Conv2D(64, (3, 3), activation="relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Dropout(dropout),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dropout(2 * dropout),
            L.Dense(10, activation="softmax"),
        ],
        name="mnist_cnn",
    )


def cifar10_cnn(keras_module=None, dropout: float = 0.25):
    K = _keras(keras_module)
    L = K.layers
    return K.Sequential(
        [
            K.Input((32, 32, 3)),
            L.Conv2D(32, (3, 3), padding="same"),
            L.Activation("relu"),
            L.Conv2D(32, (3, 3)),
            L.Activation("relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Dropout(dropout),
            L.Conv2D(64, (3, 3), padding="same"),
            L.Activation("relu"),
            L.Conv2D(64, (3, 3)),
            L.Activation("relu"),
            L.MaxPooling2D(pool_size=(2, 2)),
            L.Dropout(dropout),
            L.Flatten(),
            L.Dense(512),
            L.Activation("relu"),
            L.Dropout(2 * dropout),
            L.Dense(10),
            L.Activation("softmax"),
        ],
        name="cifar10_cnn",
    )


def _resnet_layer(K, inputs, num_filters=16, kernel_size=3, strides=1, activation="relu",
                  batch_normalization=True, conv_first=True):
    """Conv2D-BatchNorm-Activation stack, as in Keras's cifar10_resnet example."""
    L = K.layers
    conv = L.Conv2D(num_filters, kernel_size=kernel_size, strides=strides, padding="same",
                    kernel_initializer="he_normal", kernel_regularizer=K.regularizers.l2(1e-4))
    x = inputs
    if conv_first:
        x = conv(x)
        if batch_normalization:
            x = L.BatchNormalization()(x)
        if activation is not None:
            x = L.Activation(activation)(x)
    else:
        if batch_normalization:
            x = L.BatchNormalization()(x)
        if activation is not None:
            x = L.Activation(activation)(x)
        x = conv(x)
    return x


def cifar10_resnet_v1(keras_module=None, depth: int = 20, num_classes: int = 10):
    """ResNet v1 (ResNet20 at depth 20): stacks of 2 x (3 x 3) Conv2D-BN-ReLU."""
    K = _keras(keras_module)
    L = K.layers
    if (depth - 2) % 6 != 0:
        raise ValueError("depth should be 6n+2 (eg 20, 32, 44)")
    num_filters = 16
    num_res_blocks = (depth - 2) // 6
    inputs = K.Input(shape=(32, 32, 3))
    x = _resnet_layer(K, inputs)
    for stack in range(3):
        for res_block in range(num_res_blocks):
            strides = 2 if stack > 0 and res_block == 0 else 1
            y = _resnet_layer(K, x, num_filters=num_filters, strides=strides)
            y = _resnet_layer(K, y, num_filters=num_filters, activation=None)
            if stack > 0 and res_block == 0:
                x = _resnet_layer(K, x, num_filters=num_filters, kernel_size=1, strides=strides,
                                  activation=None, batch_normalization=False)
            x = L.add([x, y])
            x = L.Activation("relu")(x)
        num_filters *= 2
    x = L.AveragePooling2D(pool_size=8)(x)
    y = L.Flatten()(x)
    outputs = L.Dense(num_classes, activation="softmax", kernel_initializer="he_normal")(y)
    return K.Model(inputs=inputs, outputs=outputs, name=f"resnet{depth}_v1")


def cifar10_resnet_v2(keras_module=None, depth: int = 29, num_classes: int = 10):
    """ResNet v2 (pre-activation bottleneck blocks), depth 9n+2."""
    K = _keras(keras_module)
    L = K.layers
    if (depth - 2) % 9 != 0:
        raise ValueError("depth should be 9n+2 (eg 56 or 110)")
    num_filters_in = 16
    num_res_blocks = (depth - 2) // 9
    inputs = K.Input(shape=(32, 32, 3))
    x = _resnet_layer(K, inputs, num_filters=num_filters_in, conv_first=True)
    for stage in range(3):
        for res_block in range(num_res_blocks):
            activation, batch_normalization, strides = "relu", True, 1
            if stage == 0:
                num_filters_out = num_filters_in * 4
                if res_block == 0:
                    activation, batch_normalization = None, False
            else:
                num_filters_out = num_filters_in * 2
                if res_block == 0:
                    strides = 2
            y = _resnet_layer(K, x, num_filters=num_filters_in, kernel_size=1, strides=strides,
                              activation=activation, batch_normalization=batch_normalization, conv_first=False)
            y = _resnet_layer(K, y, num_filters=num_filters_in, conv_first=False)
            y = _resnet_layer(K, y, num_filters=num_filters_out, kernel_size=1, conv_first=False)
            if res_block == 0:
                x = _resnet_layer(K, x, num_filters=num_filters_out, kernel_size=1, strides=strides,
                                  activation=None, batch_normalization=False)
            x = L.add([x, y])
        num_filters_in = num_filters_out
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.AveragePooling2D(pool_size=8)(x)
    y = L.Flatten()(x)
    outputs = L.Dense(num_classes, activation="softmax", kernel_initializer="he_normal")(y)
    return K.Model(inputs=inputs, outputs=outputs, name=f"resnet{depth}_v2")


def pretrained_word_embeddings(keras_module=None, num_words: int = 20000, embedding_dim: int = 100,
                               sequence_length: int = 1000, num_labels: int = 20, embedding_matrix=None):
    """The 20 Newsgroups text CNN over a frozen (GloVe) Embedding."""
    K = _keras(keras_module)
    L = K.layers
    initializer = K.initializers.Constant(embedding_matrix) if embedding_matrix is not None else "uniform"
    inputs = K.Input(shape=(sequence_length,), dtype="int32")
    x = L.Embedding(num_words, embedding_dim, embeddings_initializer=initializer, trainable=False)(inputs)
    x = L.Conv1D(128, 5, activation="relu")(x)
    x = L.MaxPooling1D(5)(x)
    x = L.Conv1D(128, 5, activation="relu")(x)
    x = L.MaxPooling1D(5)(x)
    x = L.Conv1D(128, 5, activation="relu")(x)
    x = L.GlobalMaxPooling1D()(x)
    x = L.Dense(128, activation="relu")(x)
    outputs = L.Dense(num_labels, activation="softmax")(x)
    return K.Model(inputs, outputs, name="pretrained_word_embeddings")


def antirectifier_layer_class(keras_module=None):
    """The seed's custom layer: mean-centre, L2-normalize, concatenate relu(x) and relu(-x)."""
    K = _keras(keras_module)
    ops = getattr(K, "ops", None)

    class Antirectifier(K.layers.Layer):
        def compute_output_shape(self, input_shape):
            shape = list(input_shape)
            shape[-1] *= 2
            return tuple(shape)

        def call(self, inputs):
            if ops is not None:  # Keras 3
                x = inputs - ops.mean(inputs, axis=1, keepdims=True)
                x = ops.normalize(x, axis=1)
                return ops.concatenate([ops.relu(x), ops.relu(-x)], axis=1)
            import tensorflow as tf

            x = inputs - tf.reduce_mean(inputs, axis=1, keepdims=True)
            x = tf.math.l2_normalize(x, axis=1)
            return tf.concat([tf.nn.relu(x), tf.nn.relu(-x)], axis=1)

    return Antirectifier


def antirectifier_lowering(ctx, x):
    """The Antirectifier layer in IR primitives, for `kcompile.register_layer("Antirectifier")`:
    compiling it then needs no Keras and no TensorFlow (tracing the class needs both)."""
    b = ctx.b
    x = b.sub(x, b.reduce_mean(x, axes=(1,), keepdims=True))
    sum_sq = b.reduce_sum(b.square(x), axes=(1,), keepdims=True)
    x = b.mul(x, b.rsqrt(b.maximum(sum_sq, ctx.const(1e-12))))
    return b.concat(b.relu(x), b.relu(b.neg(x)), axis=1)


def antirectifier(keras_module=None, dropout: float = 0.1, layer_class=None):
    K = _keras(keras_module)
    L = K.layers
    Antirectifier = layer_class or antirectifier_layer_class(K)
    return K.Sequential(
        [
            K.Input((784,)),
            L.Dense(256),
            Antirectifier(),
            L.Dropout(dropout),
            L.Dense(256),
            Antirectifier(),
            L.Dropout(dropout),
            L.Dense(10),
            L.Activation("softmax"),
        ],
        name="antirectifier",
    )


SEED_MODELS = {
    "mnist_mlp": mnist_mlp,
    "mnist_cnn": mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "cifar10_resnet": cifar10_resnet_v1,
    "pretrained_word_embeddings": pretrained_word_embeddings,
    "antirectifier": antirectifier,
}
