"""Resuming checks what it resumes: the graph, the data and the recipe of a Solver checkpoint.

    recipe(solver)                       # {"update_rule": ..., "learning_rate": ..., ...}
    graph_changes(saved_graph, graph)    # ["node relu1: op relu -> tanh", "node drop1 added"]
    data_fingerprint(X_train, y_train, X_val, y_val)
    restore(solver, path, allow_changes) # CheckpointError naming what differs, else loads

A checkpoint carries the spec of its graph, a fingerprint of its data (shapes, dtypes and a
hash of the labels and of up to 256 evenly spaced examples per split: another split seed,
normalisation or data file changes it) and the recipe (update rule and its hyperparameters,
schedule, epochs, batch size, weight decay, seed, early stopping, augmentation). Resuming with
another graph or other data is refused; another recipe is refused unless the changed keys are
in `allow_changes`, and then the change is recorded in the run's history (solver.changes).
Fewer epochs than the checkpoint has already run is always refused.
"""
from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np

from dagnet.data.augment import augment_key
from dagnet.errors import CheckpointError, DagnetError
from dagnet.train import optim
from dagnet.files import short
from dagnet.train.runfolder import is_count, is_finite, is_number, is_numbers

#: Solver keys of the recipe besides the update rule's hyperparameters
RECIPE_KEYS = ("update_rule", "lr_schedule", "num_epochs", "batch_size", "weight_decay", "seed",
               "monitor", "patience", "min_delta", "augment")

#: the update rules' hyperparameters (learning_rate, momentum, beta1, ...)
HYPERPARAMETERS = frozenset(k for d in optim.DEFAULTS.values() for k in d)

#: every key allow_changes may name
CHANGEABLE = frozenset(RECIPE_KEYS) | HYPERPARAMETERS

#: examples per split whose bytes enter the data fingerprint (labels: all of them)
SAMPLED_EXAMPLES = 256


# -- what a run is made of ---------------------------------------------------------------------

def recipe(solver) -> dict:
    """The settings that decide what training computes, flat and JSON-able."""
    hyper = {k: v for k, v in {**optim.DEFAULTS[solver.update_rule_name],
                               **solver.optim_config}.items()
             if k not in optim.ARRAY_STATE_KEYS and k != "t"}
    schedule = {k: v for k, v in solver.schedule.to_dict().items() if k != "learning_rate"}
    return {"update_rule": solver.update_rule_name, **_plain(hyper), "lr_schedule": schedule,
            "num_epochs": solver.num_epochs, "batch_size": solver.batch_size,
            "weight_decay": solver.weight_decay, "seed": solver.seed,
            "monitor": solver.stopping.monitor, "patience": solver.stopping.patience,
            "min_delta": solver.stopping.min_delta, "augment": augment_key(solver.augment)}


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda v: v.item()))


def graph_structure(graph) -> dict:
    """{node name: (op, inputs, attrs)} with what decides the computation: op attrs, edges,
    param and input shapes and dtypes (not a param's init: resuming loads its values)."""
    out = {}
    for n in graph:
        if n.op == "param":
            attrs = {"shape": list(n.attrs.get("shape", ()))}
        elif n.op == "input":
            attrs = {k: n.attrs.get(k) for k in ("shape", "dtype")}
        else:
            attrs = dict(n.attrs)
        out[n.name] = (n.op, list(n.inputs), json.loads(json.dumps(attrs, default=str)))
    out[" outputs"] = ("outputs", list(graph.declared_outputs or []), {})
    return out


def graph_changes(saved, now, limit: int = 4) -> list[str]:
    """What differs between two graphs, one short phrase per node (at most `limit`, then a
    count), [] when they compute the same thing. A node replaced by one of another name at the
    same place (a sequential spec names relu1 -> tanh1) is one change, not three."""
    a, b = graph_structure(saved), graph_structure(now)
    added = [n for n in b if n not in a]
    renamed = {}  # old name -> new name
    for old in (n for n in a if n not in b):
        ins = [renamed.get(i, i) for i in a[old][1]]
        new = next((n for n in added if n not in renamed.values() and b[n][1] == ins), None)
        if new is not None:
            renamed[old] = new
    changes = []
    for name, (op0, in0, at0) in a.items():
        new = renamed.get(name, name)
        if new not in b:
            changes.append(f"node {name} ({op0}) removed")
            continue
        op1, in1, at1 = b[new]
        now_named = f" (now {new})" if new != name else ""
        in0 = [renamed.get(i, i) for i in in0]
        if op0 != op1:
            changes.append(f"node {name}: op {op0} -> {op1}{now_named}")
        elif in0 != in1:
            changes.append(f"node {name}: {'outputs' if op0 == 'outputs' else 'inputs'} "
                           f"{in0} -> {in1}")
        elif at0 != at1:
            keys = sorted(k for k in set(at0) | set(at1) if at0.get(k) != at1.get(k))
            changes.append(f"node {name}{now_named}: " + ", ".join(
                f"{k} {short(repr(at0.get(k)), 40)} -> {short(repr(at1.get(k)), 40)}" for k in keys))
    changes += [f"node {n} ({b[n][0]}) added" for n in added if n not in renamed.values()]
    if len(changes) > limit:
        changes = changes[:limit] + [f"{len(changes) - limit} more"]
    return changes


def data_fingerprint(*arrays) -> list:
    """Per array: [shape, dtype, SHA-256 of the labels or of SAMPLED_EXAMPLES evenly spaced
    examples] (None for an absent split). Cheap on any data set."""
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        a = np.asarray(a)
        h = hashlib.sha256()
        if a.ndim > 1 and len(a) > SAMPLED_EXAMPLES:
            a_sample = a[np.linspace(0, len(a) - 1, SAMPLED_EXAMPLES).astype(np.int64)]
        else:
            a_sample = a
        h.update(np.ascontiguousarray(a_sample).tobytes())
        out.append([list(a.shape), a.dtype.str, h.hexdigest()[:16]])
    return out


SPLITS = ("X_train", "y_train", "X_val", "y_val")


def data_changes(saved, now) -> list[str]:
    if not isinstance(saved, list) or len(saved) != len(now):
        return ["its data fingerprint is damaged"]
    changes = []
    for split, a, b in zip(SPLITS, saved, now):
        if a == b:
            continue
        if a is None or b is None:
            changes.append(f"{split} {'absent' if a is None else 'given'} then, "
                           f"{'absent' if b is None else 'given'} now")
        elif a[:2] != b[:2]:
            changes.append(f"{split} {tuple(a[0])} {_dtype_name(a[1])} then, {tuple(b[0])} "
                           f"{_dtype_name(b[1])} now")
        else:
            changes.append(f"{split} other values")
    return changes


def _dtype_name(text) -> str:
    try:
        return np.dtype(text).name
    except TypeError:
        return short(repr(text), 20)


def recipe_changes(saved: dict, now: dict) -> dict:
    """{key: (then, now)} for each recipe key whose value differs."""
    return {k: (saved.get(k), v) for k, v in now.items() if not _same(saved.get(k), v)}


def _same(a, b) -> bool:
    if is_number(a) and is_number(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


# -- the check -----------------------------------------------------------------------------------

def check_graph(solver, path: str, ck) -> None:
    from dagnet.graph import Graph

    source = getattr(solver.model, "source", None)
    if source is None or not ck.spec:
        return
    try:
        saved = Graph.from_spec(ck.spec)
    except DagnetError as e:
        raise CheckpointError(f"{path}: the graph spec saved in it does not build ({short(str(e), 120)}); "
                              f"the file is damaged or from another dagnet version") from None
    changes = graph_changes(saved, source)
    if changes:
        raise CheckpointError(
            f"{path} was trained on another graph ({'; '.join(changes)}); resume with the graph "
            f"saved in it (Graph.from_spec(load_checkpoint(path).spec)), or start a new run from "
            f"its params (dagnet train --weights {path} --out NEW)")


def check_data(solver, path: str, s: dict) -> None:
    if "data" not in s:  # a checkpoint written before data fingerprints
        return
    changes = data_changes(s["data"], solver.data_fingerprint)
    if changes:
        raise CheckpointError(
            f"{path} was trained on other data ({'; '.join(changes[:3])}); resume with the run's "
            f"data (the same files, validation split, seed and normalisation), or start a new "
            f"run from its params (dagnet train --weights {path} --out NEW)")


def check_recipe(solver, path: str, s: dict, allow_changes) -> dict:
    """{key: (then, now)} of the allowed changes; CheckpointError for the others."""
    done = s["epoch"]
    if solver.num_epochs < done:
        raise CheckpointError(
            f"{path} has already run {done} epochs; num_epochs = {solver.num_epochs} would "
            f"undo them: give num_epochs >= {done} (dagnet train --epochs {done} or more)")
    saved = s.get("recipe")
    if not isinstance(saved, dict):  # before recipes: the settings it did record
        saved = {k: s[k] for k in ("update_rule", "batch_size", "weight_decay", "seed", "monitor",
                                   "augment") if k in s}
        now = {k: v for k, v in recipe(solver).items() if k in saved}
    else:
        now = recipe(solver)
    changes = recipe_changes(saved, now)
    if "update_rule" in changes:  # another rule brings its own hyperparameters along
        changes = {k: v for k, v in changes.items() if k not in HYPERPARAMETERS}
    refused = {k: v for k, v in changes.items() if k not in allow_changes}
    if refused:
        shown = "; ".join(f"{k} {short(repr(a), 50)} in the checkpoint vs {short(repr(b), 50)} now"
                          for k, (a, b) in list(refused.items())[:4])
        raise CheckpointError(
            f"{path} was trained with other settings ({shown}); resume with the same settings, "
            f"or allow the change explicitly (Solver(..., allow_changes={sorted(refused)}); "
            f"dagnet train --resume --override KEY=VALUE), which the run's history records")
    return changes


def check_arrays(path: str, ck, model) -> None:
    """best_params / best_state / optimizer state shaped like the plan's (no broadcasting)."""
    best = ck.extra.get("best_params")
    if not isinstance(best, dict) or set(best) != set(model.params):
        raise CheckpointError(f"{path}: its best_params do not name the plan's params; the file "
                              f"is damaged: use an earlier checkpoint or train again")
    wrong = [f"best_params {k} {np.shape(v)} {np.asarray(v).dtype} vs {model.params[k].shape} "
             f"{model.params[k].dtype}" for k, v in best.items()
             if np.shape(v) != model.params[k].shape or np.asarray(v).dtype != model.params[k].dtype]
    best_state = ck.extra.get("best_state", {})
    mine = {n: {k: (v.shape, v.dtype) for k, v in st.items()} for n, st in model.state.items()}
    if best_state and (not isinstance(best_state, dict) or {
            n: {k: (np.shape(v), np.asarray(v).dtype) for k, v in st.items()}
            for n, st in best_state.items() if isinstance(st, dict)} != mine):
        wrong.append("best_state does not fit the plan's state")
    for flat, v in ck.optimizer.items():
        param, _, key = flat.rpartition("/")
        if key in optim.ARRAY_STATE_KEYS and param in model.params \
                and np.shape(v) != model.params[param].shape:
            wrong.append(f"optimizer {flat} {np.shape(v)} vs {model.params[param].shape}")
    if wrong:
        raise CheckpointError(f"{path}: {'; '.join(wrong[:3])}: the file is damaged or crafted; "
                              f"use an earlier checkpoint or train again")


#: solver-state key -> (check, what it must be)
SOLVER_FIELDS = {
    "epoch": (lambda v: is_count(v), "an integer >= 0"),
    "loss_history": (is_numbers, "a list of numbers"),
    "train_acc_history": (is_numbers, "a list of numbers"),
    "val_acc_history": (is_numbers, "a list of numbers"),
    "val_loss_history": (is_numbers, "a list of numbers"),
    "epoch_times": (is_numbers, "a list of numbers"),
    "best_val_acc": (is_finite, "a number"),
    "best_epoch": (lambda v: is_count(v), "an integer >= 0"),
    "rng": (lambda v: isinstance(v, dict), "a numpy bit-generator state"),
    "plan_rng": (lambda v: isinstance(v, dict), "a numpy bit-generator state"),
    "changes": (lambda v: isinstance(v, list) and all(isinstance(c, dict) for c in v),
                "a list of dicts"),
    "recipe": (lambda v: isinstance(v, dict), "a dict of settings"),
    "data": (lambda v: isinstance(v, list), "a list (the data fingerprint)"),
    "run_info": (lambda v: isinstance(v, dict), "a dict"),
}


def check_solver_state(path: str, s: dict) -> None:
    for key, (ok, want) in SOLVER_FIELDS.items():
        if key in s and not ok(s[key]):
            raise CheckpointError(f"{path}: solver state {key} = {short(repr(s[key]), 60)}; it "
                                  f"must be {want}: the file is damaged or crafted; use an earlier "
                                  f"checkpoint or train again")
    epoch = s["epoch"]
    per_epoch = [k for k in ("train_acc_history", "epoch_times") if len(s[k]) != epoch]
    if per_epoch or s.get("best_epoch", 0) > epoch:
        raise CheckpointError(f"{path}: solver state says epoch {epoch} but "
                              f"{', '.join(per_epoch) or 'best_epoch'} disagrees: the file is "
                              f"damaged or crafted; use an earlier checkpoint or train again")


def set_rng(path: str, generator, state, key: str) -> None:
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{path}: solver state {key} is not a {type(generator.bit_generator).__name__} "
                              f"state ({short(str(e), 80)}): the file is damaged or crafted; use "
                              f"an earlier checkpoint or train again") from None


# -- restoring -------------------------------------------------------------------------------------

#: what Solver.save writes into the checkpoint's solver section and load needs back
SOLVER_KEYS = ("epoch", "loss_history", "train_acc_history", "val_acc_history", "epoch_times",
               "best_val_acc", "rng", "plan_rng")


def check_resumable(solver, path: str, ck) -> None:
    """CheckpointError unless `ck` is a well-formed Solver checkpoint of this plan's params,
    state and graph, trained on this data with this recipe (or changes allowed)."""
    model = solver.model
    from dagnet.train.checkpoint import check_compatible

    check_compatible(ck, {k: v.shape for k, v in model.params.items()},
                     {k: v.dtype for k, v in model.params.items()})
    s = ck.solver
    missing = [k for k in SOLVER_KEYS if k not in s]
    if missing or "best_params" not in ck.extra:
        raise CheckpointError(
            f"{path} holds no solver state (missing {', '.join(missing or ['best_params'])}): "
            f"it was not written by Solver.save, so it cannot be resumed; load its params "
            f"with load_checkpoint() and compile(graph, params=...) instead")
    mine = {n: {k: (v.shape, v.dtype) for k, v in st.items()} for n, st in model.state.items()}
    theirs = {n: {k: (np.shape(v), np.asarray(v).dtype) for k, v in st.items()}
              for n, st in ck.state.items()}
    if mine != theirs:
        raise CheckpointError(
            f"{path}: its state (nodes {sorted(theirs)}) does not fit this plan's state "
            f"(nodes {sorted(mine)}); build the graph from the spec saved with it "
            f"(checkpoint.spec) or train from scratch")
    check_solver_state(path, s)
    check_arrays(path, ck, model)
    check_graph(solver, path, ck)
    check_data(solver, path, s)


def restore(solver, path: str, ck) -> None:
    """Check `ck` (see check_resumable, check_recipe), then load it into the solver and its
    plan; allowed recipe changes are appended to solver.changes."""
    check_resumable(solver, path, ck)
    s = ck.solver
    changes = check_recipe(solver, path, s, solver.allow_changes)
    model = solver.model
    for k, v in ck.params.items():
        model.params[k][...] = v
    for node, st in ck.state.items():
        for key, v in st.items():
            model.state[node][key][...] = v
    configs = {} if "update_rule" in changes else optim.state_from_arrays(ck.optimizer)
    for p in model.params:
        # state (velocity, m, t, ...) from the checkpoint, hyperparameters from this solver
        fresh = solver._fresh_config(p)
        configs[p] = {**configs.get(p, {}), **{k: v for k, v in fresh.items()
                                              if k not in optim.ARRAY_STATE_KEYS and k != "t"}}
    solver.optim_configs = configs
    solver.epoch = s["epoch"]
    solver.loss_history = [float(v) for v in s["loss_history"]]
    solver.train_acc_history = list(s["train_acc_history"])
    solver.val_acc_history = list(s["val_acc_history"])
    solver.val_loss_history = list(s.get("val_loss_history", []))
    solver.epoch_times = list(s["epoch_times"])
    solver.best_val_acc = float(s["best_val_acc"])
    # checkpoints from before early stopping: the best epoch as the selection picked it
    solver.best_epoch = s.get("best_epoch", solver.stopping.best_of(solver._monitored())[1])
    solver.stopped_early = solver.stopping.exhausted(solver.epoch, solver.best_epoch)
    solver.best_params = {k: np.array(v) for k, v in ck.extra["best_params"].items()}
    solver.best_state = {n: {k: np.array(v) for k, v in st.items()}
                         for n, st in ck.extra.get("best_state", {}).items()}
    set_rng(path, solver.rng, s["rng"], "rng")
    set_rng(path, model.rng, s["plan_rng"], "plan_rng")
    solver.changes = list(s.get("changes", []))
    if changes:
        solver.changes.append({"epoch": solver.epoch,
                               "changed": {k: [a, b] for k, (a, b) in changes.items()}})
    solver.saved_epoch = solver.epoch


def file_identity(path) -> tuple | None:
    """(device, inode, size, mtime) of a file, None if absent: a checkpoint rewritten by another
    process gets another inode (atomic replace) and mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_unchanged(path, identity) -> None:
    """CheckpointError if the checkpoint this solver read or wrote was replaced since (another
    process trained into it): training on would overwrite that process's epochs."""
    if identity is not None and file_identity(path) != identity:
        raise CheckpointError(
            f"{path} changed since this Solver read or wrote it (another process trained into "
            f"it); build a new Solver with resume=True to continue from what it holds now")
