"""What each update rule's config may hold: hyperparameters with their defaults and valid
ranges, state keys, and the `lr` alias; `check_config` enforces it.

    check_config("sgd_momentum", {"lr": 0.1})       # -> {"learning_rate": 0.1}, in place
    check_config("adam", {"beta1": 2.0})             # TrainingError: ... must be a number in [0, 1)

A mistyped key would otherwise be ignored silently (training at the default rate), so every
key must be a hyperparameter or state key of the rule; the error lists them and suggests the
closest one.
"""
from __future__ import annotations

import difflib
import math
from numbers import Integral, Real

import numpy as np

from dagnet.errors import ShapeError, TrainingError

#: hyperparameter defaults per rule (the course code's; AdamW and AdaDelta take PyTorch's)
DEFAULTS: dict[str, dict] = {
    "sgd": {"learning_rate": 1e-2},
    "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
    "nesterov": {"learning_rate": 1e-2, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8,
                "epsilon_in_sqrt": False},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "adamw": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
              "weight_decay": 1e-2},
    "adagrad": {"learning_rate": 1e-2, "epsilon": 1e-8},
    "adadelta": {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6},
}

#: the state each rule keeps in its config (arrays shaped like w; t counts Adam's steps)
STATE_KEYS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "sgd_momentum": ("velocity",),
    "nesterov": ("velocity",),
    "rmsprop": ("cache",),
    "adam": ("m", "v", "t"),
    "adamw": ("m", "v", "t"),
    "adagrad": ("cache",),
    "adadelta": ("cache", "delta_cache"),
}

#: config keys that hold state arrays shaped like w
ARRAY_STATE_KEYS = frozenset({"velocity", "cache", "delta_cache", "m", "v"})

#: other names users bring from other frameworks -> dagnet's name
ALIASES = {"lr": "learning_rate"}


def _real(lo=None, hi=None, lo_open=False, hi_open=False):
    """A check for a finite real number within the given bounds, and its description."""
    def ok(v):
        if type(v) is not float and (  # the common case first: the checks run on every step
                isinstance(v, (bool, np.bool_)) or not isinstance(v, (Real, np.floating, np.integer))):
            return False
        x = float(v)
        return (math.isfinite(x) and (lo is None or (x > lo if lo_open else x >= lo))
                and (hi is None or (x < hi if hi_open else x <= hi)))
    if lo is not None and hi is not None:
        want = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    else:
        want = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    return ok, want


_UNIT = _real(0, 1, hi_open=True)
#: the valid values of each hyperparameter: (check, description)
RANGES = {
    "learning_rate": _real(0, lo_open=True),
    "momentum": _UNIT,
    "decay_rate": _UNIT,
    "beta1": _UNIT,
    "beta2": _UNIT,
    "rho": _UNIT,
    "epsilon": _real(0, lo_open=True),
    "weight_decay": _real(0),
    "epsilon_in_sqrt": (lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
    "t": (lambda v: (type(v) is int or (isinstance(v, (Integral, np.integer))
                                        and not isinstance(v, (bool, np.bool_)))) and v >= 0,
          "an integer >= 0 (the steps taken so far)"),
}


def did_you_mean(word, choices) -> str:
    """'; did you mean 'x'?' for the closest of choices (one differing only in case first), or ''."""
    choices = [str(c) for c in choices]
    close = [c for c in choices if c.lower() == str(word).lower()]
    close = close or difflib.get_close_matches(str(word), choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def known_keys(rule: str) -> list[str]:
    """The keys a config of `rule` may hold: its hyperparameters, then its state."""
    return [*DEFAULTS[rule], *STATE_KEYS[rule]]


_KNOWN = {rule: frozenset(known_keys(rule)) for rule in DEFAULTS}


def check_config(rule: str, config, w: np.ndarray | None = None, where: str = "config") -> dict:
    """`config` itself, with aliases renamed (lr -> learning_rate), after checking that every
    key belongs to `rule` and every value is in range (and, given w, that state arrays have
    w's shape). TrainingError (ShapeError for a state array) naming `where`, the key, the value
    and what it must be."""
    if not isinstance(config, dict):
        raise TrainingError(f"update rule {rule!r}: {where} must be a dict of hyperparameters such as "
                            f"{{'learning_rate': 1e-2}}, got {config!r}")
    for alias, name in ALIASES.items():
        if alias in config:  # renamed in place: the config is the rule's state from now on
            value = config.pop(alias)
            if name in config and config[name] != value:
                raise TrainingError(f"update rule {rule!r}: {where} gives both {alias!r} and {name!r} "
                                    f"({value!r} and {config[name]!r}); give one of them")
            config[name] = value
    for key, value in config.items():
        if key not in _KNOWN[rule]:
            known = known_keys(rule)
            names = ", ".join(f"{k} (or lr)" if k == "learning_rate" else k for k in known)
            raise TrainingError(f"update rule {rule!r}: {where} has an unknown key {key!r}; it "
                                f"takes {names}{did_you_mean(key, known)}")
        if key in ARRAY_STATE_KEYS:
            shape = value.shape if isinstance(value, np.ndarray) else np.shape(value)
            if w is not None and shape != w.shape:
                raise ShapeError(f"update rule {rule!r}: {where}[{key!r}] has shape {shape} but the "
                                 f"parameter has shape {w.shape}; keep one config per parameter")
            continue
        ok, want = RANGES[key]
        if not ok(value):
            raise TrainingError(f"update rule {rule!r}: {where}[{key!r}] = {value!r}; it must be {want}")
    return config
