"""Runs of batch-1 split convs bound as one call (runtime/calls.py chain_splits, direct_split.pxi
SplitChain): bitwise the numbers of the convs called one by one, chained only where every conv
after the first reads conv outputs (the arena's fixed arrays), following params changed."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph, kernels
from dagnet.models import lenet, lenet_bn, resnet_small
from dagnet.ops import direct
from dagnet.runtime import calls
from tests.runtime.test_program import _both, _bound, _close, _eval_plan

pytestmark = pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")


def _programs(plan, feeds, outputs, monkeypatch):
    """(chained outputs, unchained outputs, the chained program's bound calls) at two threads."""
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)  # a batch of 1 < 2 threads: split convs
    got = {}
    for chain in (False, True):
        monkeypatch.setattr(calls, "CHAIN", chain)
        plan.executor.programs.clear()
        got[chain] = plan.forward(feeds, mode="eval", outputs=outputs)
    (prog,) = plan.executor.programs.values()
    return got[True], got[False], prog.bound[len(next(iter(feeds.values())))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resnet_small_chained_is_bitwise_the_convs_one_by_one(dtype, monkeypatch):
    plan = _eval_plan(resnet_small(), dtype)
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(dtype)
    outs = ["scores", "block1.add+block1.relu2"]  # an intermediate conv value asked for too
    chained, alone, bound = _programs(plan, {"x": x}, outs, monkeypatch)
    for k in outs:
        np.testing.assert_array_equal(chained[k], alone[k])
    # the ten convs, the head (its means averaged by the convs' items) and the fully
    # connected layer in one call
    assert [ins.kind for _, ins in bound] == ["conv"]
    _close(*_both(plan, {"x": x}, outputs=outs), 1e-12 if dtype == "float64" else 2e-5)
    for _ in range(2):  # new inputs into the same binding
        x = np.random.default_rng(_ + 1).standard_normal((1, 1, 28, 28)).astype(dtype)
        _close(*_both(plan, {"x": x}, outputs=outs), 1e-12 if dtype == "float64" else 2e-5)


@pytest.mark.parametrize("build", [lenet, lenet_bn])
@pytest.mark.parametrize("link", [False, True])
def test_pooled_convs_chained_are_bitwise_the_convs_one_by_one(build, link, monkeypatch):
    # conv + relu + pool twice: the second conv's planes filled from the first's pooled output
    # by the first's items (link) or by a loop of its own
    monkeypatch.setattr(calls, "LINK", link)
    plan = _eval_plan(build(), "float32")
    x = np.random.default_rng(3).standard_normal((1, 1, 28, 28)).astype(np.float32)
    chained, alone, bound = _programs(plan, {"x": x}, ["scores"], monkeypatch)
    np.testing.assert_array_equal(chained["scores"], alone["scores"])
    assert [ins.kind for _, ins in bound][0] == "conv" and len(bound) < len(
        plan.executor.programs[("scores",)].code)


def test_a_chain_follows_params_changed_in_place(monkeypatch):
    plan = _eval_plan(resnet_small())
    x = np.random.default_rng(1).standard_normal((1, 1, 28, 28))
    first, _, _ = _programs(plan, {"x": x}, ["scores"], monkeypatch)
    plan.params["block3.conv2.w"] *= 1.5  # a conv inside the chain
    plan.state["block4.bn1"]["running_mean"] += 0.3
    got, want = _both(plan, {"x": x}, outputs=["scores"])
    _close(got, want, 1e-12)
    assert not np.allclose(got["scores"], first["scores"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_head_in_the_chain_is_bitwise_the_head_alone(dtype, monkeypatch):
    # the means (gap.h) and affine_small's numbers in the chain's call, or in calls of their own
    plan = _eval_plan(resnet_small(), dtype)
    x = np.random.default_rng(4).standard_normal((1, 1, 28, 28)).astype(dtype)
    outs = ["scores", "features"]
    got = {}
    for head in (False, True):
        monkeypatch.setattr(calls, "HEAD", head)
        got[head], _, bound = _programs(plan, {"x": x}, outs, monkeypatch)
        assert [ins.kind for _, ins in bound] == (["conv"] if head else ["conv", "gap", "affine"])
    for k in outs:
        np.testing.assert_array_equal(got[True][k], got[False][k])


def test_the_head_follows_its_params_and_names_them_in_errors(monkeypatch):
    plan = _eval_plan(resnet_small())
    x = np.random.default_rng(6).standard_normal((1, 1, 28, 28))
    first, _, bound = _programs(plan, {"x": x}, ["scores"], monkeypatch)
    assert len(bound) == 1
    plan.params["scores.w"] *= -2.0  # in place: read on every call
    plan.params["scores.b"] = plan.params["scores.b"] + 1.0  # replaced
    got, want = _both(plan, {"x": x}, outputs=["scores"])
    _close(got, want, 1e-12)
    assert not np.allclose(got["scores"], first["scores"])
    w = plan.params["scores.w"]
    plan.params["scores.w"] = np.asfortranarray(w)  # not C order: the affine's own call
    _close(*_both(plan, {"x": x}, outputs=["scores"]), 1e-12)
    plan.params["scores.w"] = w[:-1]  # a wrong shape: the affine's error, naming its step
    with pytest.raises(dagnet.DagnetError, match="scores"):
        plan.forward({"x": x}, mode="eval", outputs=["scores"])


def _broken():
    """conv -> tanh (a step: its value no arena array of a conv) -> conv -> conv."""
    g = Graph("broken")
    x = g.input("x", (3, 8, 8))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.conv2d(x, 4, 3, pad=1, name="c1"), name="r1")
    h = g.tanh(h, name="t")
    h = g.relu(g.conv2d(h, 4, 3, pad=1, name="c2"), name="r2")
    h = g.relu(g.conv2d(h, 4, 3, pad=1, name="c3"), name="r3")
    g.softmax_cross_entropy(g.affine(h, 3, name="fc"), y)
    return g


def test_a_conv_reading_a_step_starts_a_new_chain(monkeypatch):
    plan = dagnet.compile(_broken(), dtype="float64", mode="eval", seed=0)
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8))
    chained, alone, bound = _programs(plan, {"x": x}, ["fc"], monkeypatch)
    np.testing.assert_array_equal(chained["fc"], alone["fc"])
    kinds = [ins.kind for _, ins in bound]
    assert kinds == ["conv", "step", "conv", "affine"]  # c1; tanh; c2 and c3 chained
    assert sum(ins.kind == "conv" for ins in plan.executor.programs[("fc",)].code) == 3


def test_split_chain_checks_its_arrays():
    rng = np.random.default_rng(5)
    w, b = rng.standard_normal((3, 3, 3, 3)), rng.standard_normal(3)
    c1, out1 = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), False, True, None)
    c2, out2 = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), True, True, None)
    x = rng.standard_normal((1, 3, 6, 6))
    chain = direct._ext.SplitChain([c1, c2], [(out1, x)])  # c2: c1's output + x
    chain(x)
    want1, want2 = np.empty_like(out1), np.empty_like(out2)
    d1, o1 = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), False, True, None)
    d2, o2 = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), True, True, None)
    d1(x)
    want1[...] = o1
    d2(want1, x)
    want2[...] = o2
    np.testing.assert_array_equal(out1, want1)
    np.testing.assert_array_equal(out2, want2)
    with pytest.raises(ValueError, match="SplitChain"):
        direct._ext.SplitChain([c1, c2], [])
    with pytest.raises(ValueError, match="residual"):  # c2 needs one
        direct._ext.SplitChain([c1, c2], [(out1, None)])
    with pytest.raises(ValueError, match="SplitConv"):  # the first conv's input, checked
        chain(x[..., :5])
    with pytest.raises(ValueError, match="means"):  # 3 channels from column 2 of 4
        direct._ext.SplitChain([c1, c2], [(out1, x)], True, (np.empty((1, 4)), [(1, 2)]))
    with pytest.raises(ValueError, match="affine"):
        direct._ext.SplitChain([c1, c2], [(out1, x)], True, None, (np.empty((1, 3)), np.empty(3), False))


def test_split_chain_head_means_and_affine():
    rng = np.random.default_rng(7)
    w, b = rng.standard_normal((3, 3, 3, 3)), rng.standard_normal(3)
    fw, fb = rng.standard_normal((6, 4)), rng.standard_normal(4)
    c1, out1 = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), False, True, None)
    c2, out2 = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), True, True, None)
    x = rng.standard_normal((1, 3, 6, 6))
    feats, scores = np.empty((1, 6)), np.empty((1, 4))
    chain = direct._ext.SplitChain([c1, c2], [(out1, x)], True, (feats, [(1, 0), (0, 3)]),
                                   (feats, scores, True))
    assert chain(x, None, fw, fb)
    want = np.concatenate([out2.mean(axis=(2, 3)), out1.mean(axis=(2, 3))], axis=1)
    np.testing.assert_allclose(feats, want, rtol=1e-14)
    np.testing.assert_allclose(scores, np.maximum(feats @ fw + fb, 0), rtol=1e-13, atol=1e-15)
    assert not chain(x, None, fw[:5], fb)  # params that do not fit: the affine is left undone
    assert not chain(x, None, fw.astype(np.float32), fb)
