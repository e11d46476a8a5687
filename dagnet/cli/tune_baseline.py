"""The baseline of a tune: the values `dagnet train` would use for each hyperparameter the
space names, run as the study's first trial (Optuna's enqueue_trial, as tuners do), so the
table and pictures show whether the search beat the defaults it is meant to beat.

    params, notes = baseline(space, base)   # {"lr": 0.04, "weight_decay": 1e-06, ...},
                                            # ["weight_decay = 0 (...): a log range ..."]

A default of 0 on a log range (weight decay, which `dagnet train` leaves off) takes the range's
low end, the nearest value a log range holds: a decay of 1e-6 changes one epoch of LeNet by
less than run-to-run noise, and the baseline stays the defaults on every dimension. Any other
default outside the space's range or choices is left to the sampler; `notes` says which.
"""
from __future__ import annotations

import inspect

from dagnet.tune.space import fits

_NONE = object()  # no default: a required keyword, a flag without one, a rule without the key


def train_default(name: str, base):
    """What `dagnet train` with the namespace `base` uses for the space key `name` (_NONE if
    nothing), and where that value comes from (or why there is none), for messages."""
    from dagnet.cli.train import solver_options
    from dagnet.train.optim import DEFAULTS

    if "." not in name:
        opts = solver_options(base)
        if name == "lr":
            return opts["optim_config"]["learning_rate"], f"{base.update_rule}'s default"
        if name == "weight_decay":
            decay = opts["optim_config"].get("weight_decay", opts["weight_decay"])
            return decay, f"{base.update_rule}'s default"
        value, flag = getattr(base, name, None), f"--{name.replace('_', '-')}"
        return (_NONE, f"{flag} has no default") if value is None else (value, f"{flag}'s default")
    head, attr = name.split(".", 1)
    if head == "optim":
        given = dict(getattr(base, "optim", None) or {})
        if attr in given:
            return given[attr], "the recipe's"
        if attr not in DEFAULTS[base.update_rule]:
            return _NONE, f"the default update rule, {base.update_rule}, takes no {attr}"
        return DEFAULTS[base.update_rule][attr], f"{base.update_rule}'s default"
    if head == "model":
        from dagnet.models import MODELS

        default = inspect.signature(MODELS[base.model]).parameters[attr].default
        if default is inspect.Parameter.empty:
            return _NONE, f"{base.model}() has no default for it"
        return default, f"{base.model}()'s default"
    from dagnet.cli.common import resolve_graph

    return resolve_graph(base.model).node(head).attrs[attr], "the model's value"


def baseline(space, base) -> tuple[dict, list[str]]:
    """({name: default} for each sampled dimension whose default the space can take, one line
    per dimension left to the sampler saying why)."""
    params, notes = {}, []
    for p in space:
        if p.kind == "fixed":
            continue
        value, source = train_default(p.name, base)
        if value is _NONE:
            notes.append(f"{p.name}: {source}; the sampler draws it")
        elif p.log and p.kind == "float" and value == 0 and not isinstance(value, bool):
            params[p.name] = p.low
            notes.append(f"{p.name} = 0 ({source}): a log range cannot hold 0; the baseline "
                         f"takes its low end, {p.low:g}, the nearest value it holds")
        elif not fits(p, value):
            notes.append(f"{p.name} = {value!r} ({source}) lies outside {p.describe()}; the "
                         f"sampler draws it")
        else:
            params[p.name] = value
    return params, notes


def refit(first: dict, space) -> tuple[dict | None, str]:
    """The first study's baseline for the narrowed study when all of it lies inside the
    narrowed space (None otherwise), and a line saying which."""
    if not first:
        return None, "the first study had no baseline trial"
    dims = {p.name: p for p in space}
    outside = [k for k, v in first.items() if k in dims and not fits(dims[k], v)]
    if outside:
        k = outside[0]
        return None, (f"the baseline is not run again: {k} = {first[k]!r} lies outside the "
                      f"narrowed {dims[k].describe()}")
    params = {k: v for k, v in first.items() if k in dims and dims[k].kind != "fixed"}
    return (params or None), "the baseline runs again: its values lie inside the narrowed space"
