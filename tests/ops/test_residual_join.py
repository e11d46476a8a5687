"""The fused residual join, batchnorm + add(skip) + relu (dagnet/ops/fused.py BNAddReLU):
the unfused chain's numbers, float64 gradients, PyTorch's, and the member-by-member path for
joins its one pass does not take."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.gradcheck import gradcheck_plan
from tests.compiler import nets

JOIN = "batchnorm+add+relu"


def block(extra=None):
    """conv - bn - add(skip) - relu - pool - affine; extra="operand" adds a third operand to
    the add (the member-by-member path)."""
    g = Graph("join")
    x = g.input("x", (3, 6, 6))
    y = g.input("y", (), dtype="int64")
    stem = g.relu(g.conv2d(x, 4, 3, pad=1, name="stem"), name="stem_relu")
    h = g.batchnorm(g.conv2d(stem, 4, 3, pad=1, name="conv"), name="bn")
    operands = [h, stem]
    if extra == "operand":
        operands.append(g.tanh(stem, name="other"))
    h = g.relu(g.add(*operands, name="add"), name="relu")
    g.softmax_cross_entropy(g.affine(g.max_pool2d(h, 2, name="pool"), 3, name="fc"), y)
    return g


@pytest.mark.parametrize("extra", [None, "operand"])
def test_fused_join_matches_the_unfused_chain_and_centered_differences(extra):
    g = block(extra)
    feeds = nets.feeds_for(g, n=4, classes=3)
    fused = dagnet.compile(g, dtype="float64", seed=1)
    plain = dagnet.compile(g, dtype="float64", seed=1, fuse=False)
    assert JOIN in {s.pattern for s in fused.steps}
    for _ in range(2):  # again on the same planned buffers
        nets.assert_plans_agree(fused, plain, feeds)
    assert max(gradcheck_plan(fused, feeds, max_entries=8).values()) < 1e-7


def test_fused_join_writes_the_skip_gradient_and_the_output_in_one_pass_each():
    """The one-pass join: out = relu(bn(x) + skip), dskip = dout where out > 0, bitwise the
    same for any thread count."""
    from dagnet import kernels
    from dagnet.ops.fused import BNAddReLU

    op = BNAddReLU()
    attrs = {"members": [{"name": "bn", "op": "batchnorm", "attrs": {}},
                         {"name": "add", "op": "add", "attrs": {}},
                         {"name": "relu", "op": "relu", "attrs": {}}]}
    rng = np.random.default_rng(0)
    x, skip, dout = (rng.standard_normal((4, 3, 5, 5)) for _ in range(3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)

    def run():
        state = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
        z, cache = op.forward([x, gamma, beta, skip], attrs, state=state)
        assert cache[1] is None  # the one-pass path
        return (z, *op.backward(dout, cache, attrs))

    z, dx, dgamma, dbeta, dskip = first = run()
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    xhat = (x - mean) / np.sqrt(var + 1e-5)
    want = np.maximum(gamma.reshape(1, -1, 1, 1) * xhat + beta.reshape(1, -1, 1, 1) + skip, 0)
    np.testing.assert_allclose(z, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(dskip, dout * (want > 0))
    np.testing.assert_allclose(dbeta, dskip.sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(dgamma, (dskip * xhat).sum(axis=(0, 2, 3)), rtol=1e-12)
    for threads in (1, 3):
        kernels_threads = kernels.NUM_THREADS
        try:
            kernels.NUM_THREADS = threads
            for a, b in zip(run(), first):
                np.testing.assert_array_equal(a, b)
        finally:
            kernels.NUM_THREADS = kernels_threads


def test_fused_join_matches_pytorch():
    torch = pytest.importorskip("torch")
    from dagnet.ops.fused import BNAddReLU

    op = BNAddReLU()
    attrs = {"members": [{"name": "bn", "op": "batchnorm", "attrs": {}},
                         {"name": "add", "op": "add", "attrs": {}},
                         {"name": "relu", "op": "relu", "attrs": {}}]}
    rng = np.random.default_rng(1)
    x, skip, dout = (rng.standard_normal((8, 4, 6, 6)).astype(np.float32) for _ in range(3))
    gamma, beta = (rng.standard_normal(4).astype(np.float32) for _ in range(2))
    z, cache = op.forward([x, gamma, beta, skip], attrs, state=None)
    grads = op.backward(dout, cache, attrs)
    t = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, gamma, beta, skip)]
    tz = torch.relu(torch.nn.functional.batch_norm(t[0], None, None, t[1], t[2], training=True,
                                                   eps=1e-5) + t[3])
    tz.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, t):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_a_join_of_three_operands_splits_back_into_its_members(tmp_path):
    """The member records say how many operands the add takes: the runtime's member-by-member
    run (check=True) and the ONNX export, which writes the members, split the step's inputs
    right."""
    pytest.importorskip("onnx")
    from dagnet.onnx import export

    g = block("operand")
    plan = dagnet.compile(g, dtype="float64", seed=1, check=True)
    step = next(s for s in plan.steps if s.pattern == JOIN)
    assert [m.get("arity") for m in step.attrs["members"]] == [None, 3, None]
    model = export(plan, tmp_path / "m.onnx")
    add = next(n for n in model.graph.node if n.op_type == "Add" or n.op_type == "Sum")
    assert len(add.input) == 3


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_join_of_features_matches_the_unfused_chain(mode):
    """affine - batchnorm - add(skip) - relu on (N, D) features (the numpy formulas), in both
    modes (eval normalises with the running statistics)."""
    g = Graph("features")
    x = g.input("x", (6,))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.add(g.batchnorm(g.affine(x, 6, name="fc1"), name="bn"), x, name="add"),
               name="relu")
    scores = g.affine(h, 3, name="fc2")
    g.softmax_cross_entropy(scores, y)
    feeds = nets.feeds_for(g, n=5, classes=3)
    if mode == "train":
        plan = dagnet.compile(g, dtype="float64", seed=2, check=True)
        assert JOIN in {s.pattern for s in plan.steps}
        nets.assert_plans_agree(plan, dagnet.compile(g, dtype="float64", seed=2, fuse=False),
                                feeds)
        return
    trained = dagnet.compile(g, dtype="float64", seed=2)
    trained.loss_and_grads(feeds)  # running statistics away from their start
    a, b = (dagnet.compile(g, dtype="float64", mode="eval", params=trained.params,
                           state=trained.state, outputs=["fc2"], fuse=f) for f in (True, False))
    assert JOIN in {s.pattern for s in a.steps}
    np.testing.assert_allclose(a.forward({"x": feeds["x"]})["fc2"],
                               b.forward({"x": feeds["x"]})["fc2"], rtol=1e-12)
