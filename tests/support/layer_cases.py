"""The layer catalog the frontend (and every backend) is tested on.

A case builds its layers with either Keras 3 (`keras.layers`) or tf-keras
(`tf_keras.layers`), passed in as L; `k3` says which. Single-input cases are chains of
layers and are tested both as Sequential and as functional models; multi-input cases
give a function from input tensors to outputs (functional only).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


@dataclass
class Case:
    name: str
    shapes: list  # per input, without the batch dimension
    chain: Optional[Callable] = None  # (L, k3) -> [layers]
    graph: Optional[Callable] = None  # (L, k3, inputs) -> outputs
    tf_keras: bool = True  # also build and save with tf-keras
    keras3: bool = True
    dtypes: list = field(default_factory=list)  # per input; default float32
    inputs: Optional[Callable] = None  # (batch, rng) -> list of arrays
    marks: tuple = ()

    def __str__(self):
        return self.name


def one(layer_fn, shape, name, **kw):
    return Case(name, [shape], chain=lambda L, k3: [layer_fn(L, k3)], **kw)


def chain(layers_fn, shape, name, **kw):
    return Case(name, [shape], chain=layers_fn, **kw)


def masked_ints(high, steps):
    """Token ids with trailing zero padding, so mask_zero masks real steps."""

    def make(batch, rng):
        x = rng.integers(1, high, (batch, steps))
        for i in range(batch):
            x[i, rng.integers(1, steps + 1):] = 0
        return [x.astype(np.int32)]

    return make


def zeroed_steps(shape):
    def make(batch, rng):
        x = rng.normal(0, 1, (batch,) + shape).astype(np.float32)
        for i in range(batch):
            x[i, rng.integers(1, shape[0] + 1):] = 0.0
        return [x]

    return make


K3_ONLY = dict(tf_keras=False)
TFK_ONLY = dict(keras3=False)

ACTIVATIONS = [
    "relu", "relu6", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "tanh", "softmax", "log_softmax",
    "softplus", "softsign", "elu", "selu", "gelu", "silu", "swish", "mish", "exponential", "linear", "leaky_relu",
]
TF_KERAS_ACTIVATIONS = {
    "relu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus", "softsign", "elu", "selu", "gelu",
    "swish", "mish", "exponential", "linear",
}

CASES = [
    # -- core ------------------------------------------------------------------------
    one(lambda L, k3: L.Dense(5, activation="relu"), (8,), "dense"),
    one(lambda L, k3: L.Dense(3), (4, 6), "dense_3d"),
    one(lambda L, k3: L.Dense(4, use_bias=False, activation="tanh"), (8,), "dense_no_bias"),
    *[
        chain(lambda L, k3, a=a: [L.Dense(6), L.Activation(a)], (6,), f"activation_{a}",
              tf_keras=a in TF_KERAS_ACTIVATIONS)
        for a in ACTIVATIONS
    ],
    chain(lambda L, k3: [L.Dense(4), L.Dropout(0.5)], (8,), "dropout"),
    one(lambda L, k3: L.Flatten(), (3, 4, 2), "flatten"),
    one(lambda L, k3: L.Reshape((3, 4)), (12,), "reshape"),
    one(lambda L, k3: L.Reshape((-1, 2)), (3, 4), "reshape_infer"),
    one(lambda L, k3: L.Permute((2, 1, 3)), (3, 4, 2), "permute"),
    one(lambda L, k3: L.RepeatVector(3), (5,), "repeat_vector"),
    chain(lambda L, k3: [L.Dense(4), L.Identity()], (5,), "identity", **K3_ONLY),
    one(lambda L, k3: L.Rescaling(1 / 255.0, offset=-1.0), (4, 4, 3), "rescaling"),
    one(lambda L, k3: _adapted_normalization(L), (4,), "normalization"),
    one(lambda L, k3: L.Normalization(mean=[0.5, -1.0, 2.0], variance=[1.0, 4.0, 0.25]), (5, 3), "normalization_given"),
    one(lambda L, k3: L.Resizing(4, 5), (6, 8, 3), "resizing_bilinear"),
    one(lambda L, k3: L.Resizing(9, 12, interpolation="nearest"), (6, 8, 3), "resizing_nearest"),
    one(lambda L, k3: L.Resizing(4, 4, crop_to_aspect_ratio=True), (6, 8, 3), "resizing_crop"),
    one(lambda L, k3: L.CenterCrop(4, 5), (6, 8, 3), "center_crop"),
    one(lambda L, k3: L.Embedding(20, 4), (7,), "embedding", dtypes=["int32"]),
    chain(lambda L, k3: [L.Embedding(20, 4, mask_zero=True), L.LSTM(3)], (7,), "embedding_mask_lstm",
          dtypes=["int32"], inputs=masked_ints(20, 7)),
    chain(lambda L, k3: [L.Masking(0.0), L.SimpleRNN(3, return_sequences=True)], (5, 3), "masking_rnn",
          inputs=zeroed_steps((5, 3))),
    # -- convolution -------------------------------------------------------------------
    one(lambda L, k3: L.Conv1D(4, 3), (10, 3), "conv1d_valid"),
    one(lambda L, k3: L.Conv1D(4, 3, strides=2, padding="same", activation="relu"), (11, 3), "conv1d_same_stride"),
    one(lambda L, k3: L.Conv1D(4, 3, padding="causal", dilation_rate=2), (10, 3), "conv1d_causal_dilated"),
    one(lambda L, k3: L.Conv2D(5, 3, padding="same", strides=2), (9, 9, 3), "conv2d_same_stride"),
    one(lambda L, k3: L.Conv2D(4, (3, 2), dilation_rate=2), (9, 8, 2), "conv2d_dilated"),
    one(lambda L, k3: L.Conv2D(6, 3, groups=2, padding="same"), (6, 6, 4), "conv2d_groups"),
    one(lambda L, k3: L.Conv3D(3, 2, strides=(1, 2, 1)), (5, 5, 5, 2), "conv3d"),
    one(lambda L, k3: L.DepthwiseConv1D(3, depth_multiplier=2), (8, 3), "depthwise_conv1d"),
    one(lambda L, k3: L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"), (6, 6, 3),
        "depthwise_conv2d"),
    one(lambda L, k3: L.SeparableConv1D(4, 3, padding="same"), (8, 3), "separable_conv1d"),
    one(lambda L, k3: L.SeparableConv2D(4, 3, strides=2), (9, 9, 3), "separable_conv2d"),
    one(lambda L, k3: L.Conv1DTranspose(3, 3, strides=2), (5, 2), "conv1d_transpose"),
    one(lambda L, k3: L.Conv2DTranspose(3, 3, strides=2, padding="same"), (5, 5, 2), "conv2d_transpose_same"),
    one(lambda L, k3: L.Conv2DTranspose(3, (3, 2), strides=(2, 3), output_padding=(1, 2)), (4, 4, 2),
        "conv2d_transpose_output_padding"),
    one(lambda L, k3: L.Conv3DTranspose(2, 2, strides=2), (3, 3, 3, 2), "conv3d_transpose"),
    one(lambda L, k3: L.ZeroPadding1D((1, 2)), (5, 3), "zero_padding1d"),
    one(lambda L, k3: L.ZeroPadding2D(((1, 0), (2, 1))), (4, 4, 2), "zero_padding2d"),
    one(lambda L, k3: L.ZeroPadding3D(1), (3, 3, 3, 2), "zero_padding3d"),
    one(lambda L, k3: L.Cropping1D((1, 2)), (6, 3), "cropping1d"),
    one(lambda L, k3: L.Cropping2D(((1, 0), (2, 1))), (6, 6, 2), "cropping2d"),
    one(lambda L, k3: L.Cropping3D(1), (4, 4, 4, 2), "cropping3d"),
    one(lambda L, k3: L.UpSampling1D(3), (4, 2), "upsampling1d"),
    one(lambda L, k3: L.UpSampling2D((2, 3)), (3, 3, 2), "upsampling2d"),
    one(lambda L, k3: L.UpSampling2D(2, interpolation="bilinear"), (3, 4, 2), "upsampling2d_bilinear"),
    one(lambda L, k3: L.UpSampling3D(2), (2, 2, 2, 2), "upsampling3d"),
    chain(lambda L, k3: [L.Conv2D(4, 3, data_format="channels_first", padding="same"),
                         L.MaxPooling2D(2, data_format="channels_first"),
                         L.BatchNormalization(axis=1), L.Flatten(data_format="channels_first")],
          (3, 6, 6), "channels_first_cnn", **K3_ONLY),
    chain(lambda L, k3: [L.Conv1D(4, 3, data_format="channels_first"), L.GlobalAveragePooling1D(data_format="channels_first")],
          (3, 8), "channels_first_conv1d", **K3_ONLY),
    # -- pooling -----------------------------------------------------------------------
    one(lambda L, k3: L.MaxPooling1D(2), (7, 3), "max_pool1d"),
    one(lambda L, k3: L.AveragePooling1D(3, strides=2, padding="same"), (8, 3), "avg_pool1d_same"),
    one(lambda L, k3: L.MaxPooling2D((2, 3), padding="same"), (7, 7, 2), "max_pool2d_same"),
    one(lambda L, k3: L.AveragePooling2D(2, strides=1), (5, 5, 2), "avg_pool2d"),
    one(lambda L, k3: L.AveragePooling2D(3, strides=2, padding="same"), (6, 6, 2), "avg_pool2d_same"),
    one(lambda L, k3: L.MaxPooling3D(2), (4, 4, 4, 2), "max_pool3d"),
    one(lambda L, k3: L.AveragePooling3D(2, padding="same"), (3, 4, 5, 2), "avg_pool3d_same"),
    one(lambda L, k3: L.GlobalMaxPooling1D(), (6, 3), "global_max_pool1d"),
    one(lambda L, k3: L.GlobalAveragePooling1D(keepdims=True), (6, 3), "global_avg_pool1d_keepdims"),
    one(lambda L, k3: L.GlobalMaxPooling2D(keepdims=True), (4, 5, 3), "global_max_pool2d_keepdims"),
    one(lambda L, k3: L.GlobalAveragePooling2D(), (4, 5, 3), "global_avg_pool2d"),
    one(lambda L, k3: L.GlobalMaxPooling3D(), (3, 3, 3, 2), "global_max_pool3d"),
    one(lambda L, k3: L.GlobalAveragePooling3D(), (3, 3, 3, 2), "global_avg_pool3d"),
    chain(lambda L, k3: [L.Embedding(20, 4, mask_zero=True), L.GlobalAveragePooling1D()], (7,),
          "masked_global_avg_pool", dtypes=["int32"], inputs=masked_ints(20, 7)),
    # -- locally connected (tf-keras only) -------------------------------------------------
    one(lambda L, k3: L.LocallyConnected1D(3, 3, strides=2), (9, 2), "locally_connected1d", **TFK_ONLY),
    one(lambda L, k3: L.LocallyConnected1D(3, 2, implementation=2), (6, 2), "locally_connected1d_impl2", **TFK_ONLY),
    one(lambda L, k3: L.LocallyConnected2D(2, 2, activation="relu"), (4, 5, 2), "locally_connected2d", **TFK_ONLY),
    one(lambda L, k3: L.LocallyConnected2D(2, 2, strides=2, implementation=2), (4, 4, 2),
        "locally_connected2d_impl2", **TFK_ONLY),
    # -- recurrent ---------------------------------------------------------------------
    one(lambda L, k3: L.SimpleRNN(4), (5, 3), "simple_rnn"),
    one(lambda L, k3: L.SimpleRNN(4, return_sequences=True, go_backwards=True, activation="relu"), (5, 3),
        "simple_rnn_backwards"),
    one(lambda L, k3: L.LSTM(4), (5, 3), "lstm"),
    one(lambda L, k3: L.LSTM(4, return_sequences=True, go_backwards=True), (5, 3), "lstm_sequences_backwards"),
    one(lambda L, k3: L.LSTM(3, use_bias=False, recurrent_activation="hard_sigmoid"), (4, 2), "lstm_no_bias"),
    one(lambda L, k3: L.GRU(4), (5, 3), "gru"),
    one(lambda L, k3: L.GRU(4, reset_after=False, return_sequences=True), (5, 3), "gru_reset_before"),
    one(lambda L, k3: L.Bidirectional(L.LSTM(3, return_sequences=True)), (5, 2), "bidirectional_concat"),
    one(lambda L, k3: L.Bidirectional(L.GRU(3), merge_mode="sum"), (5, 2), "bidirectional_sum"),
    one(lambda L, k3: L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode="mul"), (5, 2),
        "bidirectional_mul"),
    one(lambda L, k3: L.Bidirectional(L.LSTM(3), merge_mode="ave"), (5, 2), "bidirectional_ave"),
    Case("bidirectional_none", [(5, 2)], graph=lambda L, k3, xs: L.Bidirectional(L.GRU(3), merge_mode=None)(xs[0])),
    chain(lambda L, k3: [L.Embedding(20, 4, mask_zero=True), L.Bidirectional(L.LSTM(3, return_sequences=True)),
                         L.LSTM(2)], (7,), "masked_bidirectional", dtypes=["int32"], inputs=masked_ints(20, 7)),
    Case("lstm_return_state", [(5, 3)], graph=lambda L, k3, xs: L.LSTM(4, return_state=True)(xs[0])),
    Case("gru_initial_state", [(5, 3), (4,)], graph=lambda L, k3, xs: L.GRU(4)(xs[0], initial_state=[xs[1]])),
    Case("lstm_initial_state", [(5, 3), (4,), (4,)],
         graph=lambda L, k3, xs: L.LSTM(4, return_sequences=True)(xs[0], initial_state=[xs[1], xs[2]])),
    one(lambda L, k3: L.RNN(L.LSTMCell(3)), (4, 2), "rnn_lstm_cell"),
    # -- merge ---------------------------------------------------------------------------
    *[
        Case(f"merge_{name.lower()}", [(4,), (4,)], graph=lambda L, k3, xs, name=name: getattr(L, name)()(xs))
        for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
    ],
    Case("merge_add3", [(2, 3), (2, 3), (2, 3)], graph=lambda L, k3, xs: L.Add()(xs)),
    Case("concatenate", [(3, 4), (3, 2)], graph=lambda L, k3, xs: L.Concatenate()(xs)),
    Case("concatenate_axis1", [(3, 4), (2, 4)], graph=lambda L, k3, xs: L.Concatenate(axis=1)(xs)),
    Case("dot", [(4,), (4,)], graph=lambda L, k3, xs: L.Dot(axes=1)(xs)),
    Case("dot_normalize_3d", [(3, 4), (5, 4)], graph=lambda L, k3, xs: L.Dot(axes=(2, 2), normalize=True)(xs)),
    Case("dot_3d_axes1", [(3, 4), (3, 2)], graph=lambda L, k3, xs: L.Dot(axes=1)(xs)),
    # -- advanced activations -----------------------------------------------------------------
    one(lambda L, k3: L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.3), (6,), "relu_layer"),
    one(lambda L, k3: L.ReLU(max_value=6.0), (6,), "relu_layer_max"),
    one(lambda L, k3: L.LeakyReLU(negative_slope=0.2) if k3 else L.LeakyReLU(alpha=0.2), (6,), "leaky_relu_layer"),
    one(lambda L, k3: L.PReLU(shared_axes=[1, 2]), (3, 4, 2), "prelu"),
    one(lambda L, k3: L.ELU(alpha=0.5), (6,), "elu_layer"),
    one(lambda L, k3: L.ThresholdedReLU(theta=0.5), (6,), "thresholded_relu", **TFK_ONLY),
    one(lambda L, k3: L.Softmax(axis=1), (3, 4), "softmax_layer"),
    # -- normalization -------------------------------------------------------------------------
    chain(lambda L, k3: [L.Dense(5), L.BatchNormalization()], (4,), "batch_norm"),
    chain(lambda L, k3: [L.Conv2D(4, 3), L.BatchNormalization(center=False, epsilon=0.01)], (6, 6, 2),
          "batch_norm_conv"),
    one(lambda L, k3: L.LayerNormalization(), (3, 6), "layer_norm"),
    one(lambda L, k3: L.LayerNormalization(axis=[1, 2], scale=False), (3, 4), "layer_norm_axes"),
    one(lambda L, k3: L.LayerNormalization(rms_scaling=True), (3, 6), "layer_norm_rms", **K3_ONLY),
    one(lambda L, k3: L.GroupNormalization(groups=2), (4, 4, 6), "group_norm"),
    one(lambda L, k3: L.UnitNormalization(), (5,), "unit_norm"),
    # -- noise and regularization ---------------------------------------------------------------
    *[
        one(lambda L, k3, name=name, arg=arg: getattr(L, name)(arg), shape, f"noise_{name.lower()}")
        for name, arg, shape in [
            ("GaussianNoise", 0.3, (5,)), ("GaussianDropout", 0.3, (5,)), ("AlphaDropout", 0.3, (5,)),
            ("SpatialDropout1D", 0.3, (4, 3)), ("SpatialDropout2D", 0.3, (3, 3, 2)),
            ("SpatialDropout3D", 0.3, (2, 2, 2, 2)), ("ActivityRegularization", 0.01, (5,)),
        ]
    ],
    # -- wrappers --------------------------------------------------------------------------------
    one(lambda L, k3: L.TimeDistributed(L.Dense(3, activation="relu")), (4, 5), "time_distributed_dense"),
    one(lambda L, k3: L.TimeDistributed(L.Conv2D(2, 3)), (3, 5, 5, 2), "time_distributed_conv"),
    # -- attention -----------------------------------------------------------------------------------
    Case("mha_self", [(5, 8)], graph=lambda L, k3, xs: L.MultiHeadAttention(2, 4)(xs[0], xs[0])),
    Case("mha_cross_key_mask", [(4, 6), (5, 6), (5, 3), (4, 5)],
         graph=lambda L, k3, xs: L.MultiHeadAttention(3, 2, value_dim=3, output_shape=7)(
             xs[0], xs[1], key=xs[2], attention_mask=xs[3]),
         inputs=lambda batch, rng: [rng.normal(0, 1, (batch, 4, 6)).astype(np.float32),
                                    rng.normal(0, 1, (batch, 5, 6)).astype(np.float32),
                                    rng.normal(0, 1, (batch, 5, 3)).astype(np.float32),
                                    (rng.random((batch, 4, 5)) > 0.3).astype(np.float32)]),
    Case("mha_causal_scores", [(5, 6)],
         graph=lambda L, k3, xs: L.MultiHeadAttention(2, 3)(xs[0], xs[0], use_causal_mask=True,
                                                             return_attention_scores=True), **K3_ONLY),
    Case("mha_masked_embedding", [(6,)], dtypes=["int32"], inputs=masked_ints(15, 6),
         graph=lambda L, k3, xs: (lambda e: L.MultiHeadAttention(2, 3)(e, e))(L.Embedding(15, 4, mask_zero=True)(xs[0]))),
    Case("attention_dot", [(4, 3), (5, 3)], graph=lambda L, k3, xs: L.Attention()(xs)),
    Case("attention_scaled_causal", [(4, 3), (4, 3), (4, 3)],
         graph=lambda L, k3, xs: L.Attention(use_scale=True)(xs, use_causal_mask=True)),
    Case("attention_concat", [(4, 3), (5, 3)], graph=lambda L, k3, xs: L.Attention(score_mode="concat", use_scale=True)(xs)),
    Case("attention_masked", [(6,), (5,)], dtypes=["int32", "int32"],
         inputs=lambda batch, rng: masked_ints(10, 6)(batch, rng) + masked_ints(10, 5)(batch, rng),
         graph=lambda L, k3, xs: (lambda e: L.Attention()([e(xs[0]), e(xs[1])]))(L.Embedding(10, 3, mask_zero=True))),
    Case("additive_attention", [(4, 3), (5, 3)], graph=lambda L, k3, xs: L.AdditiveAttention()(xs)),
]


def _adapted_normalization(L):
    layer = L.Normalization()
    layer.adapt(np.random.default_rng(5).normal(2.0, 3.0, (64, 4)).astype(np.float32))
    return layer


BY_NAME = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES), "duplicate case names"
