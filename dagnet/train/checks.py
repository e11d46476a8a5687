"""Checks of what a user hands the Solver: its arguments (types and ranges, as the graph
builder checks its own), the data dict (keys, splits, shapes, labels against the plan). A checkpoint
to resume is checked by dagnet.train.resume.

Each failure is one line naming the argument, the value given and what it must be, raised
before any training starts.
"""
from __future__ import annotations

import json
import math
import os
from numbers import Integral, Real

import numpy as np

from dagnet.errors import CheckpointError, DatasetError, TrainingError
from dagnet.train.hyperparams import did_you_mean

#: the keys a data dict may hold; the test split is carried by many loaders and ignored here
DATA_KEYS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


def _bad(name: str, value, want: str, owner: str = "Solver") -> TrainingError:
    return TrainingError(f"{owner}: {name} = {value!r}; it must be {want}")


def count(name: str, value, low: int = 1, optional: str = "", owner: str = "Solver") -> int | None:
    """An integer >= low (an integer-valued float such as 2.0 is fine); None allowed when
    `optional` says what None means. `owner` (the function checked) starts the message."""
    if value is None and optional:
        return None
    ok = not isinstance(value, (bool, np.bool_)) and (
        isinstance(value, (Integral, np.integer))
        or (isinstance(value, (float, np.floating)) and float(value).is_integer()))
    if not ok or int(value) < low:
        none = f"None ({optional}) or " if optional else ""
        raise _bad(name, value, f"{none}an integer >= {low}", owner)
    return int(value)


def number(name: str, value, positive: bool = False) -> float:
    """A finite number > 0 (positive) or >= 0."""
    ok = isinstance(value, (Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or not math.isfinite(float(value)) or float(value) < 0 or (positive and value == 0):
        raise _bad(name, value, f"a finite number {'>' if positive else '>='} 0")
    return float(value)


def flag(name: str, value, optional: str = "") -> bool | None:
    """True or False (None allowed when `optional` says what None means)."""
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise _bad(name, value, f"None ({optional}), True or False" if optional else "True or False")
    return bool(value)


def choice(name: str, value, choices) -> str:
    if value not in choices:
        raise _bad(name, value, f"one of {', '.join(map(repr, choices))}"
                                f"{did_you_mean(value, choices)}")
    return value


def path(name: str, value) -> str | None:
    """None or a file path whose folder exists (a typo there would only fail after an epoch)."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise _bad(name, value, "None or a file path")
    if value is None:
        return None
    value = os.fspath(value)
    folder = os.path.dirname(os.path.abspath(value))
    if not value or os.path.isdir(value) or not os.path.isdir(folder):
        what = "a folder" if value and os.path.isdir(value) else f"in {folder}, which does not exist"
        raise CheckpointError(f"Solver: {name} = {value!r} is {what}; give a file path in an "
                              f"existing folder (create the folder first)")
    return value


def function(name: str, value, want: str = "None or a function (called with the solver after "
                                           "each epoch)"):
    if value is not None and not callable(value):
        raise _bad(name, value, want)
    return value


def callbacks(name: str, value) -> list:
    """A list or tuple of objects with on_step_end and/or on_epoch_end (dagnet.train.callbacks)."""
    if not isinstance(value, (list, tuple)):
        raise _bad(name, value, "a list of callbacks (objects with on_step_end or on_epoch_end, "
                                "see dagnet.train.callbacks)")
    for cb in value:
        if not any(callable(getattr(cb, e, None)) for e in ("on_step_end", "on_epoch_end")):
            raise TrainingError(f"Solver: callback {cb!r:.60} has neither on_step_end nor "
                                f"on_epoch_end; see dagnet.train.callbacks")
    return list(value)


def names(name: str, value, allowed) -> frozenset:
    """A collection of strings, each one of `allowed` (e.g. allow_changes=["learning_rate"])."""
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise _bad(name, value, "a list of names such as ['learning_rate', 'num_epochs']")
    for v in value:
        if v not in allowed:
            raise _bad(name, value, f"a list of these names: {', '.join(sorted(allowed))}"
                                    f"{did_you_mean(v, allowed)}")
    return frozenset(value)


def json_dict(name: str, value) -> dict:
    """None (an empty dict) or a dict that JSON can hold."""
    if value is None:
        return {}
    try:
        ok = isinstance(value, dict) and json.loads(json.dumps(value)) is not None
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _bad(name, value, "None or a JSON-able dict (str keys; numbers, strings, lists, dicts)")
    return json.loads(json.dumps(value))


def check_examples(owner: str, X, y) -> None:
    """DatasetError unless X and y have one label per example."""
    if len(X) != len(y):
        raise DatasetError(f"{owner}: X has {len(X)} examples but {len(y)} labels; give one label "
                           f"per example")


def check_model(model) -> None:
    """TrainingError unless model is a compiled plan with a loss (a Graph is the usual slip)."""
    if not (callable(getattr(model, "loss_and_grads", None))
            and isinstance(getattr(model, "params", None), dict)):
        raise TrainingError(f"Solver: model must be a compiled plan, got a {type(model).__name__}; "
                            f"compile it first: plan = dagnet.compile(graph)")
    if not getattr(model, "losses", None):
        raise TrainingError("Solver: the plan has no loss to train; build the graph with one "
                            "(e.g. g.softmax_cross_entropy(scores, labels))")


def check_data(model, data) -> tuple:
    """(X_train, y_train, X_val, y_val) as arrays, checked against the plan: DatasetError for
    unknown keys, missing or empty splits, X/y length mismatches, per-example shapes the plan
    cannot take, and labels that are not class indices of the model's loss."""
    if not isinstance(data, dict):
        raise DatasetError(f"data must be a dict with 'X_train' and 'y_train' (and optionally "
                           f"'X_val', 'y_val'), got {type(data).__name__}")
    for key in data:
        if key not in DATA_KEYS:
            raise DatasetError(f"data has an unknown key {key!r}; the Solver reads "
                               f"{', '.join(DATA_KEYS[:4])} ({', '.join(DATA_KEYS[4:])} are "
                               f"allowed and ignored){did_you_mean(key, DATA_KEYS)}")
    missing = [k for k in ("X_train", "y_train") if k not in data]
    if missing:
        raise DatasetError(f"data has no {' or '.join(repr(k) for k in missing)}; give a dict with "
                           f"'X_train' and 'y_train' (and optionally 'X_val', 'y_val')")
    if ("X_val" in data) != ("y_val" in data):
        raise DatasetError("data gives one of 'X_val' and 'y_val' but not the other; give both or "
                           "neither")
    specs = getattr(model, "input_specs", {})
    floats = [s for s in specs.values() if np.dtype(s["dtype"]).kind == "f"]
    classes = num_classes(model)
    out = []
    for split in ("train", "val"):
        X, y = data.get(f"X_{split}"), data.get(f"y_{split}")
        if X is None and split == "val":
            out += [None, None]
            continue
        try:
            X, y = np.asarray(X), np.asarray(y)
        except (TypeError, ValueError) as e:
            raise DatasetError(f"X_{split}/y_{split} cannot be made into arrays ({e})") from None
        if X.ndim == 0 or y.ndim != 1:
            raise DatasetError(f"X_{split} must be (N, ...) and y_{split} (N,), got shapes "
                               f"{X.shape} and {y.shape}")
        if len(X) != len(y):
            raise DatasetError(f"X_{split} has {len(X)} examples but y_{split} has {len(y)} "
                               f"labels; they must match")
        if split == "train" and len(X) == 0:
            raise DatasetError("the training set is empty (X_train has 0 examples): nothing to "
                               "train on; check the data files and the train/val split")
        if len(floats) == 1 and X.shape[1:] != tuple(floats[0]["shape"]):
            raise DatasetError(f"X_{split} examples have shape {X.shape[1:]} but the model's input "
                               f"takes {tuple(floats[0]['shape'])}; resize the data or build the "
                               f"model for this input shape")
        if len(y) and y.dtype.kind not in "iu":
            raise DatasetError(f"y_{split} must hold integer class indices, got {y.dtype}; convert "
                               f"with y.astype(np.int64)")
        if classes and len(y):
            bad = np.flatnonzero((y < 0) | (y >= classes))
            if bad.size:
                raise DatasetError(
                    f"y_{split}[{int(bad[0])}] = {y[bad[0]]} is not a class index in [0, "
                    f"{classes}): the model has {classes} classes ({bad.size} of {len(y)} labels "
                    f"out of range); build the model with num_classes={int(y.max()) + 1} or "
                    f"fix the labels")
        out += [X, y]
    return tuple(out)


def num_classes(model) -> int | None:
    """How many classes the (first) loss of a plan scores, or None."""
    try:
        step = next(s for s in model.steps if s.op.kind == "loss")
        return int(model.graph.node(step.inputs[0]).meta["shape"][-1])
    except (AttributeError, StopIteration, KeyError, IndexError):
        return None
