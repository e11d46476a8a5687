"""Runs an ExecutionPlan: the forward sweep over its steps and the planned backward sweep.

The runtime reads only the plan's data (steps, params, state, feeds spec) so that it does not
depend on the compiler. Each step is one kernel call (fused or single).
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import FeedError


def check_feeds(plan, feeds: dict) -> dict:
    """Feeds as arrays of the plan's dtype (float inputs) or int64 (integer inputs).

    Raises FeedError naming the input, the expected and the given shape/dtype."""
    if not isinstance(feeds, dict):
        raise FeedError(f"feeds must be a dict {{input name: array}}, got {type(feeds).__name__}")
    out = {}
    batch = None
    for name, spec in plan.input_specs.items():
        if name not in feeds:
            continue
        a = np.asarray(feeds[name])
        want = tuple(spec["shape"])
        if a.ndim != len(want) + 1 or tuple(a.shape[1:]) != want:
            raise FeedError(f"feed '{name}': expected shape (N, {', '.join(map(str, want))})"
                            .replace(", )", ")") + f", got {a.shape}")
        kind = np.dtype(spec["dtype"]).kind
        if kind == "f":
            if a.dtype.kind != "f":
                raise FeedError(f"feed '{name}': expected floats ({plan.dtype}), got {a.dtype}; "
                                f"convert, e.g. x.astype(np.float32) / 255")
            a = a.astype(plan.dtype, copy=False)
        elif a.dtype.kind not in "iu":
            raise FeedError(f"feed '{name}': expected integers (e.g. class labels), got {a.dtype}")
        if batch is not None and a.shape[0] != batch:
            raise FeedError(f"feeds disagree on the batch size: '{name}' has {a.shape[0]}, "
                            f"others {batch}")
        batch = a.shape[0]
        out[name] = a
    unknown = set(feeds) - set(plan.input_specs)
    if unknown:
        raise FeedError(f"unknown feed(s) {sorted(unknown)}; the plan's inputs are "
                        f"{sorted(plan.input_specs)}")
    return out


def run_forward(plan, feeds: dict, mode: str, steps) -> dict:
    """Evaluate `steps` (a subset of plan.steps, in order); returns every value computed.

    Caches are kept on the plan for backward in train mode; in eval mode a value is dropped
    at its last use so its memory is freed for the next ones."""
    values = dict(plan.params)
    values.update(check_feeds(plan, feeds))
    caches = {}
    keep = set(plan.output_values)
    for step in steps:
        missing = [s for s in step.inputs if s not in values]
        if missing:
            raise FeedError(f"step {step.index} '{step.name}' needs feed(s) {missing}, which were "
                            f"not given; the plan's inputs are {sorted(plan.input_specs)}")
        ins = [values[s] for s in step.inputs]
        out_buf = ins[0] if step.inplace else None
        y, cache = step.op.forward(ins, step.attrs, mode=mode,
                                   state=plan.state.get(step.state_key),
                                   rng=plan.rng, out=out_buf)
        values[step.name] = y
        if mode == "train":
            caches[step.name] = cache
        else:
            for v in step.frees:
                if v not in keep:
                    values.pop(v, None)
    plan._caches = caches
    plan._values = values
    return values


def run_backward(plan, douts: dict) -> dict:
    """Sweep the planned backward order from the seed gradients `douts` {value: dout}.

    Gradients of a value that fans out are summed; returns {name: grad} for every param and for
    the inputs the plan was compiled to differentiate."""
    if not plan._caches:
        raise FeedError("backward() needs a train-mode forward() first (eval mode keeps no caches)")
    grads: dict[str, np.ndarray] = dict(douts)
    owned: set[str] = set()  # grads we may add into in place (not shared with an op's result)
    for step in plan.backward_steps:
        dout = grads.pop(step.name, None)
        if dout is None:
            continue
        gin = step.op.backward(dout, plan._caches[step.name], step.attrs, needs=step.needs)
        for src, need, gr in zip(step.inputs, step.needs, gin):
            if not need or gr is None:
                continue
            if src not in grads:
                grads[src] = gr
            elif src in owned:
                grads[src] += gr
            else:
                grads[src] = grads[src] + gr
                owned.add(src)
    result = {}
    for name, p in plan.params.items():
        g = grads.get(name)
        result[name] = np.zeros_like(p) if g is None else g
    for name in plan.wrt:
        result[name] = grads.get(name)
    return result
