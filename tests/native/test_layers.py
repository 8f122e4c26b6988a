"""Keras layer cases (tests/support/layer_cases.py) as native libraries match Keras.

A representative subset runs by default (fused epilogues of every kind, grouped and
depthwise convolutions, transposed convolutions, pooling with padding, masking,
recurrent layers, attention, normalization); KCOMPILE_NATIVE_ALL_LAYERS=1 runs all of
them (about 2 minutes)."""
import os

import pytest

import kcompile
from kcompile.codegen.native import NativeLibrary, build_library
from support.keras_models import assert_close, build_case, case_inputs, keras3, keras_outputs, randomize, tf_keras
from support.layer_cases import CASES

SUBSET = {
    "dense_3d", "activation_gelu", "activation_hard_swish", "resizing_bilinear", "embedding_mask_lstm",
    "conv1d_causal_dilated", "conv2d_groups", "depthwise_conv2d", "separable_conv1d", "conv2d_transpose_output_padding",
    "conv3d_transpose", "avg_pool2d_same", "max_pool3d", "masked_global_avg_pool", "locally_connected2d",
    "gru_reset_before", "masked_bidirectional", "lstm_initial_state", "dot_normalize_3d", "layer_norm",
    "group_norm", "mha_cross_key_mask", "attention_scaled_causal", "channels_first_cnn", "time_distributed_conv",
}
SELECTED = CASES if os.environ.get("KCOMPILE_NATIVE_ALL_LAYERS") == "1" else [c for c in CASES if c.name in SUBSET]


def test_subset_names_exist():
    assert SUBSET <= {c.name for c in CASES}


@pytest.mark.parametrize("case", SELECTED, ids=str)
def test_layer_case_matches_keras(case, tmp_path):
    K, k3 = (keras3(), True) if case.keras3 else (tf_keras(), False)
    model = randomize(build_case(case, K, k3, "functional"), seed=len(case.name))
    path = str(tmp_path / ("model.keras" if k3 else "model.h5"))
    model.save(path)
    library = str(tmp_path / "libcase.so")
    build_library(kcompile.load_graph(path), library)
    with NativeLibrary(library, num_threads=2) as lib:
        for batch in (1, 7):
            inputs = case_inputs(case, model, batch, seed=batch)
            expected = keras_outputs(model, inputs)
            got = lib(inputs)
            assert len(got) == len(expected)
            for i, (g, e) in enumerate(zip(got, expected)):
                assert_close(g, e, f"{case.name} batch {batch} output {i}")
