"""The loader and interpreter work in a process where TensorFlow and Keras cannot be imported."""
import numpy as np

from kcompile import zoo
from support.keras_models import keras3, keras_outputs, randomize, tf_keras
from support.no_tensorflow import run_without_tensorflow


def test_load_and_interpret_without_tensorflow(tmp_path):
    models = {"cnn.keras": randomize(zoo.mnist_cnn(keras3())), "cnn.h5": randomize(zoo.mnist_cnn(keras3()), 1),
              "mlp_tfk.h5": randomize(zoo.mnist_mlp(tf_keras()), 2)}
    x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype(np.float32)
    for name, model in models.items():
        model.save(str(tmp_path / name))
        inputs = x if "cnn" in name else x.reshape(3, 784)
        np.save(tmp_path / f"{name}.x.npy", inputs)
        np.save(tmp_path / f"{name}.y.npy", keras_outputs(model, [inputs])[0])
    result = run_without_tensorflow(
        """
        import sys, numpy as np, kcompile
        from kcompile.ir import interpret
        for name in ["cnn.keras", "cnn.h5", "mlp_tfk.h5"]:
            graph = kcompile.load_graph(name)
            y = interpret(graph, np.load(name + ".x.npy"))[0]
            expected = np.load(name + ".y.npy")
            assert np.all(np.abs(y - expected) <= 1e-5 + 1e-4 * np.abs(expected)), name
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        print("ok")
        """,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "ok"


def test_import_kcompile_does_not_import_tensorflow():
    result = run_without_tensorflow("import kcompile, kcompile.cli, kcompile.report; print('ok')")
    assert result.stdout.strip() == "ok"
