"""Every layer in the catalog, as Sequential and functional models, saved as .keras,
Keras 3 .h5 and tf-keras .h5: the interpreter on kcompile's graph matches Keras."""
import pytest

import kcompile
from kcompile.ir import interpret
from support.keras_models import check_against_keras
from support.layer_cases import CASES


def interpreter(path):
    graph = kcompile.load_graph(path)
    return lambda inputs: interpret(graph, inputs)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer_matches_keras(case, tmp_path):
    check_against_keras(case, tmp_path, interpreter)
