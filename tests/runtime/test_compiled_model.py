"""CompiledModel: Keras's predict semantics, input checks, concurrency."""
import threading

import numpy as np
import pytest

import kcompile
from support.keras_models import assert_close, keras3, keras_outputs, randomize


@pytest.fixture(scope="module")
def two_in_two_out(tmp_path_factory):
    K = keras3()
    a, b = K.Input((6,), name="a"), K.Input((3, 2), name="b")
    h = K.layers.Concatenate()([a, K.layers.Flatten()(b)])
    model = randomize(K.Model([a, b], [K.layers.Dense(4, name="logits")(h), K.layers.Dense(1, name="score")(h)]))
    path = str(tmp_path_factory.mktemp("m") / "two.keras")
    model.save(path)
    return model, kcompile.compile(path)


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.normal(size=(n, 3, 2)).astype(np.float32)


def test_predict_matches_keras_in_batches_with_lists_and_dicts(two_in_two_out):
    model, compiled = two_in_two_out
    a, b = data(70)
    expected = keras_outputs(model, [a, b])
    for got in (compiled.predict([a, b], verbose=0), compiled.predict({"a": a, "b": b}, batch_size=16, verbose=0)):
        assert isinstance(got, list) and len(got) == 2
        for g, e in zip(got, expected):
            assert_close(g, e, "predict")
    assert compiled.output_names == ["logits", "score"] and compiled.input_names == ["a", "b"]


def test_call_and_predict_on_batch(two_in_two_out):
    model, compiled = two_in_two_out
    a, b = data(3, seed=1)
    for g, e in zip(compiled([a, b]), keras_outputs(model, [a, b])):
        assert_close(g, e, "__call__")
    assert_close(compiled.predict_on_batch([a, b])[1], keras_outputs(model, [a, b])[1], "predict_on_batch")


def test_progress_bar_when_verbose(two_in_two_out, capsys):
    _, compiled = two_in_two_out
    a, b = data(40)
    compiled.predict([a, b], batch_size=10, verbose=1)
    out = capsys.readouterr().out
    assert "4/4 [" in out and "step" in out


def test_input_errors_name_the_expected_shape(two_in_two_out):
    _, compiled = two_in_two_out
    a, b = data(4)
    with pytest.raises(kcompile.InputError, match=r"'b' expects shape \(None, 3, 2\)"):
        compiled([a, b.reshape(4, 6)])
    with pytest.raises(kcompile.InputError, match="takes 2 input"):
        compiled([a])
    with pytest.raises(kcompile.InputError, match="missing"):
        compiled({"a": a})
    with pytest.raises(kcompile.InputError, match="batch size"):
        compiled([a, b[:3]])
    with pytest.raises(kcompile.InputError, match="float32"):
        compiled([a.astype(str), b])


def test_concurrent_predict_calls_give_correct_results(two_in_two_out):
    model, compiled = two_in_two_out
    inputs = [data(n, seed=n) for n in (1, 5, 9, 33)]
    expected = [keras_outputs(model, list(x)) for x in inputs]
    errors = []

    def worker(k):
        try:
            for _ in range(20):
                got = compiled.predict(list(inputs[k % 4]), batch_size=8, verbose=0)
                for g, e in zip(got, expected[k % 4]):
                    assert_close(g, e, f"thread {k}")
        except Exception as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_summary_reports_kernels_and_arena(two_in_two_out, capsys):
    _, compiled = two_in_two_out
    compiled.summary()
    out = capsys.readouterr().out
    assert "logits" in out and "arena" in out and "Total params" in out
