"""The depthwise / grouped convolution by shifted planes (ops/depthwise.py, _kernels/depthwise.*)
against the loop reference and the im2col + batched-matmul path it replaces, in float64 and
float32, for every kernel variant this CPU runs; bitwise the same for any thread count; the
rule that picks it; the conv2d op's float64 gradients; PyTorch; a planned MobileNet-v2."""
import numpy as np
import pytest

import dagnet
from dagnet import kernels
from dagnet import reference as ref
from dagnet.gradcheck import norm_error
from dagnet.models import mobilenet_v2
from dagnet.ops import depthwise, get_op
from dagnet.ops.conv import conv_backward, conv_forward, conv_geometry
from tests.ops.harness import check_op

pytestmark = pytest.mark.skipif(depthwise._ext is None, reason="depthwise kernels not built")

CASES = [  # (N, C, H, W), (F, C/G, kh, kw), groups, stride, pad (top, left, bottom, right), dilation
    ((3, 8, 12, 12), (8, 1, 3, 3), 8, (1, 1), (1, 1, 1, 1), (1, 1)),  # MobileNet's, smaller
    ((2, 8, 13, 13), (8, 1, 3, 3), 8, (2, 2), (1, 1, 1, 1), (1, 1)),  # its downsampling one
    ((2, 4, 9, 9), (8, 1, 3, 3), 4, (1, 1), (2, 2, 2, 2), (2, 2)),  # multiplier 2, dilated
    ((2, 6, 10, 11), (6, 2, 3, 3), 3, (2, 1), (0, 1, 2, 1), (2, 1)),  # groups = C/2, asymmetric
    ((3, 5, 7, 7), (5, 1, 5, 5), 5, (2, 2), (2, 2, 2, 2), (1, 1)),  # 5x5
    ((2, 6, 7, 7), (12, 2, 1, 1), 3, (1, 1), (0, 0, 0, 0), (1, 1)),  # grouped 1x1 (ShuffleNet)
    ((2, 4, 7, 7), (4, 1, 1, 1), 4, (2, 2), (0, 0, 0, 0), (1, 1)),  # skips pixels: dx zeros
    ((2, 4, 8, 8), (4, 1, 3, 3), 4, (3, 3), (1, 1, 0, 0), (1, 1)),  # stride past the kernel
    ((1, 16, 2, 2), (16, 1, 3, 3), 16, (1, 1), (1, 1, 1, 1), (1, 1)),  # MobileNet's last stage
    ((2, 3, 1, 17), (6, 1, 1, 4), 3, (1, 2), (0, 1, 0, 2), (1, 3)),  # conv1d's rows
    ((2, 16, 6, 5), (16, 8, 3, 3), 2, (1, 1), (1, 1, 1, 1), (1, 1)),  # 8 channels per group
]
ISAS = list(range(depthwise.ISA + 1)) if depthwise._ext is not None else []


def arrays(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1])]


def run(case, dtype, seed=0, need_dx=True):
    x_shape, w_shape, groups, stride, pads, dil = case
    x, w, b = arrays(x_shape, w_shape, dtype, seed)
    _, s, pad, out_size = conv_geometry(x.shape, w.shape, stride, pads, dil)
    out, cache = depthwise.depthwise_forward(x, w, b, groups, s, pad, dil, out_size)
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    return (x, w, b, dout), (out, *depthwise.depthwise_backward(dout, cache, need_dx))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, dtype, tol, isa, monkeypatch):
    monkeypatch.setattr(depthwise, "ISA", isa)
    _, _, groups, stride, pads, dil = case
    (x, w, b, dout), got = run(case, dtype)
    want = (ref.conv_forward(x, w, b, stride, pads, dil, groups),
            *ref.conv_backward(dout, x, w, stride, pads, dil, groups))
    for name, g, r in zip(("out", "dx", "dw", "db"), got, want):
        assert g.dtype == dtype and g.shape == r.shape, name
        assert norm_error(g, r) < tol, name


@pytest.mark.parametrize("case", CASES[:4])
def test_conv_forward_dispatch_matches_matmul_path(case, monkeypatch):
    """conv_forward / conv_backward take the planes for groups > 1 and give the numbers of
    the im2col + batched matmul path (ENABLED=False)."""
    x_shape, w_shape, groups, stride, pads, dil = case
    x, w, b = arrays(x_shape, w_shape, np.float64)
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(depthwise, "ENABLED", enabled)
        out, cache = conv_forward(x, w, b, stride, pads, dilation=dil, groups=groups)
        assert isinstance(cache, depthwise.DepthwiseCache) == enabled
        dout = np.random.default_rng(1).standard_normal(out.shape)
        results.append((out, *conv_backward(dout, cache)))
    for name, a, r in zip(("out", "dx", "dw", "db"), *results):
        assert norm_error(a, r) < 1e-13, name


def test_no_dx_keeps_dw_db():
    _, (_, dx, dw, db) = run(CASES[0], np.float64)
    _, (_, none, dw2, db2) = run(CASES[0], np.float64, need_dx=False)
    assert dx is not None and none is None
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[3],
                                  ((19, 4, 5, 5), (4, 1, 3, 3), 4, (1, 1), (1, 1, 1, 1), (1, 1))])
def test_bitwise_same_for_any_thread_count(case, monkeypatch):
    """The batch splits into chunks by its size alone (19 samples: 16 uneven chunks)."""
    monkeypatch.setattr(depthwise, "OUTPUTS_PER_THREAD", 1)  # threads even for tiny convs
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        results.append(run(case, np.float32)[1])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_writes_into_out_and_workspace():
    """out= and workspace= (the memory plan's buffers) are used, not copied."""
    x, w, b = arrays((2, 8, 9, 9), (8, 1, 3, 3), np.float32)
    geo_size = depthwise.planes_size((8, 9, 9), (8, 1, 3, 3), 8, (1, 1), (1, 1, 1, 1), (1, 1),
                                     (9, 9))
    ws = np.zeros(2 * geo_size * 4, np.uint8)
    out = np.empty((2, 8, 9, 9), np.float32)
    y, cache = conv_forward(x, w, b, 1, 1, out=out, workspace=ws, groups=8)
    assert y is out and np.shares_memory(cache.planes, ws)
    np.testing.assert_allclose(out, ref.conv_forward(x, w, b, 1, 1, 1, 8), atol=1e-5)


def test_rule_picks_few_channels_per_group(monkeypatch):
    assert depthwise.uses_depthwise((32, 28, 28), (32, 1, 3, 3), 32)
    assert depthwise.uses_depthwise((32, 28, 28), (64, 2, 3, 3), 16)
    assert not depthwise.uses_depthwise((32, 28, 28), (32, 32, 3, 3), 1)  # not grouped
    assert depthwise.uses_depthwise((64, 28, 28), (64, 16, 3, 3), 4)
    assert not depthwise.uses_depthwise((64, 28, 28), (64, 32, 3, 3), 2)  # AlexNet-like
    op = get_op("conv2d")
    assert op.kernel_note([(32, 28, 28), (32, 1, 3, 3), (32,)], {"groups": 32}) == \
        "depthwise: shifted planes"
    assert op.kernel_note([(64, 7, 7), (64, 32, 3, 3), (64,)], {"groups": 2}) == \
        "2 groups: batched matmul"
    monkeypatch.setattr(depthwise, "ENABLED", False)
    assert not depthwise.uses_depthwise((32, 28, 28), (32, 1, 3, 3), 32)
    assert op.kernel_note([(32, 28, 28), (32, 1, 3, 3), (32,)], {"groups": 32}) == \
        "depthwise: batched matmul"


@pytest.mark.parametrize("attrs,w_shape", [
    ({"pad": 1, "groups": 4}, (4, 1, 3, 3)),
    ({"pad": (1, 0, 0, 2), "stride": 2, "dilation": (1, 2), "groups": 2, "floor": True},
     (6, 2, 3, 2)),
])
def test_conv2d_op_gradients_through_planes(attrs, w_shape):
    rng = np.random.default_rng(0)
    x_shape = (2, 4, 7, 8)
    assert depthwise.uses_depthwise(x_shape[1:], w_shape, attrs["groups"])
    check_op("conv2d", [rng.standard_normal(x_shape), rng.standard_normal(w_shape),
                        rng.standard_normal(w_shape[0])], attrs)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad,dilation,groups", [
    ((2, 8, 10, 10), (8, 1, 3, 3), 1, 1, 1, 8),  # groups = C
    ((2, 8, 11, 11), (8, 1, 3, 3), 2, 1, 1, 8),
    ((2, 8, 10, 10), (8, 2, 3, 3), 1, 1, 1, 4),  # groups = C/2
    ((2, 8, 9, 9), (16, 2, 3, 3), 2, 2, 2, 4),  # C/2, multiplier 2, dilated
])
def test_torch_parity(x_shape, w_shape, stride, pad, dilation, groups, dtype, tol):
    torch = pytest.importorskip("torch")
    assert depthwise.uses_depthwise(x_shape[1:], w_shape, groups)
    x, w, b = arrays(x_shape, w_shape, dtype, seed=3)
    op = get_op("conv2d")
    attrs = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups}
    out, cache = op.forward([x, w, b], attrs)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    grads = op.backward(dout, cache, attrs)
    ts = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, w, b)]
    t_out = torch.nn.functional.conv2d(*ts, stride, pad, dilation, groups)
    t_out.backward(torch.from_numpy(dout))
    assert norm_error(out, t_out.detach().numpy()) < tol
    for g, t in zip(grads, ts):
        assert g.dtype == dtype and norm_error(g, t.grad.numpy()) < tol


def test_planned_mobilenet_same_as_matmul_path(monkeypatch):
    """A compiled MobileNet-v2 builds the planes in its planned workspace; its loss and
    gradients equal the im2col + matmul plan's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 16, 16))
    y = rng.integers(0, 10, 3)
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(depthwise, "ENABLED", enabled)
        graph = mobilenet_v2(input_shape=(1, 16, 16), width=0.25, dropout=0)
        plan = dagnet.compile(graph, seed=0, dtype=np.float64)
        results.append(plan.loss_and_grads(x, y))
    (loss, grads), (loss2, grads2) = results
    assert abs(loss - loss2) < 1e-12
    # the weights' gradients; the biases before a batchnorm (and betas before one, through
    # the next block's) have zero gradients and hold rounding noise alone
    worst = max(norm_error(grads[k], grads2[k]) for k in grads if k.endswith((".w", "gamma")))
    assert worst < 1e-9, worst
