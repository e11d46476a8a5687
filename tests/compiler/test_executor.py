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


def _fan_in_net():
    """A residual net whose values fan out to convs, a join's skip and a pool (the gradient
    sums the executor does in place), and a join bn + s + s that runs member by member (add's
    backward hands one array to both operands: never summed into in place)."""
    g = dagnet.Graph("fan_in")
    x = g.input("x", (2, 6, 6))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.batchnorm(g.conv2d(x, 4, 3, pad=1), name="stem_bn"))
    c = g.conv2d(h, 4, 3, pad=1, name="c1")
    s = g.conv2d(h, 4, 1, name="s1")
    j = g.relu(g.add(g.batchnorm(c, name="bn1"), h), name="j1")  # the one-pass join
    k = g.relu(g.add(g.batchnorm(g.conv2d(j, 4, 3, pad=1), name="bn2"), s, s), name="j2")
    f = g.concat(g.global_avg_pool(j), g.global_avg_pool(k))
    g.softmax_cross_entropy(g.affine(f, 3), y)
    return g


def test_fan_in_gradients_summed_in_place_are_those_summed_into_new_arrays(monkeypatch):
    from dagnet.interpreter import loss_and_grads as interpret
    from dagnet.runtime import executor

    g = _fan_in_net()
    feeds = {"x": np.random.default_rng(0).standard_normal((5, 2, 6, 6)),
             "y": np.arange(5) % 3}
    runs = {}
    for on in (True, False):
        monkeypatch.setattr(executor, "SUM_IN_PLACE", on)
        plan = dagnet.compile(g, dtype="float64", seed=2)
        assert [s.op_name for s in plan.steps].count("batchnorm+add+relu") == 2
        runs[on] = plan.loss_and_grads(feeds)[1]
        runs[on] = {k: v.copy() for k, v in runs[on].items()}
    state0 = dagnet.compiler.params.init_state(g, "float64")
    _, ref = interpret(g, feeds, plan.params, state0, seed=2)
    for p in runs[True]:
        assert np.array_equal(runs[True][p], runs[False][p]), p
        np.testing.assert_allclose(runs[True][p], ref[p], rtol=1e-9, atol=1e-12, err_msg=p)
