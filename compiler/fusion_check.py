"""check_fusion: every fused step against the chain it replaces, on a random batch.

compile(check=True) runs it. The FusionCheck executor runs the fused plan and, for each fused
step, the members one by one on the very inputs the step got (dagnet/runtime/members.py): the
step's output and then its input gradients (given the same incoming gradient) must equal the
unfused chain's. A mismatch names the first such group.
"""
from __future__ import annotations

import copy

import numpy as np

from dagnet.errors import FusionMismatchError
from dagnet.gradcheck import norm_error
from dagnet.runtime import Executor
from dagnet.runtime.members import member_forward, unfused_grads
from dagnet.compiler.feeds import random_feeds
from dagnet.compiler.plan import ExecutionPlan


class FusionCheck(Executor):
    """The executor on copies of the plan's state and rng (every value a fresh array), with
    each fused step's numbers compared with its members'; mismatches: {step: message}."""

    def __init__(self, plan: ExecutionPlan):
        super().__init__(plan, state=copy.deepcopy(plan.state), rng=copy.deepcopy(plan.rng),
                         fresh=True)
        self.tol = 1e-9 if plan.dtype == np.float64 else 1e-4
        self.runs: dict = {}  # {fused step: member_forward's items}
        self.mismatches: dict = {}

    def step_forward(self, step, ins, mode, out=None, workspace=None):
        y, cache = super().step_forward(step, ins, mode)
        if step.fused:
            runs = self.runs[step.name] = list(member_forward(step, ins, mode))
            err = norm_error(y, runs[-1][2])
            if err > self.tol:
                self.mismatches[step.name] = (
                    f"fused group {step.name} (pattern {step.pattern}): outputs differ from the "
                    f"unfused chain (relative error {err:.2e} > {self.tol:g})")
        return y, cache

    def step_backward(self, step, dout, cache):
        grads = super().step_backward(step, dout, cache)
        if step.fused and step.name not in self.mismatches:
            want = unfused_grads(self.runs[step.name], dout)
            missing = [src for src, need, g, w in zip(step.inputs, step.needs, grads, want)
                       if need and (g is None) != (w is None)]
            if missing:
                self.mismatches[step.name] = (
                    f"fused group {step.name} (pattern {step.pattern}): the gradient of "
                    f"'{missing[0]}' is missing from one of the fused step and its unfused chain")
                return grads
            pairs = [(src, g, w) for src, need, g, w in zip(step.inputs, step.needs, grads, want)
                     if need and g is not None]
            # measured against the group's largest gradient: a gradient that cancels to
            # rounding noise (a conv bias before batchnorm) differs in its noise, not its value
            floor = max((float(np.max(np.abs(w))) for _, _, w in pairs if w.size), default=0.0)
            for src, g, w in pairs:
                err = norm_error(g, w, floor)
                if err > self.tol:
                    self.mismatches[step.name] = (
                        f"fused group {step.name} (pattern {step.pattern}): gradient of '{src}' "
                        f"differs from the unfused chain (relative error {err:.2e} > {self.tol:g})")
                    break
        return grads


def check_fusion(plan: ExecutionPlan) -> None:
    """Raise FusionMismatchError naming the first fused group whose output or gradients differ
    from its unfused chain on a random batch (a train plan; its state and rng are left alone)."""
    check = FusionCheck(plan)
    check.forward(random_feeds(plan), "train")
    if plan.losses:
        check.backward({v: np.asarray(1.0, dtype=plan.dtype) for v in plan.losses})
    for step in plan.steps:
        if step.name in check.mismatches:
            raise FusionMismatchError(check.mismatches[step.name])
