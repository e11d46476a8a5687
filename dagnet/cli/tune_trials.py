"""One tune trial = one `dagnet train` run: the sampled values set on the train command's own
argument namespace (so every setting means what its flag means), the run written to
OUT/STUDY/trial_NNNN, validation accuracy reported to Optuna after every epoch.

What a space key may name:
    a `dagnet train` setting, by its flag's name with underscores (lr, weight_decay, crop,
                 flip, ...);
    optim.KEY    a setting of the update rule (optim.momentum, optim.beta2);
    model.KWARG  a keyword of a model-zoo function (fc_net's model.dropout, model.hidden_dims);
    NODE.ATTR    an attribute of a node of the model (drop1.p), through its spec.
A trial that edits the model trains the spec it writes to its run folder (model.yaml).
"""
from __future__ import annotations

import argparse
import copy
import difflib
import inspect
import os
import socket
import time

from dagnet import kernels
from dagnet.cli.common import load_data, resolve_graph, with_loss
from dagnet.cli.tune_workers import oversubscription_hint
from dagnet.errors import TrainingError, TuneError

#: train settings that belong to the study as a whole (its flags), not to a trial
_PER_STUDY = {"model", "data", "val", "seed", "out", "resume", "weights", "replace_head", "quiet",
              "func", "command"}


#: what a tune's trials use where neither its flags nor the spec's recipe say
TUNE_DEFAULTS = {"data": "fashion-mnist", "epochs": 1, "val": 5000, "seed": 0}


def train_namespace(args) -> argparse.Namespace:
    """The namespace `dagnet train MODEL` gets with the tune's --data, --epochs, --val and
    --seed: each from the tune's flag, else the spec's recipe, else TUNE_DEFAULTS; every other
    setting from the recipe, else its `dagnet train` default."""
    from dagnet.cli import recipe, train

    parser = argparse.ArgumentParser(prog="dagnet")
    sub = parser.add_subparsers(dest="command")
    train.register(sub)
    found = recipe.spec_recipe(args.model)
    sub.choices["train"].set_defaults(**{**TUNE_DEFAULTS, **recipe.as_flag_defaults(found)})
    argv = ["train", args.model, "--quiet"]
    for key in TUNE_DEFAULTS:
        if getattr(args, key) is not None:
            argv += [f"--{key}", str(getattr(args, key))]
    return parser.parse_args(argv)


def _train_actions():
    from dagnet.cli import train

    parser = argparse.ArgumentParser(prog="dagnet")
    sub = parser.add_subparsers(dest="command")
    train.register(sub)
    return {a.dest: a for a in sub.choices["train"]._actions if a.dest != "help"}


def check_space(space, base, path: str = "space") -> None:
    """TuneError for a key that names no train setting, zoo keyword or node attribute, and for
    values a train flag would refuse (a choice it does not offer, a float for an int flag)."""
    actions = _train_actions()
    graph = None
    for p in space:
        where = f"{path}: {p.name}"
        values = list(p.choices) if p.kind == "choice" else (
            [p.value] if p.kind == "fixed" else [p.low, p.high])
        if "." not in p.name:
            if p.name in _PER_STUDY or p.name not in actions:
                known = sorted(set(actions) - _PER_STUDY)
                close = difflib.get_close_matches(p.name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                why = "set for the whole study by its flag" if p.name in _PER_STUDY else \
                    "not a `dagnet train` setting, optim.KEY, model.KWARG or NODE.ATTR"
                raise TuneError(f"{where}: {why}{hint}; tunable settings: {', '.join(known)}")
            _check_values(where, actions[p.name], values)
            continue
        head, attr = p.name.split(".", 1)
        if head == "optim":
            from dagnet.train.optim import DEFAULTS

            known = sorted({k for d in DEFAULTS.values() for k in d} - {"learning_rate"})
            if attr not in known:
                raise TuneError(f"{where}: no update rule takes {attr!r}; their settings: "
                                f"{', '.join(known)} (the learning rate is lr)")
        elif head == "model":
            _check_zoo_keyword(where, base.model, attr)
        else:
            graph = graph or resolve_graph(base.model)
            if head not in graph:
                raise TuneError(f"{where}: the model has no node {head!r}; nodes: "
                                f"{', '.join(n.name for n in graph)}")
            if attr not in graph.node(head).attrs:
                raise TuneError(f"{where}: node {head!r} ({graph.node(head).op}) has no attribute "
                                f"{attr!r}; it has {', '.join(graph.node(head).attrs) or 'none'}")


def _check_values(where: str, action, values) -> None:
    if action.choices is not None:
        bad = [v for v in values if v not in action.choices]
        if bad:
            raise TuneError(f"{where}: {bad[0]!r} is not one of {', '.join(map(str, action.choices))}")
    if action.type is int and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TuneError(f"{where}: --{action.dest.replace('_', '-')} takes integers, got {values}")
    if action.type is float and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                        for v in values):
        raise TuneError(f"{where}: --{action.dest.replace('_', '-')} takes numbers, got {values}")
    if action.nargs == 0 and not all(isinstance(v, bool) for v in values):  # store_true flags
        raise TuneError(f"{where}: --{action.dest.replace('_', '-')} is on or off: give true/false")


def _check_zoo_keyword(where: str, model: str, kwarg: str) -> None:
    from dagnet.models import MODELS

    if model not in MODELS:
        raise TuneError(f"{where}: model.KWARG keys need a model-zoo name, and {model!r} is not "
                        f"one; tune a spec's node attributes as NODE.ATTR instead")
    params = set(inspect.signature(MODELS[model]).parameters) - {"input_shape", "num_classes"}
    if kwarg not in params:
        raise TuneError(f"{where}: {model}() takes no {kwarg!r}; it takes {', '.join(sorted(params))}")


class TrialRunner:
    """The Optuna objective: train one trial, return its best validation accuracy."""

    def __init__(self, args, base, space, study, study_dir: str, say):
        self.args, self.base, self.space = args, base, space
        self.study, self.study_dir, self.say = study, study_dir, say
        self.hinted = False

    def __call__(self, trial) -> float:
        import optuna
        from optuna import storages

        from dagnet.cli.train import cmd_train
        from dagnet.tune import study as st
        from dagnet.tune.pruning import ReportToTrial
        from dagnet.tune.space import suggest

        st.check_not_surplus(self.study, trial, self.args.trials)
        values = suggest(trial, self.space)
        run_dir, resume = os.path.join(self.study_dir, f"trial_{trial.number:04d}"), False
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or \
            storages.RetryFailedTrialCallback
        retried = retry.retried_trial_number(frozen)
        if retried is not None:  # its worker died: continue that run from its last epoch
            earlier = os.path.join(self.study_dir, f"trial_{retried:04d}")
            if os.path.exists(os.path.join(earlier, "checkpoint.npz")):
                run_dir, resume = earlier, True
        trial.set_user_attr("run_dir", run_dir)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("threads", kernels.NUM_THREADS)  # --workers W: cores // W
        hint = "" if self.hinted else oversubscription_hint(self.study, trial.number)
        if hint:
            self.say(hint)
            self.hinted = True
        shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        again = f" (trial {retried} again, its worker died" + (": resuming its run)" if resume else ")") \
            if retried is not None else ""
        if trial.user_attrs.get(st.BASELINE):
            fixed = frozen.system_attrs.get("fixed_params", {})
            drawn = [p.name for p in self.space if p.kind != "fixed" and p.name not in fixed]
            again = (" (the baseline: `dagnet train`'s defaults"
                     + (f"; {', '.join(drawn)} drawn by the sampler)" if drawn else ")") + again)
        self.say(f"trial {trial.number}: {shown}{again}")
        targs = self.trial_args(values, run_dir, resume)
        reporter = ReportToTrial(trial, self.say)
        start = time.perf_counter()
        try:
            cmd_train(targs, callbacks=[reporter], hparams=_hparams(values))
        except optuna.TrialPruned as e:
            trial.set_user_attr("note", str(e).split(":")[0])  # "pruned after epoch k"
            self.say(f"trial {trial.number}: {e}")
            raise
        except TrainingError as e:  # diverged: a hopeless trial, as the pruner would judge it
            trial.set_user_attr("note", "diverged: " + str(e).split(";")[0])
            self.say(f"trial {trial.number}: diverged ({str(e).split(';')[0]})")
            raise optuna.TrialPruned(str(e)) from None
        if reporter.best is None:  # resumed a run that had trained every epoch: none reported
            from dagnet.train.checkpoint import load_checkpoint

            ck = load_checkpoint(os.path.join(run_dir, "checkpoint.npz"))
            reporter.best = float(ck.solver["best_val_acc"])
        self.say(f"trial {trial.number}: val acc {reporter.best:.4f} "
                 f"({time.perf_counter() - start:.0f} s)")
        return reporter.best

    def trial_args(self, values: dict, run_dir: str, resume: bool) -> argparse.Namespace:
        """The train namespace of one trial; a model edit writes run_dir/model.yaml."""
        targs = copy.copy(self.base)
        edits = {}
        targs.optim = dict(getattr(self.base, "optim", None) or {})
        for key, value in values.items():
            if key.startswith("optim."):
                targs.optim[key.split(".", 1)[1]] = value
            elif "." in key:
                edits[key] = value
            else:
                setattr(targs, key, value)
        targs.out, targs.resume = run_dir, resume
        if edits:
            os.makedirs(run_dir, exist_ok=True)
            targs.model = self.edited_model(edits, os.path.join(run_dir, "model.yaml"))
        return targs

    def edited_model(self, edits: dict, path: str) -> str:
        """Build the model with the sampled model.KWARG / NODE.ATTR values; save its spec."""
        from dagnet.graph import Graph
        from dagnet.spec import save_spec

        data, _ = load_data(self.base.data, self.base.val, self.base.seed, self.base.preprocessing)
        shape = data["X_train"].shape[1:]
        classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
        kwargs = {k.split(".", 1)[1]: v for k, v in edits.items() if k.startswith("model.")}
        if kwargs:
            from dagnet.models import get_model

            graph = get_model(self.base.model, input_shape=tuple(shape), num_classes=classes, **kwargs)
        else:
            graph = resolve_graph(self.base.model, shape, classes)
        attrs = {k: v for k, v in edits.items() if not k.startswith("model.")}
        if attrs:
            spec = graph.to_spec()
            for key, value in attrs.items():
                node, attr = key.split(".", 1)
                entry = next(n for n in spec["nodes"] if n["name"] == node)
                entry[attr] = value
            graph = Graph.from_spec(spec)
        save_spec(with_loss(graph), path)
        return path


def _hparams(values: dict) -> dict:
    """The sampled values as the hparams dashboard takes them (strings for anything else)."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in values.items()}


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
