"""Time every step of a plan, forward and backward, for heat colors and tables.

    timings = profile_plan(plan, x, y, repeats=5)
    render_plan(plan, "plan.svg", timings=timings)
"""
from __future__ import annotations

import copy
import time

import numpy as np

from dagnet.errors import FeedError
from dagnet.runtime import check_feeds


def profile_plan(plan, feeds, labels=None, repeats: int = 5, mode: str | None = None) -> dict:
    """Seconds per step, best of `repeats`: {step name: {"forward": s, "backward": s}}.

    feeds: {input: array} or the float input x (then `labels` is the integer input y).
    Each step runs on the values of the steps before it, as the runtime does, but on copies
    of the plan's state and rng, so profiling changes neither batchnorm statistics nor the
    training run. backward is 0.0 for steps that need no gradient and in eval mode. In-place
    steps are timed writing a fresh output (the inputs must stay intact across repeats)."""
    values = dict(plan.params)
    values.update(check_feeds(plan, plan.feeds_for(feeds, labels)))
    mode = mode or plan.mode
    state, rng = copy.deepcopy(plan.state), copy.deepcopy(plan.rng)
    backward = {s.name for s in plan.backward_steps} if mode == "train" else set()
    timings = {}
    for step in plan.steps:
        missing = [s for s in step.inputs if s not in values]
        if missing:
            raise FeedError(f"step {step.index} '{step.name}' needs feed(s) {missing}; the plan's "
                            f"inputs are {sorted(plan.input_specs)}")
        ins = [values[s] for s in step.inputs]
        fwd, bwd = [], []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            out, cache = step.op.forward(ins, step.attrs, mode=mode, state=state.get(step.state_key),
                                         rng=rng)
            fwd.append(time.perf_counter() - t0)
            if step.name in backward:
                dout = np.ones_like(out)
                t0 = time.perf_counter()
                step.op.backward(dout, cache, step.attrs, needs=step.needs)
                bwd.append(time.perf_counter() - t0)
        values[step.name] = out
        timings[step.name] = {"forward": min(fwd), "backward": min(bwd) if bwd else 0.0}
    return timings
