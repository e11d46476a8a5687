"""The window variants inside graphs: their spec forms (sequential and general) build what the
builder builds, a compiled plan through them passes the plan gradient check in float64, and the
fused conv + relu + max-pool takes the row kernel only for plain windows while fusing the
others on the column path with the same numbers as the unfused chain."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.compiler.feeds import random_feeds
from dagnet.gradcheck import gradcheck_plan
from dagnet.ops import direct, direct_pool
from dagnet.ops.fused import ConvReLUPool
from dagnet.spec import graph_from_spec

SEQUENTIAL = """
name: windows
input: {shape: [4, 12, 12]}
layers:
  - {type: conv, num_filters: 8, filter_size: 3, pad: 1, groups: 4, name: dw}
  - {type: relu}
  - {type: conv, num_filters: 8, filter_size: 3, pad: [2, 2, 2, 2], dilation: 2}
  - {type: max_pool2d, size: 3, stride: 2, pad: 1, ceil_mode: true}
  - {type: deconv, num_filters: 4, filter_size: 3, stride: 2, pad: 1, output_padding: 1}
  - {type: avg_pool, size: 3, stride: 2, pad: [0, 0, 1, 1], count_include_pad: false, floor: true}
  - {type: resize, scale: 2, mode: bilinear}
  - {type: depth_to_space, block: 2}
  - {type: global_max_pool}
  - {type: affine, hidden: 3}
loss: softmax
"""


def windows_by_hand():
    g = Graph("windows")
    x = g.input("x", (4, 12, 12))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.conv2d(x, 8, 3, pad=1, groups=4, name="dw"), name="relu1")
    h = g.conv2d(h, 8, 3, pad=[2, 2, 2, 2], dilation=2, name="conv1")
    h = g.max_pool2d(h, 3, stride=2, pad=1, ceil_mode=True, name="pool1")
    h = g.conv_transpose(h, 4, 3, stride=2, pad=1, output_padding=1, name="deconv1")
    h = g.avg_pool2d(h, 3, stride=2, pad=[0, 0, 1, 1], count_include_pad=False, floor=True,
                     name="avgpool1")
    h = g.depth_to_space(g.resize(h, scale=2, mode="bilinear", name="resize1"), 2,
                         name="depth_to_space1")
    h = g.global_max_pool(h, name="global_max_pool1")
    g.softmax_cross_entropy(g.affine(h, 3, name="scores"), y)
    return g


def test_sequential_spec_equals_the_builder_graph():
    g = graph_from_spec(SEQUENTIAL)
    assert [n.op for n in g if n.op not in ("input", "param")] == \
        [n.op for n in windows_by_hand() if n.op not in ("input", "param")]
    assert g.shape_of("dw") == (8, 12, 12) and g.node("dw.w").attrs["shape"] == [8, 1, 3, 3]
    assert g.shape_of("pool1") == (8, 7, 7)       # ceil_mode keeps the last window
    assert g.shape_of("deconv1") == (4, 14, 14)   # (7 - 1)*2 - 2 + 3 + 1
    assert g.shape_of("avgpool1") == (4, 7, 7)
    assert g.shape_of("depth_to_space1") == (1, 28, 28)


def test_general_form_takes_the_same_attrs():
    g = graph_from_spec({"name": "t", "nodes": [
        {"name": "x", "op": "input", "shape": [3, 20]},
        {"name": "c", "op": "conv1d", "inputs": ["x"], "filters": 6, "size": 3, "groups": 3,
         "pad": [1, 2], "dilation": 2},
        {"name": "p", "op": "max_pool1d", "inputs": ["c"], "size": 3, "stride": 2,
         "ceil_mode": True},
        {"name": "a", "op": "avg_pool1d", "inputs": ["c"], "size": 2, "floor": True},
    ]})
    assert g.shape_of("c") == (6, 19) and g.node("c.w").attrs["shape"] == [6, 1, 3]
    assert g.shape_of("p") == (6, 9) and g.shape_of("a") == (6, 9)


@pytest.mark.parametrize("fuse", [True, False])
def test_plan_gradients_in_float64(fuse):
    plan = dagnet.compile(windows_by_hand(), dtype="float64", seed=0, fuse=fuse)
    feeds = random_feeds(plan, batch=2, seed=0)
    errors = gradcheck_plan(plan, feeds, max_entries=6)
    assert max(errors.values()) < 1e-6, errors


def conv_relu_pool(conv: dict, pool: dict, channels=4, filters=8):
    g = Graph("crp")
    x = g.input("x", (channels, 12, 12))
    h = g.relu(g.conv2d(x, filters, 3, name="conv", **conv), name="relu")
    g.outputs = [g.max_pool2d(h, 2, name="pool", **pool)]
    return g


@pytest.mark.parametrize("conv,pool,note", [
    ({"pad": 1}, {}, "patch rows"),                                        # LeNet's kind
    ({"pad": 1, "groups": 2}, {}, "im2col columns"),
    ({"pad": 2, "dilation": 2}, {}, "im2col columns"),
    ({"pad": [0, 0, 2, 2]}, {}, "im2col columns"),
    ({"pad": 1}, {"stride": 3, "ceil_mode": True}, "direct: dense backward"),  # a direct conv
])
def test_fused_conv_relu_pool_takes_rows_only_for_plain_windows(conv, pool, note, monkeypatch):
    # rows pay from K*F/(K + F) = 20 where AVX2 runs (here 144*32/176 = 26); on any CPU the
    # plain window takes them and the others keep the columns
    monkeypatch.setattr(ConvReLUPool, "ROWS_FROM", 20)
    # the rows even where direct would win (every 3x3 stride-1 conv the direct kernels take)
    monkeypatch.setattr(ConvReLUPool, "direct_wins", lambda self, *a: False)
    # check=True runs the fused step against its unfused chain, outputs and gradients
    plan = dagnet.compile(conv_relu_pool(conv, pool, channels=16, filters=32), seed=0,
                          dtype="float64", check=True)
    (step,) = plan.steps
    assert step.op.name == "conv2d+relu+max_pool2d" and plan.kernel_note(step).startswith(note)


def _plain(stride=1, pad=1):
    return {"stride": (stride, stride), "pad": (pad,) * 4, "dilation": (1, 1), "groups": 1}


def test_fused_conv_relu_pool_takes_the_direct_kernels_where_they_beat_the_rows(monkeypatch):
    # a 3x3 stride-1 conv the direct kernels take: their dense backward (dx on Winograd)
    # beats the rows' sparse one; the numbers stay the chain's
    monkeypatch.setattr(ConvReLUPool, "ROWS_FROM", 20)
    g = conv_relu_pool({"pad": 1}, {}, channels=16, filters=32)
    plan = dagnet.compile(g, seed=0, dtype="float64", check=True)
    (step,) = plan.steps
    assert plan.kernel_note(step) == "direct: dense backward"
    op = step.op
    assert op.direct_wins((16, 12, 12), (32, 16, 3, 3), _plain())
    # convnet_deep's 64 channels at 14 x 14 (58 x 272/196 = 80 by the other kernels' rule) and
    # 256 channels: 3x3 at stride 1, direct
    assert op.direct_wins((64, 14, 14), (64, 64, 3, 3), _plain())
    assert op.direct_wins((256, 14, 14), (256, 256, 3, 3), _plain())
    # other kernels by K*F/(K + F) times the dx grid's extra: 5x5 at 28 x 28, 800*64/864 = 59
    # x 1152/784 = 87; 3x3 stride 2, 128 channels: 115 x 960/784 = 141: the rows
    assert not op.direct_wins((32, 28, 28), (64, 32, 5, 5), _plain(pad=2))
    assert not op.direct_wins((128, 28, 28), (128, 128, 3, 3), _plain(stride=2))
    # ... and 64 channels at stride 2: 58 x 1.22 = 70, direct
    assert op.direct_wins((64, 28, 28), (64, 64, 3, 3), _plain(stride=2))
    monkeypatch.setattr(direct, "ENABLED", False)  # no direct kernels: the rows again
    assert plan.kernel_note(step) == "patch rows: sparse backward"


@pytest.mark.parametrize("channels,size,filters,k,pad,stride", [
    (16, 28, 32, 3, 1, 1),   # convnet_deep's kind: direct, 3x3 stride 1
    (1, 28, 20, 5, 0, 1),    # LeNet's conv1: direct
    (3, 32, 32, 7, 3, 1),    # the three-layer convnet's kind: the direct kernels' planes
    (8, 15, 16, 3, 1, 1),    # an odd output: the floored pool leaves the last row, column
    (8, 21, 16, 3, 1, 2),    # direct at stride 2 (11 x 11 conv output)
])
def test_direct_readout_pool_is_the_pool_pass_bitwise(channels, size, filters, k, pad, stride,
                                                      monkeypatch):
    """A float conv + relu + 2x2 pool on the direct kernels pools each grid in the read-out
    (ops/direct_pool.py): maxima, argmax, and so every gradient, bit for bit those of
    the conv output written whole and pooled by pool.pyx; NaN windows too; and the compiled
    step agrees with its member chain (check=True)."""
    g = Graph("crp")
    x = g.input("x", (channels, size, size))
    h = g.relu(g.conv2d(x, filters, k, pad=pad, stride=stride, name="conv"), name="relu")
    g.outputs = [g.max_pool2d(h, 2, floor=True, name="pool")]
    plan = dagnet.compile(g, seed=0, check=True)  # float32: the read-out's path
    (step,) = plan.steps
    assert step.op.name == "conv2d+relu+max_pool2d"
    rng = np.random.default_rng(size)
    xs = rng.standard_normal((5, channels, size, size)).astype(np.float32)
    xs[2, 0, size // 2, size // 3] = np.nan
    w = (rng.standard_normal((filters, channels, k, k)) / k).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    conv = {"stride": (stride, stride), "pad": (pad,) * 4, "dilation": (1, 1), "groups": 1}
    pool = {"size": (2, 2), "stride": (2, 2), "pad": (0, 0, 0, 0), "dilation": (1, 1),
            "ceil_mode": False}
    assert direct_pool.readout_kind(xs.shape[1:], w.shape, conv, pool, xs.dtype) is not None
    got = []
    for on in (True, False):
        monkeypatch.setattr(direct_pool, "POOL_READOUT", on)
        p, cache = step.op.forward([xs, w, b], step.attrs)
        dout = rng.standard_normal(p.shape).astype(np.float32) if on else got[0][-1]
        got.append([p, *step.op.backward(dout, cache, step.attrs), dout])
    assert np.isnan(got[0][0][2]).any()
    for a, c in zip(*got):
        assert a.dtype == c.dtype and a.tobytes() == c.tobytes()
