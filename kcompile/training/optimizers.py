"""Keras 3's optimizers over NumPy float32 parameters, updated in place.

    opt = get_optimizer("adam")              # or a dict, a kcompile or Keras optimizer
    opt.apply(params, grads)                 # params: float32 arrays, changed in place
    opt.iterations                           # 1
    opt.learning_rate = 1e-4                 # a float (settable unless it is a schedule)

Each algorithm is one small parallel @njit kernel over flat arrays; its slots
(moments) are created on the first `apply`, one set per parameter, in Keras's order.
The update formulas, their float32 arithmetic and their order follow
keras/src/optimizers/*.py: clipping (clipnorm, global_clipnorm or clipvalue), then
weight decay (p -= p * weight_decay * lr, for every optimizer that has weight_decay),
then the update with the learning rate of the current step (a schedule is evaluated at
`iterations` before the increment), then EMA, then `iterations += 1`.

`variables()` lists the state in Keras's order (iteration, learning_rate when it is a
float, then the slots as Keras creates them), so it can be written where Keras keeps an
optimizer's variables; `get_state()`/`set_state()` round-trip the same as a dict.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from numba import njit, prange

from ..codegen.numba_cpu.threads import configure_threading
from ..errors import KcompileError
from .schedules import LearningRateSchedule, get_schedule
from .serialization import keras_serialized

F = np.float32
_SMALLEST_NORMAL = F(np.finfo(np.float32).tiny)

# -- kernels: one per algorithm, float32 throughout (all scalars are passed as float32) --------------------


@njit(inline="always")
def _flushed(x):
    """x, or 0 where it is subnormal. A moment that decays (a parameter whose gradient
    stays 0, such as a dead unit's) would otherwise go subnormal after about 800 steps,
    and subnormal arithmetic doubled the update's time (Adam, mnist_mlp). TensorFlow
    flushes subnormals to zero on its CPU threads, so Keras's moments hold 0 there too."""
    return x if abs(x) >= _SMALLEST_NORMAL else F(0)


@njit(cache=True, parallel=True)
def _sgd_kernel(p, g, m, lr, momentum, use_momentum, nesterov):
    for i in prange(p.size):
        if use_momentum:
            m[i] = _flushed(m[i] * momentum - g[i] * lr)
            if nesterov:
                p[i] += m[i] * momentum - g[i] * lr
            else:
                p[i] += m[i]
        else:
            p[i] -= g[i] * lr


@njit(cache=True, parallel=True)
def _rmsprop_kernel(p, g, v, m, avg, lr, rho, one_minus_rho, momentum, eps, use_momentum, centered):
    for i in prange(p.size):
        v[i] = _flushed(rho * v[i] + one_minus_rho * (g[i] * g[i]))
        if centered:
            avg[i] = _flushed(rho * avg[i] + one_minus_rho * g[i])
            denominator = v[i] - avg[i] * avg[i] + eps
        else:
            denominator = v[i] + eps
        increment = (lr * g[i]) / np.sqrt(denominator)
        if use_momentum:
            m[i] = _flushed(momentum * m[i] + increment)
            p[i] -= m[i]
        else:
            p[i] -= increment


@njit(cache=True, parallel=True)
def _adam_kernel(p, g, m, v, vhat, alpha, one_minus_beta_1, one_minus_beta_2, eps, amsgrad):
    for i in prange(p.size):
        m[i] = _flushed(m[i] + (g[i] - m[i]) * one_minus_beta_1)
        v[i] = _flushed(v[i] + (g[i] * g[i] - v[i]) * one_minus_beta_2)
        if amsgrad:
            vhat[i] = max(vhat[i], v[i])
            denom = np.sqrt(vhat[i]) + eps
        else:
            denom = np.sqrt(v[i]) + eps
        p[i] -= (m[i] * alpha) / denom


@njit(cache=True, parallel=True)
def _adagrad_kernel(p, g, acc, lr, eps):
    for i in prange(p.size):
        acc[i] += g[i] * g[i]
        p[i] -= (lr * g[i]) / np.sqrt(acc[i] + eps)


@njit(cache=True, parallel=True)
def _adadelta_kernel(p, g, acc_grad, acc_delta, lr, rho, one_minus_rho, eps):
    for i in prange(p.size):
        acc_grad[i] = _flushed(rho * acc_grad[i] + one_minus_rho * (g[i] * g[i]))
        delta = -((np.sqrt(acc_delta[i] + eps) * g[i]) / np.sqrt(acc_grad[i] + eps))
        acc_delta[i] = _flushed(rho * acc_delta[i] + one_minus_rho * (delta * delta))
        p[i] += lr * delta


@njit(cache=True, parallel=True)
def _adamax_kernel(p, g, m, u, lr, one_minus_beta_1, beta_2, one_minus_beta_1_power, eps):
    for i in prange(p.size):
        m[i] = _flushed(m[i] + (g[i] - m[i]) * one_minus_beta_1)
        u[i] = _flushed(max(beta_2 * u[i], abs(g[i])))
        p[i] -= (lr * m[i]) / (one_minus_beta_1_power * (u[i] + eps))


@njit(cache=True, parallel=True)
def _nadam_kernel(p, g, m, v, lr, one_minus_beta_1, one_minus_beta_2, u_t_1, one_minus_u_product_t_1,
                  one_minus_u_t, one_minus_u_product_t, one_minus_beta_2_power, eps):
    for i in prange(p.size):
        m[i] = _flushed(m[i] + (g[i] - m[i]) * one_minus_beta_1)
        v[i] = _flushed(v[i] + (g[i] * g[i] - v[i]) * one_minus_beta_2)
        m_hat = (u_t_1 * m[i]) / one_minus_u_product_t_1 + (one_minus_u_t * g[i]) / one_minus_u_product_t
        v_hat = v[i] / one_minus_beta_2_power
        p[i] -= (m_hat * lr) / (np.sqrt(v_hat) + eps)


@njit(cache=True, parallel=True)
def _weight_decay_kernel(p, wd, lr):
    for i in prange(p.size):
        p[i] -= p[i] * wd * lr


@njit(cache=True, parallel=True)
def _ema_kernel(average, p, momentum, one_minus_momentum):
    for i in prange(p.size):
        average[i] = momentum * average[i] + one_minus_momentum * p[i]


_EMPTY = np.zeros(0, dtype=np.float32)


def _flat(array: np.ndarray) -> np.ndarray:
    """A flat view sharing memory (the update must land in the caller's array)."""
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        raise KcompileError(f"optimizer parameters must be float32 NumPy arrays, got {type(array).__name__} "
                            f"{getattr(array, 'dtype', '')}")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise KcompileError("optimizer parameters must be writeable C-contiguous arrays (updated in place)")
    return array.reshape(-1)


def _grad(g) -> np.ndarray:
    return np.ascontiguousarray(g, dtype=np.float32).reshape(-1)


# -- the base class -------------------------------------------------------------------------------------------


class Optimizer:
    """Keras 3's BaseOptimizer semantics; subclasses define `_slot_groups`, `_scalars` and `_update`."""

    keras_class = "Optimizer"
    # A subclass's own constructor arguments, kept as attributes of the same names:
    # get_config adds them after the base keys.
    _hyperparameters: tuple = ()

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        decay = kwargs.pop("decay", None)
        if decay:  # Keras 3 ignores it too
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=2)
        if kwargs:
            raise KcompileError(f"{self.keras_class}: argument(s) not recognized: {kwargs}")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise KcompileError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        if gradient_accumulation_steps and gradient_accumulation_steps < 2:
            raise KcompileError("`gradient_accumulation_steps` must be an integer >= 2. Received: "
                                f"gradient_accumulation_steps={gradient_accumulation_steps}")
        if use_ema and not 0 <= ema_momentum <= 1:
            raise KcompileError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
        self.name = name or _snake(self.keras_class)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self._iterations = 0
        self._lr_value = None  # float32 when the learning rate is a plain value
        self._lr_schedule = None  # a LearningRateSchedule or a zero-argument callable
        self._set_learning_rate(learning_rate, initial=True)
        self.built = False
        self._slots: dict = {}  # slot name -> list of flat float32 arrays (one per param)
        self._averages: list = []  # EMA of the params
        self._accumulators: list = []  # gradient accumulation
        self._shapes: list = []
        self._exclude_names = None
        self._param_names = None

    # -- learning rate --------------------------------------------------------------------------------
    def _set_learning_rate(self, value, initial=False):
        if isinstance(value, dict):
            value = get_schedule(value)
        elif type(value).__name__ in ("ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay",
                                      "PolynomialDecay", "InverseTimeDecay", "CosineDecayRestarts") \
                and not isinstance(value, LearningRateSchedule):
            value = get_schedule(value)  # a keras.optimizers.schedules object
        if isinstance(value, LearningRateSchedule) or (callable(value) and not isinstance(value, (int, float))):
            self._lr_schedule, self._lr_value = value, None
            return
        if self._lr_schedule is not None and not initial:
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not settable. If you "
                            "need the learning rate to be settable, you should instantiate the optimizer with a "
                            "float `learning_rate` argument.")
        try:
            self._lr_value = F(float(np.asarray(value)))
        except (TypeError, ValueError):
            raise KcompileError(f"Argument `learning_rate` should be float, or an instance of LearningRateSchedule, "
                                f"or a callable. Received instead: learning_rate={value!r}") from None

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (a schedule's value at `iterations`)."""
        return self.current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_learning_rate(value)

    @property
    def learning_rate_schedule(self):
        """The schedule (or callable) behind the learning rate; None for a plain value."""
        return self._lr_schedule

    def _current_lr32(self) -> np.float32:
        if self._lr_schedule is None:
            return self._lr_value
        if isinstance(self._lr_schedule, LearningRateSchedule):
            return F(self._lr_schedule(self._iterations))
        return F(float(np.asarray(self._lr_schedule())))

    def current_learning_rate(self) -> float:
        return float(self._current_lr32())

    @property
    def iterations(self) -> int:
        """Updates applied so far (apply() calls; divided by gradient_accumulation_steps
        when accumulating, as Keras's `iterations` property)."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations = int(value)

    # -- slots -----------------------------------------------------------------------------------------
    def _slot_groups(self) -> list:
        """Slot names in Keras's creation order: each tuple is one add_optimizer_variables
        call (its names interleaved per parameter)."""
        return []

    def _slot_initial(self, name: str) -> float:
        return 0.0

    def build(self, params, names=None):
        """Create the slots for these parameters (done by the first apply)."""
        self._shapes = [tuple(np.shape(p)) for p in params]
        self._param_names = list(names) if names is not None else None
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self._shapes]
        if self.use_ema:
            self._averages = [np.array(_flat(p), dtype=np.float32) for p in params]
        if self.gradient_accumulation_steps:
            self._accumulators = [np.zeros(n, np.float32) for n in sizes]
        self._slots = {}
        for group in self._slot_groups():
            for name in group:
                self._slots[name] = [np.full(n, self._slot_initial(name), np.float32) for n in sizes]
        self._build_extra()
        self.built = True

    def _build_extra(self):
        pass

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude parameters from weight decay: by index in the params list (var_list)
        or by a substring of their names (var_names; names are given to apply/build)."""
        if self.built:
            raise KcompileError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.")
        self._exclude_indices = set(var_list or ())
        self._exclude_names = list(var_names) if var_names else None

    def _use_weight_decay(self, index: int) -> bool:
        if index in getattr(self, "_exclude_indices", ()):
            return False
        if self._exclude_names and self._param_names is not None:
            import re

            pattern = "|".join(set(self._exclude_names))
            if re.search(pattern, self._param_names[index]) is not None:
                return False
        return True

    # -- the step ----------------------------------------------------------------------------------------
    def apply(self, params: list, grads: list, names=None):
        """One update of `params` (float32 arrays, changed in place) with `grads`; a None
        gradient leaves its parameter alone. Increments `iterations`."""
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise KcompileError(f"{len(grads)} gradients for {len(params)} parameters")
        if not params:
            return
        if not self.built:
            self.build(params, names)
        elif [tuple(np.shape(p)) for p in params] != self._shapes:
            raise KcompileError("this optimizer was built for parameters of shapes "
                                f"{self._shapes}; got {[tuple(np.shape(p)) for p in params]}")
        configure_threading()  # the update kernels are parallel (a no-op after the first call)
        flats = [_flat(p) for p in params]
        index = [i for i, g in enumerate(grads) if g is not None]
        gs = [_grad(grads[i]) for i in index]
        if self.loss_scale_factor is not None:
            gs = [(g / F(self.loss_scale_factor)).astype(np.float32) for g in gs]
        if self.gradient_accumulation_steps:
            steps = self.gradient_accumulation_steps
            if (self._iterations + 1) % steps == 0:
                gs = [((g + self._accumulators[i]) / F(steps)).astype(np.float32) for g, i in zip(gs, index)]
                self._step(flats, gs, index)
                for acc in self._accumulators:
                    acc[:] = 0
            else:
                for g, i in zip(gs, index):
                    self._accumulators[i] += g
        else:
            self._step(flats, gs, index)
        if self.use_ema:
            self._update_ema(flats)
        self._iterations += 1

    def _step(self, flats, gs, index):
        gs = self._clip(gs)
        lr = self._current_lr32()
        if self.weight_decay is not None:
            wd = F(self.weight_decay)
            for i in index:
                if self._use_weight_decay(i):
                    _weight_decay_kernel(flats[i], wd, lr)
        scalars = self._scalars(lr)
        for g, i in zip(gs, index):
            self._update(i, flats[i], g, scalars)

    def _scalars(self, lr: np.float32) -> tuple:
        """The update kernel's float32 scalars for this step, computed once for all the
        parameters (per parameter, the NumPy scalar arithmetic cost more than a small
        parameter's kernel)."""
        raise NotImplementedError

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, scalars: tuple):
        raise NotImplementedError

    def _local_step(self) -> np.float32:
        return F(self.iterations + 1)

    def _clip(self, gs):
        if self.clipnorm and self.clipnorm > 0:
            return [_clip_by_norm(g, self.clipnorm) for g in gs]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return _clip_by_global_norm(gs, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            v = F(self.clipvalue)
            return [np.clip(g, -v, v).astype(np.float32) for g in gs]
        return gs

    def _update_ema(self, flats):
        momentum = F(0.0) if self.iterations == 0 else F(self.ema_momentum)
        for average, p in zip(self._averages, flats):
            _ema_kernel(average, p, momentum, F(1) - momentum)
        if self.ema_overwrite_frequency and (self.iterations + 1) % self.ema_overwrite_frequency == 0:
            for average, p in zip(self._averages, flats):
                p[:] = average

    def finalize_variable_values(self, params):
        """With use_ema, overwrite the parameters by their moving averages (fit's end)."""
        if self.use_ema and self._averages:
            for average, p in zip(self._averages, params):
                _flat(p)[:] = average

    # -- state ---------------------------------------------------------------------------------------------
    def _extra_variables(self) -> list:
        return []

    def variables(self) -> list:
        """The optimizer's state as arrays, in Keras's order: iteration (int64), the
        learning rate (float32, when it is not a schedule), EMA averages, gradient
        accumulators, then the slots (reshaped to their parameter's shape; they share
        memory with the optimizer's state)."""
        out = [np.array(self._iterations, dtype=np.int64)]
        if self._lr_schedule is None:
            out.append(np.array(self._lr_value, dtype=np.float32))
        if not self.built:
            return out
        out += [a.reshape(s) for a, s in zip(self._averages, self._shapes)]
        out += [a.reshape(s) for a, s in zip(self._accumulators, self._shapes)]
        for group in self._slot_groups():
            for i, shape in enumerate(self._shapes):
                out += [self._slots[name][i].reshape(shape) for name in group]
        return out + self._extra_variables()

    def get_weights(self) -> list:
        return [np.array(v) for v in self.variables()]

    def set_weights(self, weights: list):
        """Load arrays in `variables()` order (the optimizer must be built)."""
        if not self.built:
            raise KcompileError("You are calling `set_weights()` on an optimizer that has not yet been built. "
                                "Call `optimizer.build(params)` first.")
        current = self.variables()
        if len(weights) != len(current):
            raise KcompileError(f"{self.name}: {len(weights)} arrays for {len(current)} optimizer variables")
        for target, value in zip(current, weights):
            if np.shape(target) != np.shape(value):
                raise KcompileError(f"optimizer variable of shape {np.shape(target)} given shape {np.shape(value)}")
        self._iterations = int(np.asarray(weights[0]))
        rest = list(weights[1:])
        if self._lr_schedule is None:
            self._lr_value = F(np.asarray(rest.pop(0)))
        for target, value in zip(self.variables()[len(current) - len(rest):], rest):
            target[...] = value
        self._load_extra_variables(rest)

    def _load_extra_variables(self, rest):
        pass

    def get_state(self) -> dict:
        """A copy of the full state (round-trips through set_state)."""
        return {
            "class_name": self.keras_class,
            "iterations": self._iterations,
            "learning_rate": None if self._lr_schedule is not None else float(self._lr_value),
            "shapes": list(self._shapes) if self.built else None,
            "variables": self.get_weights() if self.built else [],
        }

    def set_state(self, state: dict):
        if state.get("shapes") is None:
            self._iterations = int(state["iterations"])
            if state.get("learning_rate") is not None and self._lr_schedule is None:
                self._lr_value = F(state["learning_rate"])
            return
        if not self.built or self._shapes != [tuple(s) for s in state["shapes"]]:
            self.build([np.zeros(tuple(s), np.float32) for s in state["shapes"]], self._param_names)
        self.set_weights(state["variables"])

    # -- configuration ----------------------------------------------------------------------------------------
    def _learning_rate_config(self):
        if isinstance(self._lr_schedule, LearningRateSchedule):
            return self._lr_schedule.serialize()
        if self._lr_schedule is not None:
            return float(self.current_learning_rate())
        return float(self._lr_value)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "learning_rate": self._learning_rate_config(),
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            **{key: getattr(self, key) for key in self._hyperparameters},
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = get_schedule(config["learning_rate"])
        return cls(**config)

    def serialize(self) -> dict:
        """Keras's serialized form (as in a compile config)."""
        return keras_serialized("keras.optimizers", self)

    def __repr__(self):
        return f"<{self.keras_class} name={self.name!r} iterations={self.iterations}>"


def _clip_by_norm(g: np.ndarray, clipnorm) -> np.ndarray:
    """tf.clip_by_norm: g * clipnorm / max(||g||, clipnorm)."""
    l2sum = F(np.sum(np.square(g, dtype=np.float64)))
    l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
    return ((g * F(clipnorm)) / np.maximum(l2norm, F(clipnorm))).astype(np.float32)


def _clip_by_global_norm(gs: list, clipnorm) -> list:
    use_norm = F(math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in gs)))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = F(clipnorm) * np.minimum(F(1.0) / use_norm, F(1.0) / F(clipnorm)) + (use_norm - use_norm)
    return [(g * scale).astype(np.float32) for g in gs]


def _snake(name: str) -> str:
    import re

    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# -- the algorithms ---------------------------------------------------------------------------------------------


class SGD(Optimizer):
    keras_class = "SGD"
    _hyperparameters = ("momentum", "nesterov")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not isinstance(momentum, (float, int)) or momentum < 0 or momentum > 1:
            raise KcompileError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _slot_groups(self):
        return [("momentum",)] if self.momentum != 0 else []

    def _scalars(self, lr):
        return lr, F(self.momentum), self.momentum != 0, self.nesterov

    def _update(self, i, p, g, scalars):
        m = self._slots["momentum"][i] if self.momentum != 0 else _EMPTY
        _sgd_kernel(p, g, m, *scalars)


class RMSprop(Optimizer):
    keras_class = "RMSprop"
    _hyperparameters = ("rho", "momentum", "epsilon", "centered")

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def _slot_groups(self):
        groups = [("velocity",)]
        if self.momentum > 0:
            groups.append(("momentum",))
        if self.centered:
            groups.append(("average_gradient",))
        return groups

    def _scalars(self, lr):
        return lr, F(self.rho), F(1 - self.rho), F(self.momentum), F(self.epsilon), self.momentum > 0, bool(self.centered)

    def _update(self, i, p, g, scalars):
        s = self._slots
        m = s["momentum"][i] if self.momentum > 0 else _EMPTY
        avg = s["average_gradient"][i] if self.centered else _EMPTY
        _rmsprop_kernel(p, g, s["velocity"][i], m, avg, *scalars)


class _TwoMomentOptimizer(Optimizer):
    """Adam, Adamax and Nadam: the same beta_1, beta_2 and epsilon arguments and defaults."""

    _hyperparameters = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon


class Adam(_TwoMomentOptimizer):
    keras_class = "Adam"
    _hyperparameters = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)
        self.amsgrad = amsgrad

    def _slot_groups(self):
        groups = [("momentum", "velocity")]
        if self.amsgrad:
            groups.append(("velocity_hat",))
        return groups

    def _scalars(self, lr):
        local_step = self._local_step()
        beta_1_power = np.power(F(self.beta_1), local_step)
        beta_2_power = np.power(F(self.beta_2), local_step)
        alpha = lr * np.sqrt(F(1) - beta_2_power) / (F(1) - beta_1_power)
        return F(alpha), F(1 - self.beta_1), F(1 - self.beta_2), F(self.epsilon), bool(self.amsgrad)

    def _update(self, i, p, g, scalars):
        s = self._slots
        vhat = s["velocity_hat"][i] if self.amsgrad else _EMPTY
        _adam_kernel(p, g, s["momentum"][i], s["velocity"][i], vhat, *scalars)


class AdamW(Adam):
    keras_class = "AdamW"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         weight_decay=weight_decay, **kwargs)
        if self.weight_decay is None:
            raise KcompileError("Argument `weight_decay` must be a float. Received: weight_decay=None")


class Adagrad(Optimizer):
    keras_class = "Adagrad"
    _hyperparameters = ("initial_accumulator_value", "epsilon")

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _slot_groups(self):
        return [("accumulator",)]

    def _slot_initial(self, name):
        return self.initial_accumulator_value

    def _scalars(self, lr):
        return lr, F(self.epsilon)

    def _update(self, i, p, g, scalars):
        _adagrad_kernel(p, g, self._slots["accumulator"][i], *scalars)


class Adadelta(Optimizer):
    keras_class = "Adadelta"
    _hyperparameters = ("rho", "epsilon")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def _slot_groups(self):
        return [("accumulated_grad", "accumulated_delta_var")]

    def _scalars(self, lr):
        return lr, F(self.rho), F(1 - self.rho), F(self.epsilon)

    def _update(self, i, p, g, scalars):
        s = self._slots
        _adadelta_kernel(p, g, s["accumulated_grad"][i], s["accumulated_delta_var"][i], *scalars)


class Adamax(_TwoMomentOptimizer):
    keras_class = "Adamax"

    def _slot_groups(self):
        return [("momentum", "norm")]

    def _scalars(self, lr):
        beta_1_power = np.power(F(self.beta_1), self._local_step())
        return lr, F(1 - self.beta_1), F(self.beta_2), F(F(1) - beta_1_power), F(self.epsilon)

    def _update(self, i, p, g, scalars):
        s = self._slots
        _adamax_kernel(p, g, s["momentum"][i], s["norm"][i], *scalars)


class Nadam(_TwoMomentOptimizer):
    keras_class = "Nadam"

    def _slot_groups(self):
        return [("momentum", "velocity")]

    def _build_extra(self):
        self._u_product = np.array(1.0, dtype=np.float32)

    def _extra_variables(self):
        return [self._u_product]

    def _load_extra_variables(self, rest):
        pass  # _u_product is the last variable and was assigned in place

    def _scalars(self, lr):
        # Keras's momentum cache, updated once per step before the per-variable updates.
        step = F(self.iterations + 1)
        self._u_product[...] = self._u_product * F(self.beta_1) * (F(1.0) - F(0.5) * np.power(F(0.96), step))
        local_step, next_step = F(self.iterations + 1), F(self.iterations + 2)
        decay, beta_1, beta_2 = F(0.96), F(self.beta_1), F(self.beta_2)
        u_t = beta_1 * (F(1.0) - F(0.5) * np.power(decay, local_step))
        u_t_1 = beta_1 * (F(1.0) - F(0.5) * np.power(decay, next_step))
        u_product_t = F(self._u_product)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = np.power(beta_2, local_step)
        return (lr, F(F(1) - beta_1), F(F(1) - beta_2), F(u_t_1), F(F(1) - u_product_t_1), F(F(1) - u_t),
                F(F(1) - u_product_t), F(F(1) - beta_2_power), F(self.epsilon))

    def _update(self, i, p, g, scalars):
        s = self._slots
        _nadam_kernel(p, g, s["momentum"][i], s["velocity"][i], *scalars)


# -- lookup ---------------------------------------------------------------------------------------------------

OPTIMIZER_CLASSES = {cls.keras_class: cls for cls in (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam)}
_BY_LOWER = {name.lower(): cls for name, cls in OPTIMIZER_CLASSES.items()}

# tf-keras (Keras 2) configuration keys Keras 3 does not have.
_LEGACY_DROPPED = ("jit_compile", "is_legacy_optimizer")


def _optimizer_class(class_name: str):
    name = class_name.split(">")[-1]  # "Custom>Adam" (tf-keras 2.11+), "keras.optimizers>Adam"
    name = name.split(".")[-1]
    cls = _BY_LOWER.get(name.lower())
    if cls is None:
        raise KcompileError(f"unknown optimizer {class_name!r}; kcompile knows {sorted(OPTIMIZER_CLASSES)}")
    return cls


def _clean_config(config: dict) -> dict:
    config = dict(config or {})
    if "lr" in config:  # Keras 1/2
        config.setdefault("learning_rate", config.pop("lr"))
        config.pop("lr", None)
    for key in _LEGACY_DROPPED:
        config.pop(key, None)
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = get_schedule(config["learning_rate"])
    return config


def get_optimizer(identifier) -> Optimizer:
    """A kcompile optimizer from what Keras accepts in compile(optimizer=...).

    identifier: a name ("sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta",
        "adamax", "nadam"; any case); a Keras-serialized dict ({"class_name", "config"},
        Keras 3 or tf-keras's "optimizer_config", "Custom>Adam", legacy "lr"/"decay"
        keys; a serialized schedule as learning_rate); a kcompile optimizer (returned as
        is); or a keras.optimizers.Optimizer (converted from its class name and config;
        its state is not copied).
    """
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _optimizer_class(identifier)()
    if isinstance(identifier, dict):
        if "class_name" not in identifier:
            raise KcompileError(f"cannot read the optimizer config {identifier!r}")
        cls = _optimizer_class(identifier["class_name"])
        return cls(**_clean_config(identifier.get("config", {})))
    if hasattr(identifier, "get_config"):
        cls = _optimizer_class(type(identifier).__name__)
        config = _clean_config(identifier.get_config())
        return cls(**config)
    raise KcompileError(f"Could not interpret optimizer identifier: {identifier!r}")


__all__ = [
    "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Nadam", "OPTIMIZER_CLASSES", "Optimizer", "RMSprop",
    "get_optimizer",
]
