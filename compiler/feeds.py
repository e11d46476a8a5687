"""random_feeds: a random batch for a plan's inputs (fusion checks, profiling, `dagnet inspect`)."""
from __future__ import annotations

import numpy as np

from dagnet.compiler.plan import ExecutionPlan


def random_feeds(plan: ExecutionPlan, batch: int = 4, seed: int = 0) -> dict:
    """A random batch for every input (unbatched inputs: one array of their shape): floats
    ~ N(0, 1); integers are class labels in range of the loss they feed (0 otherwise)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, spec in plan.input_specs.items():
        shape = ((batch,) if spec.get("batched", True) else ()) + tuple(spec["shape"])
        if np.dtype(spec["dtype"]).kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(plan.dtype)
        else:
            classes = 1
            for s in plan.steps:
                if s.op.kind == "loss" and name in s.inputs:
                    classes = plan.graph.node(s.inputs[0]).meta["shape"][-1]
            feeds[name] = rng.integers(0, classes, size=shape)
    return feeds
