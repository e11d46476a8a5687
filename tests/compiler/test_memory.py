"""Memory pass: liveness, buffer reuse, and in-place runs that can never corrupt gradients."""
import itertools

import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.ops import get_op
from tests.compiler import nets

ELEMENTWISE = ["relu", "leaky_relu", "sigmoid", "tanh", "elu"]
PRODUCERS = ["affine", "batchnorm", "dropout", "add", "flatten", "relu", "sigmoid", "tanh",
             "elu", "leaky_relu"]


def chain(producer, consumer):
    g = Graph(f"{producer}-{consumer}")
    x = g.input("x", (6,))
    y = g.input("y", (), dtype="int64")
    h = g.affine(x, 6, name="fc0")
    if producer == "affine":
        p = g.affine(h, 6, name="p")
    elif producer == "batchnorm":
        p = g.batchnorm(h, name="p")
    elif producer == "dropout":
        p = g.dropout(h, p=0.25, name="p")
    elif producer == "add":
        p = g.add(h, g.tanh(h, name="t"), name="p")
    elif producer == "flatten":
        p = g.flatten(h, name="p")
    else:
        p = g.op(producer, h, name="p")
    c = g.op(consumer, p, name="c")
    g.softmax_cross_entropy(g.affine(c, 3, name="fc1"), y)
    return g


def grads(g, inplace, feeds):
    plan = dagnet.compile(g, dtype="float64", inplace=inplace, fuse=False, seed=2)
    loss, gr = plan.loss_and_grads(feeds)
    return plan, loss, gr


@pytest.mark.parametrize("producer,consumer", list(itertools.product(PRODUCERS, ELEMENTWISE)))
def test_inplace_never_changes_numbers(producer, consumer):
    g = chain(producer, consumer)
    feeds = nets.feeds_for(g, n=5)
    plan, loss_a, ga = grads(g, True, feeds)
    _, loss_b, gb = grads(g, False, feeds)
    assert loss_a == loss_b
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k], err_msg=k)
    step = next(s for s in plan.steps if s.name == "c")
    # views (flatten, dropout) and outputs that backward reads are never overwritten
    if producer in ("flatten", "dropout") or "output" in get_op(producer).saves:
        assert not step.inplace
    if producer in ("add", "affine"):
        assert step.inplace == ("input" not in get_op(consumer).saves)


def test_a_lying_op_would_be_caught(monkeypatch):
    """If tanh hid that its backward reads its output, sigmoid would run in place over it and
    the gradients would change: the comparison above is able to fail."""
    g = chain("tanh", "sigmoid")
    feeds = nets.feeds_for(g, n=5)
    monkeypatch.setattr(type(get_op("tanh")), "saves", frozenset())
    plan, _, ga = grads(g, True, feeds)
    _, _, gb = grads(g, False, feeds)
    assert next(s for s in plan.steps if s.name == "c").inplace
    assert any(not np.array_equal(ga[k], gb[k]) for k in ga)


def test_eval_mode_allows_more_inplace_and_reuses_buffers():
    g = chain("sigmoid", "relu")
    train = dagnet.compile(g, fuse=False)
    ev = dagnet.compile(g, fuse=False, mode="eval")
    assert not next(s for s in train.steps if s.name == "c").inplace
    assert next(s for s in ev.steps if s.name == "c").inplace
    assert ev.peak_bytes(32) < ev.peak_bytes(32, reuse=False)


def test_eval_buffers_are_reused_for_a_convnet():
    g = nets.lenet_tiny()
    ev = dagnet.compile(g, mode="eval", fuse=False)
    buffers = [s.buffer for s in ev.steps if s.buffer >= 0]
    assert len(set(buffers)) < len(buffers)
    ratio = ev.peak_bytes(64, workspace=False) / ev.peak_bytes(64, reuse=False, workspace=False)
    assert ratio < 0.5


def test_liveness_in_train_mode_keeps_what_backward_reads():
    g = nets.two_layer()
    plan = dagnet.compile(g, fuse=False)
    live = {n.name: n.meta["live"] for n in plan.graph if "live" in n.meta}
    S = len(plan.steps)
    # fc1's output feeds relu1 only, and relu reads its output, not its input: dies in forward
    assert live["fc1"][1] < S
    # relu1's output is read by fc2's backward: lives into the backward half
    assert live["relu1"][1] >= S
def test_batchnorm_keeps_its_input_for_backward_not_a_normalised_copy():
    """batchnorm's backward recomputes xhat from x: the memory plan keeps x (the conv's
    output) alive until batchnorm's backward, and counts no kept scratch for it; fused after a
    conv, the step's kept scratch is the conv output it reads, as many values as x."""
    g = Graph("conv-bn")
    x = g.input("x", (2, 6, 6))
    y = g.input("y", (), dtype="int64")
    h = g.batchnorm(g.conv2d(x, 3, 3, pad=1, name="conv"), name="bn")
    g.softmax_cross_entropy(g.affine(g.relu(h, name="relu"), 3, name="fc"), y)
    plan = dagnet.compile(g, fuse=False)
    S = len(plan.steps)
    t_bn = [s.name for s in plan.steps].index("bn")
    assert plan.graph.node("conv").meta["live"][1] >= 2 * S - 1 - t_bn
    assert get_op("batchnorm").workspace([(3, 6, 6), (3,), (3,)], (3, 6, 6), {}).saved == 0
    fused = get_op("conv2d+batchnorm+relu")
    members = [{"name": "conv", "op": "conv2d", "attrs": {"filters": 3, "kernel": 3, "pad": 1}},
               {"name": "bn", "op": "batchnorm", "attrs": {}},
               {"name": "relu", "op": "relu", "attrs": {}}]
    w = fused.workspace([(2, 6, 6), (3, 2, 3, 3), (3,), (3,), (3,)], (3, 6, 6),
                        {"members": members})
    conv_kept = get_op("conv2d").workspace([(2, 6, 6), (3, 2, 3, 3), (3,)], (3, 6, 6),
                                           members[0]["attrs"]).saved
    assert w.saved == conv_kept + 3 * 6 * 6


