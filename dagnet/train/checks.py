"""Checks of what a user hands the Solver: its arguments (types and ranges, as the graph
builder checks its own), the data dict (keys, splits, shapes, labels against the plan) and a
checkpoint to resume (written by Solver.save, for this plan's state and these settings).

Each failure is one line naming the argument, the value given and what it must be, raised
before any training starts.
"""
from __future__ import annotations

import math
import os
from numbers import Integral, Real

import numpy as np

from dagnet.data.augment import augment_key
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
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise _bad(name, value, "None or a file path")
    return None if value is None else os.fspath(value)


def function(name: str, value):
    if value is not None and not callable(value):
        raise _bad(name, value, "None or a function (called with the solver after each epoch)")
    return value


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


#: what Solver.save writes into the checkpoint's solver section and load needs back
SOLVER_KEYS = ("epoch", "loss_history", "train_acc_history", "val_acc_history", "epoch_times",
               "best_val_acc", "rng", "plan_rng")


def check_resumable(solver, path: str, ck) -> None:
    """CheckpointError unless `ck` is a Solver checkpoint of this model and these settings."""
    s = ck.solver
    missing = [k for k in SOLVER_KEYS if k not in s]
    if missing or "best_params" not in ck.extra:
        raise CheckpointError(
            f"{path} holds no solver state (missing {', '.join(missing or ['best_params'])}): "
            f"it was not written by Solver.save, so it cannot be resumed; load its params "
            f"with load_checkpoint() and compile(graph, params=...) instead")
    mine = {n: {k: (v.shape, v.dtype) for k, v in st.items()} for n, st in solver.model.state.items()}
    theirs = {n: {k: (np.shape(v), np.asarray(v).dtype) for k, v in st.items()}
              for n, st in ck.state.items()}
    if mine != theirs:
        raise CheckpointError(
            f"{path}: its state (nodes {sorted(theirs)}) does not fit this plan's state "
            f"(nodes {sorted(mine)}); build the graph from the spec saved with it "
            f"(checkpoint.spec) or train from scratch")
    wanted = {"update_rule": solver.update_rule_name, "batch_size": solver.batch_size,
              "weight_decay": solver.weight_decay, "seed": solver.seed,
              "monitor": solver.stopping.monitor, "augment": augment_key(solver.augment)}
    differ = [f"{k} {s[k]!r} in the checkpoint vs {v!r} now" for k, v in wanted.items()
              if k in s and s[k] != v]
    if differ:
        raise CheckpointError(
            f"{path} was trained with other settings ({'; '.join(differ)}); resume with "
            f"the same settings to continue that run, or choose another checkpoint path "
            f"to start a new one")
