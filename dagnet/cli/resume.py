"""How `dagnet train --resume` settles its flags: the run's own, changed only on request.

A run records the flags that make it (RUN_FLAGS) in every checkpoint. Resuming takes those for
each flag not given; a flag given with another value - on the command line or by the spec's
`train:` recipe - is refused, naming both values, unless `--override FLAG=VALUE` asks for the
change, which the Solver then records in the run's history. The data flags (FIXED) cannot
change within a run: the split, normalisation and data.json belong to it. How the run is
spread over processes (--ranks, --bucket-mb) may change: the global batch stays the same.
"""
from __future__ import annotations

import argparse
import os

from dagnet.cli.common import UsageError
from dagnet.errors import DagnetError

#: the flags of `dagnet train` that make a run, as argparse dests
RUN_FLAGS = ("data", "val", "seed", "dtype", "preprocessing", "epochs", "batch_size",
             "update_rule", "lr", "lr_schedule", "warmup", "lr_decay", "weight_decay", "patience",
             "monitor", "min_delta", "crop", "translate", "flip", "erase", "cutout",
             "replace_head", "freeze")

#: flags fixed for the life of a run (replace_head: its graph)
FIXED = ("data", "val", "seed", "dtype", "preprocessing", "replace_head")

#: flag -> the Solver recipe keys a change of it touches (see dagnet.train.resume.recipe)
SOLVER_KEYS = {
    "epochs": ("num_epochs", "lr_schedule"),  # a cosine schedule spans the run
    "batch_size": ("batch_size", "lr_schedule"),  # ... counted in steps
    "lr": ("learning_rate",),
    "lr_schedule": ("lr_schedule",), "warmup": ("lr_schedule",), "lr_decay": ("lr_schedule",),
    "weight_decay": ("weight_decay",),
    "patience": ("patience",), "monitor": ("monitor",), "min_delta": ("min_delta",),
    **{flag: ("augment",) for flag in ("crop", "translate", "flip", "erase", "cutout")},
}


class Given(argparse.Action):
    """Store the value (the const of a flag without a value, nargs=0) and remember that the
    flag was given (not its default)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = getattr(namespace, "given", frozenset()) | {self.dest}


def flag_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def parse_overrides(parser, items) -> dict:
    """{dest: value} of --override FLAG=VALUE items, each value parsed as its flag parses it."""
    actions = {a.dest: a for a in parser._actions}
    out = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        dest = key.strip().lstrip("-").replace("-", "_")
        if not sep or dest not in RUN_FLAGS:
            raise UsageError(f"--override takes FLAG=VALUE with FLAG one of "
                             f"{', '.join(d for d in RUN_FLAGS if d not in FIXED)}; got {item!r}")
        if dest in FIXED:
            raise UsageError(f"--override {item}: {flag_name(dest)} is fixed for the life of a run "
                             f"(its split and normalisation are the run's); start a new run from "
                             f"its params instead: --weights RUN/checkpoint.npz --out NEW")
        action = actions[dest]
        try:
            if text.lower() == "none" and action.default is None:
                value = None
            elif action.nargs == 0:  # a switch (--flip): flip=true / flip=false
                value = {"true": action.const, "false": None}[text.lower()]
            else:
                value = action.type(text) if action.type else text
        except (TypeError, ValueError, KeyError):
            raise UsageError(f"--override {item}: {text!r} is not a valid {flag_name(dest)} "
                             f"value") from None
        if action.choices is not None and value not in action.choices:
            raise UsageError(f"--override {item}: {flag_name(dest)} takes one of "
                             f"{', '.join(map(str, action.choices))}")
        out[dest] = value
    return out


def check_recorded(recorded, path: str) -> dict:
    """The flags a checkpoint recorded ({} for one written before flags were recorded)."""
    from dagnet.errors import CheckpointError

    if recorded is None:
        return {}
    if not isinstance(recorded, dict) or any(
            not (v is None or isinstance(v, (str, int, float, bool))) for v in recorded.values()):
        raise CheckpointError(f"{path}: the flags recorded in it are damaged; use an earlier "
                              f"checkpoint or start a new run")
    return {k: v for k, v in recorded.items() if k in RUN_FLAGS}


def settle(parser, args, recorded: dict, run: str) -> tuple[dict, list[str]]:
    """Set args' run flags for this run: given ones, else the run's recorded ones, else the
    defaults; returns (the flags, the Solver keys whose change was asked for).

    UsageError when a given flag differs from the recorded one without --override."""
    given = getattr(args, "given", frozenset()) | recipe_given(args)
    overrides = parse_overrides(parser, args.override)
    if overrides and not args.resume:
        raise UsageError("--override changes a run being resumed: use it with --resume (for a "
                         "new run, just give the flags)")
    for dest, value in overrides.items():
        if dest in getattr(args, "given", ()) and getattr(args, dest) != value:
            raise UsageError(f"{flag_name(dest)} {getattr(args, dest)} and --override "
                             f"{dest}={value} disagree; give one of them")
    differ = []
    for dest in RUN_FLAGS:
        if dest in overrides:
            setattr(args, dest, overrides[dest])
        elif dest in given:
            if dest in recorded and not _same(args, recorded, dest):
                differ.append(dest)
        elif dest in recorded:
            setattr(args, dest, recorded[dest])
    fixed = [d for d in differ if d in FIXED]
    if fixed:
        shown = "; ".join(f"{flag_name(d)} {getattr(args, d)} now, {recorded[d]} in the run"
                          for d in fixed)
        raise UsageError(f"{run} was trained on other data ({shown}); resume with the run's own "
                         f"(leave the flag out), or start a new run from its params: --weights "
                         f"{run}/checkpoint.npz --out NEW")
    if differ:
        shown = "; ".join(f"{flag_name(d)} {getattr(args, d)} now, "
                          f"{'its default' if recorded[d] is None else recorded[d]} in the run"
                          for d in differ)
        fix = " ".join(f"--override {d}={getattr(args, d)}" for d in differ)
        raise UsageError(f"{run} was trained with other settings ({shown}); leave the flags out "
                         f"to continue with the run's, or pass {fix} to change them (the run's "
                         f"history records it)")
    allowed = sorted({k for d in overrides for k in SOLVER_KEYS.get(d, ())})
    if "update_rule" in overrides:  # another rule, with its own hyperparameters and fresh state
        allowed = sorted(set(allowed) | {"update_rule"})
    return {d: getattr(args, d) for d in RUN_FLAGS}, allowed


def _same(args, recorded: dict, dest: str) -> bool:
    """The given value is the recorded one, or (lr, weight_decay) what the run's default came
    to: a spec.yaml written by the run records the rate it used, where the run had no --lr."""
    if recorded[dest] == getattr(args, dest):
        return True
    if dest not in ("lr", "weight_decay"):
        return False
    from dagnet.cli.train import solver_options

    def effective(ns) -> tuple:
        options = solver_options(ns)
        config = options["optim_config"]
        return config["learning_rate"], config.get("weight_decay", options["weight_decay"])

    then = argparse.Namespace(**{**vars(args), **{k: v for k, v in recorded.items()}})
    return effective(then) == effective(args)


def recipe_given(args) -> frozenset:
    """The run flags a spec's `train:` recipe sets (they count as given: a recipe edited
    between two sessions of a run is refused like a flag, not ignored)."""
    from dagnet.cli.recipe import as_flag_defaults, spec_recipe

    found = as_flag_defaults(spec_recipe(args.model)) if isinstance(args.model, str) else {}
    return frozenset(k for k in found if k in RUN_FLAGS)


def recorded_flags(ckpt: str) -> dict:
    """The flags the run in ckpt was trained with ({} if it predates recorded flags)."""
    from dagnet.train.checkpoint import load_checkpoint

    info = load_checkpoint(ckpt).solver.get("run_info")
    return check_recorded(info.get("flags") if isinstance(info, dict) else None, ckpt)


def keep_data_json(path: str, info: dict, resuming: bool, run: str) -> None:
    """data.json describes the run's data for `evaluate` and `maps`: written when a run starts
    (or if lost), never rewritten mid-run; resuming on data that no longer matches it (the
    files changed: another normalisation) is refused."""
    from dagnet.train.runfolder import DATA_FIELDS, read_json, write_json

    if resuming and os.path.exists(path):
        saved = read_json(path, DATA_FIELDS, "a run's data.json", error=UsageError)
        differ = [k for k in info if k in saved and saved[k] != info[k]]
        if differ:
            raise UsageError(f"{run} was trained on other data: {', '.join(differ)} in "
                             f"{path} differ from --data {info['data']} now (the data files "
                             f"changed?); resume on the run's data, or start a new run from its "
                             f"params: --weights {run}/checkpoint.npz --out NEW")
        return
    write_json(path, info)


def saved_note(ckpt: str) -> str:
    """What the run folder holds after an interruption, read from the checkpoint itself."""
    from dagnet.train.checkpoint import load_checkpoint

    if not os.path.exists(ckpt):
        return "no epoch had ended, so nothing was saved"
    try:
        epoch = load_checkpoint(ckpt).solver["epoch"]
    except (DagnetError, KeyError):
        return f"{ckpt} is not a usable checkpoint"
    return f"{ckpt} holds epoch {epoch}: continue with --resume"
