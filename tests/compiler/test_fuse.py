"""Fusion pass: structural tests (before() graph -> expected() graph) and numeric ones."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.compiler import fuse, infer_shapes, validate
from dagnet.ops.fusion import FusedOp
from tests.compiler import nets


def before():
    g = Graph("net")
    x = g.input("x", (1, 8, 8))
    h = g.conv2d(x, 2, 3, pad=1, name="conv1")
    h = g.relu(h, name="relu1")
    h = g.max_pool2d(h, 2, name="pool1")
    h = g.affine(h, 5, name="fc1")
    g.relu(h, name="relu2")
    return g


def expected():
    g = Graph("net")
    g.input("x", (1, 8, 8))
    g.param("conv1.w", (2, 1, 3, 3), init="he", fan_in=9, fan_out=18)
    g.param("conv1.b", (2,), init="zeros", decay=False)
    g.add_node("conv2d+relu+max_pool2d", ["x", "conv1.w", "conv1.b"], {"members": [
        {"name": "conv1", "op": "conv2d", "attrs": {"stride": 1, "pad": 1}},
        {"name": "relu1", "op": "relu", "attrs": {}},
        {"name": "pool1", "op": "max_pool2d", "attrs": {"size": 2, "stride": 2, "pad": 0}},
    ]}, name="conv1+relu1+pool1")
    g.param("fc1.w", (32, 5), init="he", fan_in=32, fan_out=5)
    g.param("fc1.b", (5,), init="zeros", decay=False)
    g.add_node("affine+relu", ["conv1+relu1+pool1", "fc1.w", "fc1.b"], {"members": [
        {"name": "fc1", "op": "affine", "attrs": {}},
        {"name": "relu2", "op": "relu", "attrs": {}},
    ]}, name="fc1+relu2")
    return g


def run_fuse(g, **kw):
    return fuse(infer_shapes(validate(g)), **kw)


def test_structural_fusion():
    got = run_fuse(before())
    want = expected()
    assert [(n.name, n.op, n.inputs, n.attrs) for n in got] == \
           [(n.name, n.op, n.inputs, n.attrs) for n in want]
    assert got.node("conv1+relu1+pool1").meta["fused_group"] == ["conv1", "relu1", "pool1"]
    assert got.node("conv1+relu1+pool1").meta["pattern"] == "conv2d+relu+max_pool2d"
    assert got.outputs == ["fc1+relu2"]
    assert got.meta["fusion"]["aliases"]["relu2"] == "fc1+relu2"


def test_fuse_is_pure():
    g = infer_shapes(before())
    names = [n.name for n in g]
    fuse(g)
    assert [n.name for n in g] == names and "fusion" not in g.meta


def test_second_user_blocks_fusion_and_is_reported():
    g = before()
    g.sigmoid("conv1", name="side")  # conv1's output now has two users
    g.outputs = ["relu2", "side"]
    got = run_fuse(g)
    assert "conv1" in got and "relu1+pool1" not in got
    misses = got.meta["fusion"]["near_misses"]
    miss = next(m for m in misses if m["nodes"][0] == "conv1")
    assert "'conv1' has 2 users" in miss["reason"] and "side" in miss["reason"]
    assert miss["pattern"] == "conv2d+relu+max_pool2d"


def test_requested_intermediate_output_blocks_fusion():
    g = before()
    g.outputs = ["relu2", "relu1"]
    got = run_fuse(g)
    fused_names = [f["node"] for f in got.meta["fusion"]["fused"]]
    assert "conv1+relu1+pool1" not in fused_names
    # the shorter chain still fuses: a group's last member may be an output
    assert "conv1+relu1" in fused_names and got.meta["fusion"]["aliases"]["relu1"] == "conv1+relu1"
    assert got.outputs == ["fc1+relu2", "conv1+relu1"]
    reasons = [m["reason"] for m in got.meta["fusion"]["near_misses"]]
    assert any("'relu1' is a requested output" in r for r in reasons)


def test_mode_forbids_eval_only_pattern():
    g = Graph("cb")
    x = g.input("x", (1, 6, 6))
    h = g.batchnorm(g.conv2d(x, 2, 3, name="conv"), name="bn")
    g.sigmoid(h, name="out")
    train = run_fuse(g, mode="train")
    # conv2d+batchnorm may not fire in train; the generic grouping takes batchnorm+sigmoid
    assert "conv" in train and "bn+out" in train
    assert train.node("bn+out").meta["pattern"] == "elementwise(batchnorm+sigmoid)"
    miss = train.meta["fusion"]["near_misses"][0]
    assert miss["pattern"] == "conv2d+batchnorm" and "mode 'train' forbids it" in miss["reason"]
    ev = run_fuse(g, mode="eval")
    assert "conv+bn" in ev


def test_eval_folded_conv_bn_matches_unfused():
    g = Graph("cb")
    x = g.input("x", (2, 6, 6))
    h = g.batchnorm(g.conv2d(x, 3, 3, name="conv"), name="bn")
    g.sigmoid(h, name="out")
    rng = np.random.default_rng(0)
    state = {"bn": {"running_mean": rng.standard_normal(3), "running_var": rng.uniform(0.5, 2, 3)}}
    feeds = {"x": rng.standard_normal((4, 2, 6, 6))}
    a = dagnet.compile(g, mode="eval", dtype="float64", state=state)
    b = dagnet.compile(g, mode="eval", dtype="float64", state=state, fuse=False, params=a.params)
    assert any(s.pattern == "conv2d+batchnorm" for s in a.steps)
    np.testing.assert_allclose(a.forward(feeds)["out"], b.forward(feeds)["out"], rtol=1e-12)


@pytest.mark.parametrize("name", ["lenet_tiny", "three_layer_convnet", "residual", "fc_bn_dropout"])
def test_numeric_fusion_same_outputs_and_gradients(name):
    g = nets.ALL[name]()
    feeds = nets.feeds_for(g)
    a = dagnet.compile(g, dtype="float64")
    b = dagnet.compile(g, dtype="float64", fuse=False)
    fused_away = {m for s in a.steps if s.fused for m in s.members}
    assert fused_away, "nothing fused"
    assert not fused_away & {s.name for s in a.steps}
    nets.assert_plans_agree(a, b, feeds)


def test_patterns_are_read_off_the_registered_fused_ops():
    """A fused op declares its chain and modes once; the pattern table is derived from them."""
    from dagnet.compiler import PATTERNS
    from dagnet.ops import registered_ops

    fused = {op.name: op for op in registered_ops().values() if isinstance(op, FusedOp) and op.chain}
    assert len(PATTERNS) == len(fused) == 8
    for p in PATTERNS:
        op = fused[p.name]
        assert (p.ops, p.modes, p.mode_reason) == (op.chain, op.modes, op.mode_reason)
    assert [len(p.ops) for p in PATTERNS] == sorted((len(p.ops) for p in PATTERNS), reverse=True)
    assert [p.name for p in PATTERNS if p.modes != ("train", "eval")] == ["conv2d+batchnorm"]


def test_a_new_fused_op_is_a_pattern_without_touching_the_compiler(monkeypatch):
    """The recipe for a fusion pattern: register a FusedOp with its chain and kernels."""
    from dagnet.ops import base
    from dagnet.ops.dense import affine_backward, affine_forward

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # forgotten after the test

    @base.register
    class AffineTanh(FusedOp):
        chain = ("affine", "tanh")
        saves = frozenset({"input", "output"})

        def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
            y, acache = affine_forward(*inputs, out=out)
            return np.tanh(y, out=y), (acache, y)

        def backward(self, dout, cache, attrs, needs=None):
            acache, y = cache
            return affine_backward(dout * (1 - y * y), acache, need_dx=needs is None or needs[0])

    g = Graph("t")
    x, y = g.input("x", (5,)), g.input("y", (), dtype="int64")
    g.softmax_cross_entropy(g.affine(g.tanh(g.affine(x, 6, name="fc1"), name="t1"), 3, name="fc2"), y)
    plan = dagnet.compile(g, dtype="float64", check=True)  # the fused kernel against its chain
    assert [s.pattern for s in plan.steps if s.fused] == ["affine+tanh"]
    nets.assert_plans_agree(plan, dagnet.compile(g, dtype="float64", fuse=False), nets.feeds_for(g))


def test_a_fused_op_that_leaves_out_a_mode_says_why():
    with pytest.raises(ValueError, match="mode_reason"):
        class EvalOnly(FusedOp):  # noqa: F841 - defining it is the test
            chain = ("affine", "tanh")
            modes = ("eval",)


def test_members_split_a_fused_steps_inputs_back_into_its_chain():
    from dagnet.ops import get_op

    op = get_op("conv2d+batchnorm+relu+max_pool2d")
    attrs = {"members": [{"name": n, "op": o, "attrs": {}} for n, o in zip("cbrp", op.chain)]}
    got = [(m.name, m.op.name, m.inputs) for m in op.members(["x", "w", "b", "g", "beta"], attrs)]
    assert got == [("c", "conv2d", ["x", "w", "b"]), ("b", "batchnorm", [None, "g", "beta"]),
                   ("r", "relu", [None]), ("p", "max_pool2d", [None])]
