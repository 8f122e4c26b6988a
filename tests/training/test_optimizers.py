"""kcompile.training.optimizers/schedules against keras.optimizers applied to
keras.Variables (TensorFlow backend): updates, state, configs and identifiers."""
import numpy as np
import pytest

from kcompile.errors import KcompileError
from kcompile.training import optimizers as O
from kcompile.training import schedules as S
from kcompile.training.optimizers import get_optimizer

keras = pytest.importorskip("keras")
schedules = keras.optimizers.schedules

SHAPES = [(3, 4), (4,), (2, 2, 3)]


def random_params(rng):
    return [rng.normal(size=s).astype(np.float32) for s in SHAPES]


def random_grads(rng, step):
    scale = 3.0 if step % 2 else 0.3
    return [(rng.normal(size=s) * scale).astype(np.float32) for s in SHAPES]


def run_both(keras_opt, opt, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    params = random_params(rng)
    variables = [keras.Variable(p.copy()) for p in params]
    originals = [p for p in params]
    for step in range(steps):
        grads = random_grads(rng, step)
        keras_opt.apply(grads, variables)
        opt.apply(params, grads)
    assert all(p is q for p, q in zip(params, originals))
    return params, [v.numpy() for v in variables]


CASES = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True, "rho": 0.8}),
    ("Adam", {}), ("Adam", {"amsgrad": True, "clipnorm": 1.0, "beta_1": 0.8}),
    ("AdamW", {}), ("AdamW", {"weight_decay": 0.1, "amsgrad": True}),
    ("Adagrad", {"clipvalue": 0.5}), ("Adagrad", {"initial_accumulator_value": 0.5, "epsilon": 1e-3}),
    ("Adadelta", {"learning_rate": 1.0}), ("Adadelta", {"rho": 0.5, "weight_decay": 0.05}),
    ("Adamax", {"global_clipnorm": 2.0}), ("Adamax", {}),
    ("Nadam", {}), ("Nadam", {"weight_decay": 0.1, "learning_rate": 0.01}),
    ("Adam", {"learning_rate": schedules.ExponentialDecay(0.01, 2, 0.5)}),
    ("Adam", {"learning_rate": schedules.ExponentialDecay(0.01, 2, 0.5, staircase=True)}),
    ("SGD", {"learning_rate": schedules.CosineDecay(0.1, 4, warmup_target=0.2, warmup_steps=2), "momentum": 0.3}),
    ("RMSprop", {"learning_rate": schedules.CosineDecay(0.01, 3, alpha=0.1)}),
    ("SGD", {"learning_rate": schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01])}),
    ("AdamW", {"learning_rate": schedules.PiecewiseConstantDecay([2], [0.01, 0.001])}),
    ("Adam", {"use_ema": True, "ema_overwrite_frequency": 2}),
    ("Adam", {"gradient_accumulation_steps": 2}),
    ("SGD", {"loss_scale_factor": 4.0, "momentum": 0.5}),
]


@pytest.mark.parametrize("name, config", CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_updates_match_keras(name, config):
    keras_opt = getattr(keras.optimizers, name)(**config)
    opt = get_optimizer(keras_opt)
    assert type(opt).__name__ == name
    ours, theirs = run_both(keras_opt, opt)
    for p, v in zip(ours, theirs):
        np.testing.assert_allclose(p, v, rtol=1e-6, atol=1e-7)
    assert opt.iterations == int(keras_opt.iterations)
    np.testing.assert_allclose(opt.learning_rate, float(keras_opt.learning_rate), rtol=1e-7)
    assert opt.current_learning_rate() == opt.learning_rate
    # Keras's variable list: same count, shapes and dtypes (in order), same values
    ours_vars, theirs_vars = opt.variables(), keras_opt.variables
    assert [np.shape(v) for v in ours_vars] == [tuple(v.shape) for v in theirs_vars]
    assert [np.asarray(v).dtype.name for v in ours_vars] == [v.dtype for v in theirs_vars]
    for a, b in zip(ours_vars, theirs_vars):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b.numpy(), np.float64), rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize("name, config", [("Adam", {}), ("Nadam", {}), ("RMSprop", {"centered": True,
                                                                                       "momentum": 0.9}),
                                          ("SGD", {"momentum": 0.9, "learning_rate": 0.05}), ("Adagrad", {})])
def test_state_round_trip(name, config):
    rng = np.random.default_rng(3)
    grads = [random_grads(rng, i) for i in range(5)]
    straight = get_optimizer({"class_name": name, "config": config})
    params = random_params(np.random.default_rng(9))
    for g in grads:
        straight.apply(params, g)
    first = get_optimizer({"class_name": name, "config": config})
    resumed_params = random_params(np.random.default_rng(9))
    for g in grads[:3]:
        first.apply(resumed_params, g)
    state = first.get_state()
    second = get_optimizer({"class_name": name, "config": first.get_config()})
    second.set_state(state)
    assert second.iterations == 3
    for g in grads[3:]:
        second.apply(resumed_params, g)
    for a, b in zip(params, resumed_params):
        np.testing.assert_array_equal(a, b)
    # set_weights with variables() order, as Keras's save/load of optimizer variables
    third = get_optimizer({"class_name": name, "config": config})
    third.build(params)
    third.set_weights(second.get_weights())
    for a, b in zip(third.variables(), second.variables()):
        np.testing.assert_array_equal(a, b)


def test_updates_land_in_the_callers_arrays():
    buffer = np.zeros(20, np.float32)
    weight, bias = buffer[:12].reshape(3, 4), buffer[12:16]
    opt = O.SGD(learning_rate=0.5)
    opt.apply([weight, bias], [np.ones((3, 4), np.float32), np.ones(4, np.float32)])
    np.testing.assert_array_equal(buffer[:16], -0.5)
    np.testing.assert_array_equal(buffer[16:], 0.0)
    opt.apply([weight, bias], [None, np.ones(4, np.float32)])  # a None gradient: untouched
    np.testing.assert_array_equal(weight, -0.5)
    np.testing.assert_array_equal(bias, -1.0)
    with pytest.raises(KcompileError):
        opt.apply([np.zeros((4, 3), np.float32).T, bias], [np.ones((3, 4), np.float32), np.ones(4, np.float32)])
    with pytest.raises(KcompileError):
        O.SGD().apply([np.zeros(3)], [np.zeros(3)])  # float64


def test_learning_rate_property():
    opt = O.Adam(learning_rate=0.01)
    assert opt.learning_rate == float(np.float32(0.01))
    opt.learning_rate = 0.1
    assert opt.learning_rate == float(np.float32(0.1)) and opt.get_config()["learning_rate"] == opt.learning_rate
    scheduled = O.SGD(learning_rate=S.ExponentialDecay(0.1, 10, 0.5))
    assert scheduled.learning_rate == pytest.approx(0.1) and scheduled.learning_rate_schedule is not None
    scheduled.iterations = 10
    assert scheduled.current_learning_rate() == pytest.approx(0.05)
    with pytest.raises(TypeError):
        scheduled.learning_rate = 0.3
    with pytest.raises(KcompileError):
        O.SGD(clipnorm=1.0, clipvalue=1.0)


def test_get_optimizer_identifiers_and_configs():
    for name in ("sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "adamax", "nadam", "Adam", "SGD"):
        opt = get_optimizer(name)
        theirs = keras.optimizers.get(name)
        ours_config, theirs_config = opt.get_config(), theirs.get_config()
        ours_config.pop("name"), theirs_config.pop("name")
        assert ours_config == theirs_config, name
    # Keras 3 compile config with a serialized schedule
    keras_opt = keras.optimizers.Adam(schedules.ExponentialDecay(0.01, 10, 0.9), beta_1=0.8)
    serialized = keras.saving.serialize_keras_object(keras_opt)
    opt = get_optimizer(serialized)
    assert isinstance(opt.learning_rate_schedule, S.ExponentialDecay) and opt.beta_1 == 0.8
    assert opt.get_config()["learning_rate"] == serialized["config"]["learning_rate"]
    # tf-keras training_config optimizer entries
    tf_keras = {"class_name": "Custom>Adam", "config": {
        "name": "Adam", "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None, "jit_compile": False,
        "is_legacy_optimizer": False, "learning_rate": 0.009999999776482582, "beta_1": 0.9, "beta_2": 0.999,
        "epsilon": 1e-07, "amsgrad": False}}
    opt = get_optimizer(tf_keras)
    assert isinstance(opt, O.Adam) and opt.learning_rate == pytest.approx(0.01)
    legacy = {"class_name": "RMSprop", "config": {"name": "RMSprop", "learning_rate": 0.01, "decay": 0.0,
                                                  "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": False}}
    assert isinstance(get_optimizer(legacy), O.RMSprop)
    old = {"class_name": "SGD", "config": {"lr": 0.1, "momentum": 0.9, "decay": 0.0, "nesterov": True}}
    opt = get_optimizer(old)
    assert opt.learning_rate == pytest.approx(0.1) and opt.nesterov
    assert get_optimizer(opt) is opt
    assert opt.serialize()["class_name"] == "SGD"
    with pytest.raises(KcompileError):
        get_optimizer("ftrl_not_here")
    with pytest.raises(KcompileError):
        get_optimizer({"class_name": "Adam", "config": {"no_such_argument": 1}})


@pytest.mark.parametrize("ours, theirs", [
    (S.ExponentialDecay(0.1, 7, 0.8), schedules.ExponentialDecay(0.1, 7, 0.8)),
    (S.ExponentialDecay(0.1, 7, 0.8, staircase=True), schedules.ExponentialDecay(0.1, 7, 0.8, staircase=True)),
    (S.PiecewiseConstantDecay([3, 9], [1.0, 0.5, 0.1]), schedules.PiecewiseConstantDecay([3, 9], [1.0, 0.5, 0.1])),
    (S.CosineDecay(0.1, 20, alpha=0.05), schedules.CosineDecay(0.1, 20, alpha=0.05)),
    (S.CosineDecay(0.0, 20, warmup_target=0.1, warmup_steps=5),
     schedules.CosineDecay(0.0, 20, warmup_target=0.1, warmup_steps=5)),
    (S.PolynomialDecay(0.1, 10, power=2.0, cycle=True), schedules.PolynomialDecay(0.1, 10, power=2.0, cycle=True)),
    (S.InverseTimeDecay(0.1, 5, 0.5), schedules.InverseTimeDecay(0.1, 5, 0.5)),
    (S.CosineDecayRestarts(0.1, 5), schedules.CosineDecayRestarts(0.1, 5)),
])
def test_schedules_match_keras(ours, theirs):
    for step in (0, 1, 3, 4, 5, 9, 10, 17, 30, 100):
        assert ours(step) == pytest.approx(float(theirs(step)), rel=1e-6, abs=1e-9), step
    assert ours.get_config() == theirs.get_config()
    converted = S.get_schedule(keras.saving.serialize_keras_object(theirs))
    assert type(converted) is type(ours) and converted.get_config() == ours.get_config()
    assert S.get_schedule(theirs).get_config() == ours.get_config()


@pytest.mark.parametrize("name, config", [("SGD", {"momentum": 0.9}), ("RMSprop", {"momentum": 0.5, "centered": True}),
                                          ("Adam", {}), ("Adadelta", {}), ("Adamax", {}), ("Nadam", {})])
def test_decaying_moments_flush_to_zero_instead_of_going_subnormal(name, config):
    """A gradient that stops (a dead unit's) leaves moments that decay toward 0; as on
    TensorFlow's flush-to-zero CPU threads, they reach 0 instead of subnormal values."""
    opt = get_optimizer({"class_name": name, "config": config})
    param = np.ones(64, np.float32)
    opt.apply([param], [np.full(64, 1e-17, np.float32)])
    zero = np.zeros(64, np.float32)

    def moments(opt):  # the per-parameter slots (Nadam's scalar momentum product is not one)
        return [np.asarray(v) for v in opt.variables() if np.shape(v) == param.shape]

    for _ in range(900):
        opt.apply([param], [zero])
        for slot in moments(opt):
            assert not np.any((slot != 0) & (np.abs(slot) < np.finfo(np.float32).tiny)), slot
    assert np.all(np.isfinite(param))
    assert any(np.any(slot == 0) for slot in moments(opt))
