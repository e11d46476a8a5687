"""The one executor: a plan's runs go through it, its hooks are the extension point (the
profiler, the NaN locator and the fusion check are subclasses), and it keeps the run's state
off the plan."""
import copy

import numpy as np
import pytest

import dagnet
from dagnet import runtime
from dagnet.compiler import check_fusion
from dagnet.errors import FusionMismatchError
from dagnet.ops import get_op
from dagnet.runtime import Executor
from tests.compiler import nets


def test_running_leaves_the_plan_as_compiled():
    """forward, backward, profile and the NaN locator change no attribute of the plan (the
    caches and buffers are the executor's)."""
    g = nets.fc_bn_dropout()
    plan = dagnet.compile(g, dtype="float64")
    before = dict(vars(plan))
    feeds = nets.feeds_for(g, n=6)
    plan.loss_and_grads(feeds)
    assert plan.executor.batch == 6 and plan.executor.caches
    plan.predict(feeds["x"])
    plan.profile(feeds, repeats=1)
    runtime.locate_nonfinite(plan, feeds)
    assert vars(plan).keys() == before.keys()
    assert all(vars(plan)[k] is v for k, v in before.items())


class Shapes(Executor):
    """fx's ShapeProp as an executor hook: the shape of every value a run makes."""

    def __init__(self, plan):
        super().__init__(plan, fresh=True)
        self.shapes = {}

    def step_forward(self, step, ins, mode, out=None, workspace=None):
        y, cache = super().step_forward(step, ins, mode, out, workspace)
        self.shapes[step.name] = y.shape[1:]
        return y, cache


def test_a_subclass_hook_sees_every_step():
    g = nets.lenet_tiny()
    plan = dagnet.compile(g, dtype="float64")
    shapes = Shapes(plan)
    values = shapes.forward(nets.feeds_for(g, n=3), "eval")
    assert shapes.shapes == {s.name: s.shape for s in plan.steps}
    assert set(values) >= set(plan.output_values)
    assert not shapes.caches and not shapes.buffers  # eval mode, fresh arrays
    with pytest.raises(dagnet.errors.FeedError, match="needs a train-mode forward"):
        shapes.backward({"loss": np.ones(())})


def test_fresh_arrays_when_planned_buffers_are_off():
    g = nets.lenet_tiny()
    plan = dagnet.compile(g, dtype="float64")
    plan.use_planned_buffers = False
    plan.loss_and_grads(nets.feeds_for(g))
    assert plan.executor.buffers == {} and plan.executor.batch == 0


def test_the_fusion_check_finds_a_wrong_input_gradient_inside_a_fused_step(monkeypatch):
    """Each fused step's gradients are compared with its chain's, the input's too."""
    op = get_op("conv2d+relu+max_pool2d")
    real = type(op).backward

    def broken(self, dout, cache, attrs, needs=None):
        dx, dw, db = real(self, dout, cache, attrs, needs)
        return (None if dx is None else dx * 1.01), dw, db

    monkeypatch.setattr(type(op), "backward", broken)
    with pytest.raises(FusionMismatchError, match=r"fused group conv2\+relu2\+pool2 \(pattern "
                                                  r"conv2d\+relu\+max_pool2d\): gradient of "
                                                  r"'conv1\+relu1\+pool1' differs"):
        dagnet.compile(nets.lenet_tiny(), dtype="float64", check=True)


def test_the_fusion_check_leaves_state_and_rng_alone():
    plan = dagnet.compile(nets.residual(), dtype="float64")
    state, rng = copy.deepcopy(plan.state), copy.deepcopy(plan.rng.bit_generator.state)
    check_fusion(plan)
    assert plan.rng.bit_generator.state == rng
    for node, st in state.items():
        for k, v in st.items():
            np.testing.assert_array_equal(plan.state[node][k], v)
