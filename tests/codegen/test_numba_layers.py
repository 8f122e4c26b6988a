"""Every layer case compiles with the Numba CPU backend and matches Keras."""
import pytest

import kcompile
from support.keras_models import assert_close, case_inputs, keras3, keras_outputs, randomize, build_case, tf_keras
from support.layer_cases import CASES


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer_compiles_and_matches_keras(case, tmp_path):
    K, k3 = (keras3(), True) if case.keras3 else (tf_keras(), False)
    model = randomize(build_case(case, K, k3, "functional"), seed=len(case.name))
    path = str(tmp_path / ("model.keras" if k3 else "model.h5"))
    model.save(path)
    compiled = kcompile.compile(path)
    for batch in (1, 7):
        inputs = case_inputs(case, model, batch, seed=batch)
        expected = keras_outputs(model, inputs)
        got = compiled(inputs)
        got = got if isinstance(got, list) else [got]
        assert len(got) == len(expected)
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_close(g, e, f"{case.name} batch {batch} output {i}")
