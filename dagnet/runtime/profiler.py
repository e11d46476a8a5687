"""Profiler: the executor with every step timed, forward and backward."""
from __future__ import annotations

import copy
import time

import numpy as np

from dagnet.runtime.executor import Executor


class Profiler(Executor):
    """Times each step, best of `repeats`, on the values of the steps before it, as a run
    computes them, but on copies of the plan's state and rng, so profiling changes neither
    batchnorm statistics nor the training run. Every value is a fresh array: in-place steps
    are timed writing a fresh output (their inputs must stay intact across repeats)."""

    def __init__(self, plan, repeats: int = 5):
        super().__init__(plan, state=copy.deepcopy(plan.state), rng=copy.deepcopy(plan.rng),
                         fresh=True)
        self.repeats = max(1, repeats)
        self.timed_backward: set[str] = set()
        self.timings: dict = {}

    def run(self, feeds: dict, mode: str) -> dict:
        """{step name: {"forward": s, "backward": s}}; backward is 0.0 for steps that need no
        gradient and in eval mode."""
        plan = self.plan
        self.timed_backward = {s.name for s in plan.backward_steps} if mode == "train" else set()
        self.timings = {}
        self.forward(feeds, mode, wanted=[s.name for s in plan.steps])
        return self.timings

    def step_forward(self, step, ins, mode, out=None, workspace=None):
        fwd, bwd = [], []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            y, cache = super().step_forward(step, ins, mode)
            fwd.append(time.perf_counter() - t0)
            if step.name in self.timed_backward:
                dout = np.ones_like(y)
                t0 = time.perf_counter()
                self.step_backward(step, dout, cache)
                bwd.append(time.perf_counter() - t0)
        self.timings[step.name] = {"forward": min(fwd), "backward": min(bwd) if bwd else 0.0}
        return y, cache


def profile(plan, feeds: dict, repeats: int = 5, mode: str | None = None) -> dict:
    """Seconds per step, best of `repeats`: {step name: {"forward": s, "backward": s}}."""
    return Profiler(plan, repeats).run(feeds, mode or plan.mode)
