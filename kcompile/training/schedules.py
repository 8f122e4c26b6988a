"""Learning-rate schedules with Keras 3's semantics (keras.optimizers.schedules).

A schedule maps the optimizer's step count (its `iterations` before the update) to a
learning rate. Arithmetic is float32, as Keras does it on a float32 initial rate, and
the result is returned as a Python float.

    lr = ExponentialDecay(0.01, decay_steps=100, decay_rate=0.9)
    lr(250)                              # 0.01 * 0.9 ** 2.5
    get_schedule(lr.serialize())         # back from a Keras-serialized dict
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import KcompileError
from .serialization import keras_serialized

F = np.float32


class LearningRateSchedule:
    """Base class: `__call__(step) -> float`, `get_config()`, `from_config()`."""

    keras_class = "LearningRateSchedule"
    # The constructor arguments, kept as attributes of the same names: get_config's keys.
    _config_keys: tuple = ()

    def __call__(self, step) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        if not self._config_keys:
            raise NotImplementedError
        return {key: getattr(self, key) for key in self._config_keys}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def serialize(self) -> dict:
        return keras_serialized("keras.optimizers.schedules", self)

    def __repr__(self):
        return f"<{self.keras_class} {self.get_config()}>"


def _check_steps(name, value):
    if value <= 0:
        raise KcompileError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class _RateDecay(LearningRateSchedule):
    """ExponentialDecay and InverseTimeDecay: the same arguments, and both decay with
    the progress step / decay_steps (floored with staircase)."""

    _config_keys = ("initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name")

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        _check_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _progress(self, step) -> np.float32:
        p = F(step) / F(self.decay_steps)
        return np.floor(p) if self.staircase else p


class ExponentialDecay(_RateDecay):
    """initial_learning_rate * decay_rate ** (step / decay_steps) (floored with staircase)."""

    keras_class = "ExponentialDecay"

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return float(F(self.initial_learning_rate) * np.power(F(self.decay_rate), self._progress(step)))


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <=
    boundaries[i], values[-1] after the last boundary."""

    keras_class = "PiecewiseConstantDecay"
    _config_keys = ("boundaries", "values", "name")

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise KcompileError(
                f"The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}.")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        result = F(0)
        if step <= self.boundaries[0]:
            result += F(self.values[0])
        if step > self.boundaries[-1]:
            result += F(self.values[-1])
        for low, high, value in zip(self.boundaries[:-1], self.boundaries[1:], self.values[1:-1]):
            if low < step <= high:
                result += F(value)
        return float(result)


class PolynomialDecay(LearningRateSchedule):
    keras_class = "PolynomialDecay"
    _config_keys = ("initial_learning_rate", "decay_steps", "end_learning_rate", "power", "cycle", "name")

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        _check_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step):
        initial, end = F(self.initial_learning_rate), F(self.end_learning_rate)
        step, decay_steps = F(step), F(self.decay_steps)
        if self.cycle:
            multiplier = F(1.0) if step == 0 else np.ceil(step / decay_steps)
            decay_steps = decay_steps * F(multiplier)
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        return float((initial - end) * np.power(F(1) - p, F(self.power)) + end)


class InverseTimeDecay(_RateDecay):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps) (floored with staircase)."""

    keras_class = "InverseTimeDecay"

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return float(F(self.initial_learning_rate) / (F(1) + F(self.decay_rate) * self._progress(step)))


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup from initial_learning_rate to warmup_target over
    warmup_steps, then cosine decay over decay_steps down to alpha times the peak."""

    keras_class = "CosineDecay"
    _config_keys = ("initial_learning_rate", "decay_steps", "alpha", "name", "warmup_target", "warmup_steps")

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        _check_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    def _decay(self, step, decay_steps, decay_from):
        fraction = step / decay_steps
        cosine = F(0.5) * (F(1.0) + np.cos(F(math.pi) * fraction))
        decayed = F(1 - self.alpha) * cosine + F(self.alpha)
        return decay_from * decayed

    def __call__(self, step):
        initial = F(self.initial_learning_rate)
        decay_steps = F(self.decay_steps)
        step = F(step)
        if self.warmup_target is None:
            return float(self._decay(min(step, decay_steps), decay_steps, initial))
        target, warmup_steps = F(self.warmup_target), F(self.warmup_steps)
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return float((target - initial) * (step / warmup_steps) + initial)
        return float(self._decay(step - warmup_steps, decay_steps, target))


class CosineDecayRestarts(LearningRateSchedule):
    keras_class = "CosineDecayRestarts"

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        _check_steps("first_decay_steps", first_decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step):
        alpha, t_mul, m_mul = F(self.alpha), F(self._t_mul), F(self._m_mul)
        fraction = F(step) / F(self.first_decay_steps)
        if t_mul == 1.0:
            i_restart = np.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = np.floor(np.log(F(1.0) - fraction * (F(1.0) - t_mul)) / np.log(t_mul))
            sum_r = (F(1.0) - np.power(t_mul, i_restart)) / (F(1.0) - t_mul)
            fraction = (fraction - sum_r) / np.power(t_mul, i_restart)
        m_fac = np.power(m_mul, i_restart)
        cosine = F(0.5) * m_fac * (F(1.0) + np.cos(F(math.pi) * fraction))
        return float(F(self.initial_learning_rate) * ((F(1) - alpha) * cosine + alpha))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


SCHEDULES = {cls.keras_class: cls for cls in (
    ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay, CosineDecayRestarts,
)}
SCHEDULES["PiecewiseConstant"] = PiecewiseConstantDecay  # tf-keras's registered name
SCHEDULES["SGDRDecay"] = CosineDecayRestarts


def get_schedule(identifier) -> LearningRateSchedule:
    """A kcompile schedule from a kcompile or Keras schedule instance or a serialized dict."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        class_name = identifier.get("class_name")
        if class_name not in SCHEDULES:
            raise KcompileError(f"unknown learning rate schedule {class_name!r}; kcompile knows {sorted(SCHEDULES)}")
        return SCHEDULES[class_name].from_config(dict(identifier.get("config", {})))
    class_name = type(identifier).__name__
    if class_name in SCHEDULES and hasattr(identifier, "get_config"):
        return SCHEDULES[class_name].from_config(dict(identifier.get_config()))
    raise KcompileError(f"cannot interpret {identifier!r} as a learning rate schedule")


__all__ = [
    "CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay", "LearningRateSchedule",
    "PiecewiseConstantDecay", "PolynomialDecay", "SCHEDULES", "get_schedule",
]
