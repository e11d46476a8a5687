"""The compiler's main tests: compiled plans agree with the reference interpreter, fused with
unfused, and with numerical gradients; plans are deterministic."""
import copy

import numpy as np
import pytest

import dagnet
from dagnet.gradcheck import gradcheck_plan, rel_error
from dagnet.interpreter import loss_and_grads as interpret_loss_and_grads
from tests.compiler import nets

NAMES = list(nets.ALL)


def compiled(name, **kw):
    g = nets.ALL[name]()
    return g, dagnet.compile(g, dtype="float64", **kw)


@pytest.mark.parametrize("name", NAMES)
def test_fused_equals_unfused_equals_interpreter(name):
    g = nets.ALL[name]()
    feeds = nets.feeds_for(g)
    fused = dagnet.compile(g, dtype="float64", seed=1)
    unfused = dagnet.compile(g, dtype="float64", seed=1, fuse=False)
    state0 = dagnet.compiler.params.init_state(g, "float64")
    loss_f, grads_f = fused.loss_and_grads(feeds)
    loss_u, grads_u = unfused.loss_and_grads(feeds)
    loss_i, grads_i = interpret_loss_and_grads(g, feeds, fused.params, state0, seed=1)
    assert abs(loss_f - loss_u) < 1e-10 * max(1, abs(loss_u))
    assert abs(loss_f - loss_i) < 1e-10 * max(1, abs(loss_i))
    assert set(grads_f) == set(g.node(p.name).name for p in g.params)
    for p in grads_f:
        np.testing.assert_allclose(grads_f[p], grads_u[p], rtol=1e-10, atol=1e-12, err_msg=p)
        np.testing.assert_allclose(grads_f[p], grads_i[p], rtol=1e-10, atol=1e-12, err_msg=p)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fuse", [True, False])
def test_whole_graph_gradient_check(name, fuse):
    g = nets.ALL[name]()
    plan = dagnet.compile(g, dtype="float64", seed=3, fuse=fuse)
    feeds = nets.feeds_for(g, seed=5)
    errors = gradcheck_plan(plan, feeds, max_entries=40)
    for p, err in errors.items():
        if p in zero_grad_params(g):
            continue  # checked below: rel_error of two ~0 numbers is noise
        # first conv layer weights see the largest finite-difference noise
        tol = 1e-5 if p.startswith(("conv1", "stem")) else 1e-6
        assert err < tol, f"{name}: {p} rel_error {err:.2e}"


def zero_grad_params(g):
    """Biases feeding a batchnorm: their exact gradient is 0 (bn removes the mean)."""
    return {n.inputs[2] for n in g if n.op in ("affine", "conv2d")
            if any(g.node(c).op == "batchnorm" for c, _ in g.consumers(n.name))}


def test_bias_before_batchnorm_has_zero_gradient():
    g = nets.residual()
    plan = dagnet.compile(g, dtype="float64")
    _, grads = plan.loss_and_grads(nets.feeds_for(g))
    assert zero_grad_params(g) == {"stem.b", "b1.conv2.b"}
    for p in zero_grad_params(g):
        assert np.max(np.abs(grads[p])) < 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_fused_plans_actually_fuse(name):
    _, plan = compiled(name)
    _, plain = compiled(name, fuse=False)
    if name in ("three_layer_convnet", "lenet_tiny", "two_layer"):
        assert any(s.fused for s in plan.steps)
        assert len(plan.steps) < len(plain.steps)
    assert not any(s.fused for s in plain.steps)


def test_check_true_passes_on_correct_kernels():
    g = nets.residual()
    dagnet.compile(g, dtype="float64", check=True)
    dagnet.compile(nets.lenet_tiny(), dtype="float32", check=True)


def test_check_true_names_the_broken_group(monkeypatch):
    from dagnet.ops import get_op
    from dagnet.errors import FusionMismatchError

    op = get_op("conv2d+relu+max_pool2d")
    real = type(op).forward

    def broken(self, inputs, attrs, **kw):
        out, cache = real(self, inputs, attrs, **kw)
        return out * 1.01, cache

    monkeypatch.setattr(type(op), "forward", broken)
    with pytest.raises(FusionMismatchError, match=r"conv2\+relu2\+pool2|conv1\+relu1\+pool1"):
        dagnet.compile(nets.lenet_tiny(), dtype="float64", check=True)


def test_same_graph_compiles_to_identical_plans():
    a = dagnet.compile(nets.residual(), seed=7)
    b = dagnet.compile(nets.residual(), seed=7)
    assert [(s.name, s.op_name, s.inputs, s.needs, s.inplace, s.buffer) for s in a.steps] == \
           [(s.name, s.op_name, s.inputs, s.needs, s.inplace, s.buffer) for s in b.steps]
    assert a.describe() == b.describe()
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])


def test_initial_softmax_loss_is_log_c_and_rises_with_reg():
    g = nets.two_layer(d=20, hidden=30, classes=10, scale=1e-3)
    plan = dagnet.compile(g, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 20)), rng.integers(0, 10, 50)
    loss0, _ = plan.loss_and_grads(x, y)
    assert abs(loss0 - np.log(10)) < 0.05
    losses = [plan.loss_and_grads(x, y, reg=r)[0] for r in (0.0, 1e2, 1e3)]
    assert losses[0] < losses[1] < losses[2]


def test_reg_gradient_is_numerically_right():
    g = nets.two_layer()
    plan = dagnet.compile(g, dtype="float64")
    feeds = nets.feeds_for(g)
    reg = 0.3
    _, grads = plan.loss_and_grads(feeds, reg=reg)
    w = plan.params["fc1.w"]
    num = dagnet.numerical_gradient(lambda: plan.loss_and_grads(feeds, reg=reg)[0], w)
    assert rel_error(num, grads["fc1.w"]) < 1e-7
    assert "fc1.b" not in plan.decayed


def test_first_conv_input_gradient_is_skipped():
    _, plan = compiled("lenet_tiny")
    first = plan.steps[0]
    assert first.inputs[0] == "x" and first.needs[0] is False
    assert "no grad: x" in plan.describe()


def test_wrt_inputs_gives_input_gradient():
    g = nets.two_layer()
    plan = dagnet.compile(g, dtype="float64", wrt=["x"])
    feeds = nets.feeds_for(g)
    _, grads = plan.loss_and_grads(feeds)
    x = feeds["x"]
    num = dagnet.numerical_gradient(lambda: plan.loss_and_grads(feeds)[0], x)
    assert rel_error(num, grads["x"]) < 1e-7


def test_shared_param_gradients_are_summed():
    g = dagnet.Graph("shared")
    x = g.input("x", (4,))
    y = g.input("y", (), dtype="int64")
    h1 = g.affine(x, 4, name="a")
    h2 = g.affine(g.tanh(h1), 4, name="b", w=g.node("a.w"), b=g.node("a.b"))
    g.softmax_cross_entropy(h2, y)
    plan = dagnet.compile(g, dtype="float64")
    feeds = nets.feeds_for(g)
    _, grads = plan.loss_and_grads(feeds)
    assert set(grads) == {"a.w", "a.b"}
    errors = gradcheck_plan(plan, feeds)
    assert max(errors.values()) < 1e-7


def test_add_of_the_same_value_keeps_both_edges():
    g = dagnet.Graph("double")
    x = g.input("x", (3,))
    y = g.input("y", (), dtype="int64")
    h = g.affine(x, 3, name="fc")
    s = g.add(h, h, name="twice")
    g.softmax_cross_entropy(s, y)
    assert g.nx.number_of_edges("fc", "twice") == 2
    plan = dagnet.compile(g, dtype="float64")
    errors = gradcheck_plan(plan, nets.feeds_for(g))
    assert max(errors.values()) < 1e-7


def test_pruned_nodes_are_listed_and_not_run():
    g = nets.two_layer()
    g.sigmoid("relu1", name="unused")
    plan = dagnet.compile(g)
    assert plan.graph.meta["pruned"] == ["unused"]
    assert "unused" not in [s.name for s in plan.steps]
    assert "pruned: unused" in plan.describe()


def test_eval_plan_forward_and_batchnorm_running_stats():
    g = nets.fc_bn_dropout()
    train = dagnet.compile(g, dtype="float64")
    feeds = nets.feeds_for(g, n=16)
    before = copy.deepcopy(train.state["bn1"])
    train.loss_and_grads(feeds)
    assert not np.allclose(before["running_mean"], train.state["bn1"]["running_mean"])
    ev = dagnet.compile(g, mode="eval", dtype="float64", params=train.params, state=train.state)
    out1 = ev.forward(feeds)
    out2 = ev.forward(feeds)
    np.testing.assert_array_equal(out1["loss"], out2["loss"])  # eval: no dropout, frozen bn
    with pytest.raises(dagnet.DagnetError, match="mode='eval'"):
        ev.backward()


def test_predict_returns_scores_in_batches():
    g = nets.lenet_tiny()
    plan = dagnet.compile(g, dtype="float64")
    x = nets.feeds_for(g, n=10)["x"]
    scores = plan.predict(x, batch_size=3)
    assert scores.shape == (10, 3)
    np.testing.assert_allclose(scores[:3], plan.predict(x[:3]), rtol=1e-12)


def test_requested_intermediate_output_and_fused_inner_value():
    g = nets.lenet_tiny()
    plan = dagnet.compile(g)
    with pytest.raises(dagnet.DagnetError, match="inside the fused step"):
        plan.forward(nets.feeds_for(g), outputs=["relu1"])
    plan2 = dagnet.compile(g, outputs=["loss", "relu1"])
    out = plan2.forward(nets.feeds_for(g), outputs=["relu1", "loss"])
    assert out["relu1"].shape == (4, 3, 12, 12)


def test_feed_errors_are_clear():
    g = nets.lenet_tiny()
    plan = dagnet.compile(g)
    rng = np.random.default_rng(0)
    with pytest.raises(dagnet.errors.FeedError, match=r"expected shape \(N, 1, 14, 14\), got \(2, 14, 14\)"):
        plan.loss_and_grads(rng.standard_normal((2, 14, 14)), np.zeros(2, int))
    with pytest.raises(dagnet.errors.FeedError, match="expected floats"):
        plan.loss_and_grads(np.zeros((2, 1, 14, 14), np.uint8), np.zeros(2, int))
    with pytest.raises(dagnet.errors.FeedError, match="batch size"):
        plan.loss_and_grads(rng.standard_normal((2, 1, 14, 14)), np.zeros(3, int))


def test_describe_and_peak_bytes():
    g = nets.lenet_tiny()
    plan = dagnet.compile(g)
    text = plan.describe()
    assert "conv1+relu1+pool1" in text and "conv2d+relu+max_pool2d" in text
    assert plan.peak_bytes(64) > plan.peak_bytes(1) > 0
    ev = dagnet.compile(g, mode="eval")
    assert ev.peak_bytes(64) <= ev.peak_bytes(64, reuse=False)
    assert ev.peak_bytes(64) <= plan.peak_bytes(64)


def test_describe_names_the_kernel_a_fused_conv_relu_pool_runs():
    from dagnet.models import lenet

    from dagnet.ops.conv import takes_direct
    from dagnet.ops.fused import ConvReLUPool

    plan = dagnet.compile(lenet())
    rows = {r.split()[1]: r for r in plan.describe().splitlines()[1:-1]}
    # K = 25, F = 20: the direct kernels where they are built, else the columns
    conv1 = ("direct: dense backward" if takes_direct((1, 28, 28), (20, 1, 5, 5), 1, 0)
             else "im2col columns: dense backward")
    assert conv1 in rows["conv1+relu1+pool1"]
    # K = 500, F = 50: rows where the CPU's row kernel pays (AVX2 or AVX-512), else columns
    conv2 = ("patch rows: sparse backward" if ConvReLUPool().uses_rows(plan.params["conv2.w"].shape)
             else "im2col columns: dense backward")
    assert conv2 in rows["conv2+relu2+pool2"]
    assert "columns" not in rows["fc1+relu3"] and "rows" not in rows["fc1+relu3"]


def test_profile_times_every_step_and_changes_nothing():
    g = nets.fc_bn_dropout()
    plan = dagnet.compile(g, dtype="float64")
    feeds = nets.feeds_for(g, n=8)
    state0 = copy.deepcopy(plan.state)
    rng0 = plan.rng.bit_generator.state
    t = plan.profile(feeds, repeats=2)
    assert set(t) == {s.name for s in plan.steps}
    assert all(v["forward"] > 0 for v in t.values())
    assert all(t[s.name]["backward"] > 0 for s in plan.backward_steps)
    assert plan.rng.bit_generator.state == rng0
    for n in state0:
        for k in state0[n]:
            assert np.array_equal(state0[n][k], plan.state[n][k])
