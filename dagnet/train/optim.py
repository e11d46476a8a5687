"""First-order update rules, in the classic course style: `rule(w, dw, config) -> (next_w, config)`.

    w, config = adam(w, dw, config)          # config: hyperparameters plus the rule's state

`config` holds the hyperparameters (learning_rate, momentum, ...) and the rule's state
(velocity, cache, m, v, t); missing hyperparameters get the defaults in `DEFAULTS`, missing
state starts at zero. `lr` is accepted for learning_rate; any other key the rule does not
know, or a value out of range (momentum 5.0, beta1 2.0, a learning rate <= 0), raises a
TrainingError saying what is valid (see dagnet.train.hyperparams). Keep one config per
parameter. Every rule updates `w` and its state arrays in place and returns the same `w`
object (the plan's params are updated in place); a read-only `w` is copied instead, since
writing through it would fail.

Conventions where frameworks differ: RMSProp divides by sqrt(cache) + eps (Keras, PyTorch,
cs231n 2016+), or with epsilon_in_sqrt=True by sqrt(cache + eps) (TensorFlow 1, the cs231n
2015 / CS7643 toy trainer); AdamW and AdaDelta follow PyTorch (decoupled weight decay
w *= 1 - lr*weight_decay before the Adam step; AdaDelta with learning_rate 1.0).

`state_to_arrays` / `state_from_arrays` turn the per-parameter configs into a flat dict of
arrays and back, for checkpoints.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import CheckpointError, DTypeError, ShapeError, TrainingError
from dagnet.train.hyperparams import ARRAY_STATE_KEYS, DEFAULTS, check_config, did_you_mean

try:
    from dagnet._kernels import special as _special_ext
except ImportError:  # dagnet/kernels.py has warned already
    _special_ext = None

#: sgd_momentum in one compiled pass where it gives numpy's bits (False: numpy's, for A/B runs)
FUSED_MOMENTUM = True
#: below this many values numpy's passes cost less than the kernel call's checks and dispatch
#: (per call, 1 thread, kernel vs numpy: 4k values 10.4 vs 7.8 us, 16k 13.8 vs 14.9, 64k 28 vs 40;
#: a step of convnet_deep's or resnet20's updates, their filters 37k values, no faster from 16k)
FUSED_FROM = 65536

__all__ = ["ARRAY_STATE_KEYS", "DEFAULTS", "UPDATE_RULES", "adadelta", "adagrad", "adam", "adamw",
           "check_config", "get_update_rule", "nesterov", "rmsprop", "sgd", "sgd_momentum",
           "state_from_arrays", "state_to_arrays"]


def _prepare(rule: str, w, dw, config: dict | None):
    """Check w, dw and config, fill in default hyperparameters; returns (w to write into, dw,
    config)."""
    if not isinstance(w, np.ndarray) or not np.issubdtype(w.dtype, np.floating):
        raise DTypeError(f"{rule}: w must be a floating-point numpy array, got "
                         f"{getattr(w, 'dtype', type(w).__name__)}; convert it with w.astype(np.float32)")
    dw = np.asarray(dw)
    if dw.shape != w.shape:
        raise ShapeError(f"{rule}: gradient shape {dw.shape} differs from parameter shape {w.shape}")
    if not np.issubdtype(dw.dtype, np.floating):
        raise DTypeError(f"{rule}: gradient dtype is {dw.dtype}; it must be floating-point")
    config = check_config(rule, {} if config is None else config, w)
    for key, value in DEFAULTS[rule].items():
        config.setdefault(key, value)
    return (w if w.flags.writeable else w.copy()), dw, config


def _state(config: dict, key: str, w: np.ndarray) -> np.ndarray:
    """The state array `key` of config, created as zeros like w on first use."""
    if key not in config:
        config[key] = np.zeros_like(w)
    return config[key]


def sgd(w, dw, config=None):
    """Vanilla SGD: w -= learning_rate * dw. w, dw: any shape (the same)."""
    w, dw, config = _prepare("sgd", w, dw, config)
    w -= config["learning_rate"] * dw
    return w, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: v = momentum * v - learning_rate * dw; w += v. State: velocity."""
    w, dw, config = _prepare("sgd_momentum", w, dw, config)
    v = _state(config, "velocity", w)
    mu, lr = config["momentum"], config["learning_rate"]
    if FUSED_MOMENTUM and w.size >= FUSED_FROM and type(mu) in (float, int) \
            and type(lr) in (float, int) and _fusable(w, dw, v):
        # Python numbers: numpy rounds them to w's type too
        _special_ext.momentum_step(w.reshape(-1), dw.reshape(-1), v.reshape(-1), mu, lr)
        return w, config
    v *= mu
    v -= lr * dw
    w += v
    return w, config


def _fusable(w, *others) -> bool:
    """Whether a compiled one-pass update may run on w and the arrays it reads and writes:
    the kernels built, one float type, all C-contiguous, no two sharing memory."""
    arrays = (w, *others)
    return (_special_ext is not None and w.dtype in (np.float32, np.float64)
            and all(a.dtype == w.dtype and a.flags.c_contiguous for a in arrays)
            and not any(np.may_share_memory(a, b) for i, a in enumerate(arrays)
                        for b in arrays[i + 1:]))


def nesterov(w, dw, config=None):
    """Nesterov momentum (CS231n form): v' = mu*v - lr*dw; w += -mu*v + (1 + mu)*v'. State: velocity."""
    w, dw, config = _prepare("nesterov", w, dw, config)
    mu = config["momentum"]
    v = _state(config, "velocity", w)
    v_prev = v.copy()
    v *= mu
    v -= config["learning_rate"] * dw
    w += (1 + mu) * v - mu * v_prev
    return w, config


def rmsprop(w, dw, config=None):
    """RMSProp: cache = d*cache + (1-d)*dw^2; w -= lr*dw / (sqrt(cache) + eps). State: cache.

    epsilon_in_sqrt=True divides by sqrt(cache + eps) instead (TensorFlow 1's form, and the
    toy trainer of the cs231n 2015 / CS7643 notebooks whose published losses assume it)."""
    w, dw, config = _prepare("rmsprop", w, dw, config)
    decay = config["decay_rate"]
    cache = _state(config, "cache", w)
    cache *= decay
    cache += (1 - decay) * dw * dw
    if config["epsilon_in_sqrt"]:
        w -= config["learning_rate"] * dw / np.sqrt(cache + config["epsilon"])
    else:
        w -= config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    return w, config


def adam(w, dw, config=None):
    """Adam with bias correction; state m, v (moments) and t (steps taken so far, 0 at start)."""
    w, dw, config = _prepare("adam", w, dw, config)
    return _adam_step(w, dw, config), config


def adamw(w, dw, config=None):
    """AdamW (Loshchilov & Hutter), PyTorch's form: w *= 1 - lr*weight_decay, then the Adam
    step on dw alone, so the decay is not scaled by Adam's per-weight rates as an L2 term in
    the loss would be. State as Adam's. The Solver applies weight_decay to the params the plan
    decays (weights, not biases or batchnorm's gamma/beta)."""
    w, dw, config = _prepare("adamw", w, dw, config)
    if config["weight_decay"]:
        w *= 1 - config["learning_rate"] * config["weight_decay"]
    return _adam_step(w, dw, config), config


def _adam_step(w, dw, config):
    """The Adam update of w (in place) and its state m, v, t in config."""
    beta1, beta2 = config["beta1"], config["beta2"]
    m = _state(config, "m", w)
    v = _state(config, "v", w)
    t = int(config.get("t", 0)) + 1
    config["t"] = t
    m *= beta1
    m += (1 - beta1) * dw
    v *= beta2
    v += (1 - beta2) * dw * dw
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    w -= config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    return w


def adagrad(w, dw, config=None):
    """AdaGrad: cache += dw^2; w -= lr*dw / (sqrt(cache) + eps). State: cache."""
    w, dw, config = _prepare("adagrad", w, dw, config)
    cache = _state(config, "cache", w)
    cache += dw * dw
    w -= config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    return w, config


def adadelta(w, dw, config=None):
    """AdaDelta (Zeiler 2012), PyTorch's form: cache = rho*cache + (1-rho)*dw^2;
    step = sqrt(delta_cache + eps) / sqrt(cache + eps) * dw; delta_cache = rho*delta_cache +
    (1-rho)*step^2; w -= lr*step (learning_rate 1.0 is the paper's rule). State: cache,
    delta_cache."""
    w, dw, config = _prepare("adadelta", w, dw, config)
    rho, eps = config["rho"], config["epsilon"]
    cache = _state(config, "cache", w)
    delta_cache = _state(config, "delta_cache", w)
    cache *= rho
    cache += (1 - rho) * dw * dw
    step = np.sqrt(delta_cache + eps) / np.sqrt(cache + eps) * dw
    delta_cache *= rho
    delta_cache += (1 - rho) * step * step
    w -= config["learning_rate"] * step
    return w, config


UPDATE_RULES = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "nesterov": nesterov,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "adagrad": adagrad,
    "adadelta": adadelta,
}


def get_update_rule(name: str):
    """The update rule registered as `name` (one of UPDATE_RULES)."""
    try:
        return UPDATE_RULES[name]
    except (KeyError, TypeError):
        raise TrainingError(f"unknown update rule {name!r}; known rules: "
                            f"{', '.join(UPDATE_RULES)}{did_you_mean(name, UPDATE_RULES)}") from None


# Param names are graph node names and may contain anything, but config keys never hold a
# "/", so splitting a flat key at its last "/" always recovers (param, key).
_SEP = "/"


def state_to_arrays(configs: dict[str, dict]) -> dict[str, np.ndarray]:
    """Flatten per-param configs {param: {key: array | number}} to {"param/key": array} (copies)."""
    if not isinstance(configs, dict):
        raise CheckpointError(f"optimizer state must be a dict {{param: config dict}}, got "
                              f"{type(configs).__name__}")
    flat = {}
    for param, config in configs.items():
        if not isinstance(config, dict):
            raise CheckpointError(f"optimizer state of {param!r} must be a dict of hyperparameters "
                                  f"and state arrays, got {type(config).__name__}")
        for key, value in config.items():
            if _SEP in key:
                raise CheckpointError(f"optimizer state of {param!r}: key {key!r} contains "
                                      f"{_SEP!r}; rename it")
            if isinstance(value, np.ndarray):
                if value.dtype.hasobject:
                    raise CheckpointError(f"optimizer state {param}{_SEP}{key} is an object array; "
                                          "only numeric arrays can be saved")
                flat[f"{param}{_SEP}{key}"] = value.copy()
            elif isinstance(value, (bool, int, float, np.number, np.bool_)):
                # 0-d arrays keep the Python type apart (int t vs float rates) for the way back
                flat[f"{param}{_SEP}{key}"] = np.array(value)
            else:
                raise CheckpointError(f"optimizer state {param}{_SEP}{key} is a "
                                      f"{type(value).__name__}; only numbers and arrays can be saved")
    return flat


def state_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """Inverse of state_to_arrays: scalars (learning_rate, t, ...) become Python numbers again."""
    if not isinstance(arrays, dict):
        raise CheckpointError(f"optimizer state must be a dict {{'param/key': array}}, got "
                              f"{type(arrays).__name__}")
    configs: dict[str, dict] = {}
    for flat_key, value in arrays.items():
        param, sep, key = flat_key.rpartition(_SEP)
        if not sep:
            raise CheckpointError(f"optimizer state key {flat_key!r} is not of the form "
                                  "'param/key'; was it written by state_to_arrays?")
        value = np.asarray(value)
        is_scalar = value.ndim == 0 and key not in ARRAY_STATE_KEYS
        configs.setdefault(param, {})[key] = value.item() if is_scalar else value
    return configs
