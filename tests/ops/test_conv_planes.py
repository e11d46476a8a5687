"""The stride-1 convs the direct kernels leave to im2col for their dx, on the direct kernels'
forward all the same (ops/conv_planes.py): the input gradient (dx_by_direct, direct_input_grad), after
an im2col forward or with the forward on the direct kernels too (fwd_by_direct, dw from the
planes on dc_dwt or by ops/conv_blocks.py planes_dw). Which convs take them, the reference's
numbers in float64 and float32, float64 gradients, the col2im and im2col paths' numbers (planes_dw
bitwise), bitwise the same for any thread count, in a compiled plan's workspace."""
import numpy as np
import pytest

import dagnet
from dagnet import kernels, reference
from dagnet.gradcheck import numerical_gradient_array
from dagnet.interpreter import loss_and_grads as interpret_loss_and_grads
from dagnet.ops import conv_planes, direct
from dagnet.ops.conv import conv_backward, conv_forward, grad_buffer
from dagnet.ops.conv_blocks import planes_dw
from dagnet.ops.conv_planes import PlanesCache, dx_by_direct, fwd_by_direct

pytestmark = pytest.mark.skipif(direct._ext is None, reason="the direct kernels are not built")

@pytest.fixture(params=[True, False], ids=["fwd-direct", "fwd-im2col"])
def fwd(request, monkeypatch):
    """The forward on the direct kernels (PlanesCache) or by im2col (the columns' cache)."""
    monkeypatch.setattr(conv_planes, "FWD_DIRECT", request.param)
    return request.param


# (n, c, h, w, f, kh, kw, pad): resnet20's 64-channel 8 x 8 conv and others dx_by_direct takes
# (all but those of NO_FWD fwd_by_direct too)
TAKEN = [(3, 64, 8, 8, 64, 3, 3, 1), (2, 64, 8, 8, 64, 3, 3, 2), (2, 8, 9, 9, 64, 3, 3, 1),
         (2, 40, 7, 8, 24, 3, 3, 1), (2, 64, 8, 8, 64, 3, 3, 0)]
#: pad 0: the forward's grid, 8 columns for 6 outputs, is too wide for fwd_by_direct
NO_FWD = [TAKEN[-1]]


def case(n, c, h, w, f, kh, kw, pad, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    out, cache = conv_forward(x, wt, b, 1, pad)
    dout = rng.standard_normal(out.shape).astype(dtype)
    return x, wt, b, cache, dout


@pytest.mark.parametrize("shape", TAKEN)
def test_taken_convs_match_the_reference(fwd, shape):
    pad = shape[-1]
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 5e-6)):
        x, w, b, cache, dout = case(*shape, dtype=dtype)
        fwd_taken = fwd and shape not in NO_FWD
        assert isinstance(cache, PlanesCache) == fwd_taken
        assert isinstance(cache, PlanesCache) or cache[1] == "KNP"  # else: the im2col columns
        assert fwd_by_direct(x.shape[1:], w.shape, 1, pad) == fwd_taken
        assert dx_by_direct(x.shape, w.shape, (1, 1), (pad, pad), (1, 1), dout.shape)
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        out = conv_forward(x, w, b, 1, pad)[0]
        want_out = reference.conv_forward(x64, w64, b.astype(np.float64), 1, pad)
        np.testing.assert_allclose(out, want_out, atol=tol * np.abs(want_out).max(), rtol=0)
        got = conv_backward(dout, cache)
        assert got[0].dtype == dtype and got[0].shape == x.shape
        want = reference.conv_backward(dout.astype(np.float64), x64, w64, 1, pad)
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, atol=tol * np.abs(r).max(), rtol=0)
        assert conv_backward(dout, cache, need_dx=False)[0] is None


@pytest.mark.parametrize("shape", TAKEN[:2] + NO_FWD)
def test_float64_gradients(fwd, shape):
    n, c, h, w_, f, kh, kw, pad = shape
    x, w, b, cache, dout = case(2, 6, h, w_, 5, kh, kw, pad)  # few channels: the rules hold
    assert isinstance(cache, PlanesCache) == (fwd and shape not in NO_FWD)
    assert dx_by_direct(x.shape, w.shape, (1, 1), (pad, pad), (1, 1), dout.shape)
    got = conv_backward(dout, cache)
    for g, arr in zip(got, (x, w, b)):
        num = numerical_gradient_array(lambda: conv_forward(x, w, b, 1, pad)[0], arr, dout)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


def test_same_numbers_as_col2im_and_laid_out_dout(monkeypatch):
    monkeypatch.setattr(conv_planes, "FWD_DIRECT", False)
    x, w, b, cache, dout = case(*TAKEN[0])
    got = conv_backward(dout, cache)[0]
    laid = grad_buffer(cache, dout.shape, dout.dtype)
    laid[...] = dout
    assert np.array_equal(conv_backward(laid, cache)[0], got)
    monkeypatch.setattr(conv_planes, "DX_DIRECT", False)
    assert not dx_by_direct(x.shape, w.shape, (1, 1), cache[5], (1, 1), dout.shape)
    assert not fwd_by_direct(x.shape[1:], w.shape, 1, 1)  # its dx needs dx_by_direct
    np.testing.assert_allclose(conv_backward(dout, cache)[0], got, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_planes_dw_bitwise_the_im2col_paths(monkeypatch, dtype):
    """dw from the planes: the same blocks, columns and products as the im2col forward's."""
    for shape in (s for s in TAKEN if s not in NO_FWD):
        x, w, b, cache, dout = case(*shape, dtype=dtype)
        assert isinstance(cache, PlanesCache)
        monkeypatch.setattr(conv_planes, "FWD_DIRECT", False)
        cols_cache = conv_forward(x, w, b, 1, shape[-1])[1]
        monkeypatch.setattr(conv_planes, "FWD_DIRECT", True)
        for g, r in zip(planes_dw(dout, cache), conv_backward(dout, cols_cache, False)[1:]):
            assert np.array_equal(g, r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dw_on_dc_dwt_where_it_takes_the_filters(monkeypatch, dtype):
    """planes_backward's dw and db: direct_backward's (dc_dwt) where uses_dwt takes the filters
    (AVX-512, more than 16 of at least 128 taps), else planes_dw's; bitwise either way."""
    for channels in (True, False):
        monkeypatch.setattr(direct, "DW_CHANNELS", channels)
        for shape in (s for s in TAKEN if s not in NO_FWD):
            x, w, b, cache, dout = case(*shape, dtype=dtype)
            assert isinstance(cache, PlanesCache)
            dwt = direct.uses_dwt(w.shape, direct.ISA)
            assert dwt == (channels and direct.uses_dwt((64, 64, 3, 3), direct.ISA)
                           and w.shape[0] > 16 and w[0].size >= 128)
            want = direct.direct_backward(dout, cache, False)[1:] if dwt else planes_dw(dout, cache)
            for g, r in zip(conv_backward(dout, cache, False)[1:], want):
                assert np.array_equal(g, r)


def test_bitwise_the_same_for_any_thread_count(fwd, monkeypatch):
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        x, w, b, cache, dout = case(5, 64, 8, 8, 64, 3, 3, 1, dtype=np.float32)
        results.append((conv_forward(x, w, b, 1, 1)[0], *conv_backward(dout, cache)))
    for r in results[1:]:
        assert all(np.array_equal(a, e) for a, e in zip(r, results[0]))


def test_compiled_plan_agrees_with_the_interpreter_and_the_im2col_plan(monkeypatch):
    """Plans build the planes in the planned workspace (Conv2D.workspace's size), fused with
    relu; their loss and gradients are the interpreter's and those of the im2col forward."""
    g = dagnet.Graph("planes")
    x = g.input("x", (64, 8, 8))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.conv2d(x, filters=64, size=3, pad=1, name="conv1"), name="relu1")
    h = g.relu(g.conv2d(h, filters=16, size=3, pad=1, name="conv2"), name="relu2")
    g.softmax_cross_entropy(g.affine(h, 4, name="fc"), y)
    assert fwd_by_direct((64, 8, 8), (64, 64, 3, 3), 1, 1)
    assert fwd_by_direct((64, 8, 8), (16, 64, 3, 3), 1, 1)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 64, 8, 8)), "y": rng.integers(0, 4, 3)}
    plan = dagnet.compile(g, dtype="float64", seed=1)
    loss, grads = plan.loss_and_grads(feeds)
    state0 = dagnet.compiler.params.init_state(g, "float64")
    loss_i, grads_i = interpret_loss_and_grads(g, feeds, plan.params, state0, seed=1)
    monkeypatch.setattr(conv_planes, "FWD_DIRECT", False)
    cols_plan = dagnet.compile(g, dtype="float64", seed=1)
    loss_c, grads_c = cols_plan.loss_and_grads(feeds)
    for other, other_grads in ((loss_i, grads_i), (loss_c, grads_c)):
        assert abs(loss - other) < 1e-10 * max(1, abs(other))
        for p in grads:
            np.testing.assert_allclose(grads[p], other_grads[p], rtol=1e-9, atol=1e-12,
                                       err_msg=p)
