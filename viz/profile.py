"""Time every step of a plan, forward and backward, for heat colors and tables.

    timings = profile_plan(plan, x, y, repeats=5)      # the same as plan.profile(x, y, 5)
    render_plan(plan, "plan.svg", timings=timings)
"""
from __future__ import annotations


def profile_plan(plan, feeds, labels=None, repeats: int = 5, mode: str | None = None) -> dict:
    """Seconds per step, best of `repeats`: {step name: {"forward": s, "backward": s}}.

    feeds: {input: array} or the float input x (then `labels` is the integer input y); see
    ExecutionPlan.profile."""
    return plan.profile(feeds, labels, repeats=repeats, mode=mode)
