"""`kcompile.compile(src, target="native")`: the CompiledModel API (predict, artifacts,
fit) with the model running in the native library."""
import numpy as np
import pytest

import kcompile
from kcompile import zoo
from kcompile.codegen.native import program as native_program
from support.keras_models import assert_close, keras3, keras_outputs, randomize
from support.no_tensorflow import run_without_tensorflow


@pytest.fixture(scope="module")
def cnn(tmp_path_factory, native_tmp):
    K = keras3()
    model = randomize(zoo.SEED_MODELS["mnist_cnn"](K), seed=5)
    path = str(tmp_path_factory.mktemp("cnn") / "cnn.keras")
    model.save(path)
    return model, path


def test_predict_matches_keras_at_any_batch(cnn):
    model, path = cnn
    compiled = kcompile.compile(path, target="native")
    assert compiled.target == "native"
    rng = np.random.default_rng(0)
    for batch in (1, 7, 40):
        x = rng.random((batch, 28, 28, 1), dtype=np.float32)
        (expected,) = keras_outputs(model, [x])
        assert_close(compiled.predict(x, batch_size=16, verbose=0), expected, f"native predict, batch {batch}")
        assert_close(compiled(x), expected, f"native __call__, batch {batch}")
    assert compiled.predict(np.zeros((0, 28, 28, 1), np.float32), verbose=0).shape == (0, 10)


def test_artifact_loads_its_library_without_rebuilding(cnn, tmp_path, monkeypatch):
    model, path = cnn
    compiled = kcompile.compile(path, target="native")

    def no_build(*args, **kwargs):
        raise AssertionError("the library was built again")

    # Saving copies the compiled model's library; loading uses the artifact's copy.
    monkeypatch.setattr(native_program, "build_library", no_build)
    compiled.save(str(tmp_path / "cnn.kc"))
    assert (tmp_path / "cnn.kc" / native_program.LIBRARY_NAME).exists()
    loaded = kcompile.load(str(tmp_path / "cnn.kc"))
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    expected = keras_outputs(model, [x])[0]
    assert_close(loaded.predict(x, verbose=0), expected, "loaded native artifact")

    # A process where TensorFlow and Keras cannot be imported loads it and predicts.
    np.save(tmp_path / "x.npy", x)
    run_without_tensorflow("""
        import numpy as np, kcompile
        from kcompile.codegen.native import program
        program.build_library = None  # loading must not build
        y = kcompile.load("cnn.kc").predict(np.load("x.npy"), verbose=0)
        np.save("y.npy", y)
    """, cwd=str(tmp_path))
    assert_close(np.load(tmp_path / "y.npy"), expected, "native artifact without TensorFlow")


def test_fit_updates_the_native_library(tmp_path):
    K = keras3()
    model = randomize(zoo.SEED_MODELS["mnist_mlp"](K), seed=6)
    path = str(tmp_path / "mlp.keras")
    model.save(path)
    compiled = kcompile.compile(path, target="native")
    rng = np.random.default_rng(2)
    x, y = rng.random((64, 784), dtype=np.float32), rng.integers(0, 10, 64)
    before = compiled.predict(x, verbose=0)
    compiled.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    compiled.fit(x, y, batch_size=32, epochs=1, verbose=0)
    after = compiled.predict(x, verbose=0)
    assert np.max(np.abs(after - before)) > 1e-4
    compiled.save(str(tmp_path / "trained.keras"))
    reloaded = K.models.load_model(str(tmp_path / "trained.keras"))
    assert_close(after, reloaded.predict(x, verbose=0), "trained native model vs Keras")
