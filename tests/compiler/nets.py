"""Tiny graphs for compiler tests, built with the builder API (float64-friendly sizes)."""
from __future__ import annotations

import numpy as np

import dagnet
from dagnet import Graph


def two_layer(d=6, hidden=5, classes=4, scale=None):
    g = Graph("two_layer")
    x = g.input("x", (d,))
    y = g.input("y", (), dtype="int64")
    init = "gaussian" if scale else "he"
    h = g.relu(g.affine(x, hidden, init=init, weight_scale=scale, name="fc1"), name="relu1")
    s = g.affine(h, classes, init=init, weight_scale=scale, name="fc2")
    g.softmax_cross_entropy(s, y)
    return g


def fc_bn_dropout(d=6, classes=3):
    g = Graph("fc_bn_dropout")
    x = g.input("x", (d,))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.batchnorm(g.affine(x, 7, name="fc1"), name="bn1"), name="relu1")
    h = g.dropout(h, p=0.3, name="drop1")
    h = g.relu(g.affine(h, 5, name="fc2"), name="relu2")
    s = g.affine(h, classes, name="fc3")
    g.softmax_cross_entropy(s, y)
    return g


def three_layer_convnet(c=2, hw=8, filters=3, hidden=6, classes=4):
    g = Graph("three_layer_convnet")
    x = g.input("x", (c, hw, hw))
    y = g.input("y", (), dtype="int64")
    h = g.conv2d(x, filters=filters, size=3, pad=1, name="conv1")
    h = g.max_pool2d(g.relu(h, name="relu1"), size=2, name="pool1")
    h = g.relu(g.affine(h, hidden, name="fc1"), name="relu2")
    g.softmax_cross_entropy(g.affine(h, classes, name="fc2"), y)
    return g


def lenet_tiny(classes=3):
    g = Graph("lenet_tiny")
    x = g.input("x", (1, 14, 14))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, 3, 3, name="conv1"), name="relu1"), 2, name="pool1")
    h = g.max_pool2d(g.relu(g.conv2d(h, 4, 3, name="conv2"), name="relu2"), 2, name="pool2")
    h = g.relu(g.affine(h, 8, name="fc1"), name="relu3")
    g.softmax_cross_entropy(g.affine(h, classes, name="fc2"), y)
    return g


def residual(classes=3):
    """conv-bn-relu stem, a residual block with an add skip, a concat branch, pooling, fc."""
    g = Graph("residual")
    x = g.input("x", (2, 6, 6))
    y = g.input("y", (), dtype="int64")
    stem = g.relu(g.batchnorm(g.conv2d(x, 4, 3, pad=1, name="stem"), name="stem_bn"), name="stem_relu")
    h = g.relu(g.conv2d(stem, 4, 3, pad=1, name="b1.conv1"), name="b1.relu1")
    h = g.batchnorm(g.conv2d(h, 4, 3, pad=1, name="b1.conv2"), name="b1.bn2")
    out = g.relu(g.add(h, stem, name="b1.add"), name="b1.relu2")
    branch = g.tanh(g.conv2d(out, 2, 1, name="side.conv"), name="side.tanh")
    cat = g.concat(out, branch, name="cat")
    h = g.max_pool2d(cat, 2, name="pool")
    g.softmax_cross_entropy(g.affine(h, classes, name="fc"), y)
    return g


def feeds_for(g, n=4, seed=0, classes=None):
    rng = np.random.default_rng(seed)
    feeds = {}
    for node in g.inputs:
        shape = (n,) * node.attrs.get("batched", True) + tuple(node.attrs["shape"])
        if node.attrs["dtype"].startswith("int"):
            feeds[node.name] = rng.integers(0, classes or 3, size=shape)
        else:
            feeds[node.name] = rng.standard_normal(shape)
    return feeds


def assert_plans_agree(a, b, feeds, rtol=1e-10, atol=1e-13):
    """Plans a and b (e.g. fused and unfused, float64) give the same loss and gradients."""
    la, ga = a.loss_and_grads(feeds)
    lb, gb = b.loss_and_grads(feeds)
    assert abs(la - lb) <= rtol * abs(lb), (la, lb)
    assert set(ga) == set(gb)
    for p in gb:
        np.testing.assert_allclose(ga[p], gb[p], rtol=rtol, atol=atol, err_msg=p)


ALL = {"two_layer": two_layer, "fc_bn_dropout": fc_bn_dropout,
       "three_layer_convnet": three_layer_convnet, "lenet_tiny": lenet_tiny, "residual": residual}


def resnet_small_eval(dtype):
    """The zoo's resnet_small compiled for eval, its batchnorm statistics moved away from (0, 1)
    so that folding them into the convs matters."""
    from dagnet.models import resnet_small

    g = resnet_small()
    train = dagnet.compile(g, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    for st in train.state.values():
        st["running_mean"][...] = rng.normal(0, 0.3, st["running_mean"].shape)
        st["running_var"][...] = rng.uniform(0.3, 3.0, st["running_var"].shape)
    return dagnet.compile(g, dtype=dtype, mode="eval", params=train.params, state=train.state)


def resnet_small_eval_both_ways(monkeypatch, dtype, kernel, switch):
    """(x, calls, plans, scores) of resnet_small's eval program on 5 samples and 2 threads, with
    the kernel switch (module, flag) on and off (read when a program binds); calls: the
    argument tuples of every call of the spied kernel (extension module, function name)."""
    from dagnet import kernels

    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(dtype)
    calls = []
    real = getattr(*kernel)
    monkeypatch.setattr(*kernel, lambda *a: calls.append(a) or real(*a))
    plans, scores = {}, {}
    for on in (True, False):
        monkeypatch.setattr(*switch, on)
        plans[on] = resnet_small_eval(dtype)
        scores[on] = plans[on].forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    return x, calls, plans, scores
