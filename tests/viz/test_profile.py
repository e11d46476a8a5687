"""profile_plan: forward and backward seconds per step, without touching the plan's state."""
import copy

import numpy as np

import dagnet
from dagnet.viz import profile_plan, render_plan
from tests.compiler.nets import feeds_for, residual


def test_every_step_is_timed_and_the_plan_is_left_alone():
    plan = dagnet.compile(residual())
    feeds = feeds_for(plan.source, n=8)
    feeds["x"] = feeds["x"].astype(np.float32)
    state, draws = copy.deepcopy(plan.state), plan.rng.random()
    plan.rng = np.random.default_rng(plan.seed)
    timings = profile_plan(plan, feeds, repeats=2)
    assert list(timings) == [s.name for s in plan.steps]
    backward = {s.name for s in plan.backward_steps}
    for name, t in timings.items():
        assert t["forward"] > 0
        assert (t["backward"] > 0) == (name in backward)
    for key, st in state.items():
        for k, v in st.items():
            assert np.array_equal(plan.state[key][k], v)  # batchnorm statistics untouched
    assert plan.rng.random() == draws
    assert "heat: time per step" in render_plan(plan, timings=timings).source


def test_positional_x_and_y_and_eval_mode():
    plan = dagnet.compile(residual())
    feeds = feeds_for(plan.source, n=4)
    timings = profile_plan(plan, feeds["x"].astype(np.float32), feeds["y"], repeats=1, mode="eval")
    assert all(t["backward"] == 0.0 for t in timings.values())
