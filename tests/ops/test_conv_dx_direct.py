"""The input gradient of stride-1 im2col convs on the direct kernels' forward (ops/conv.py
dx_by_direct, direct_input_grad): which convs take it, the reference's numbers in float64 and
float32, float64 gradients, the col2im path's numbers, bitwise the same for any thread count."""
import numpy as np
import pytest

from dagnet import kernels, reference
from dagnet.gradcheck import numerical_gradient_array
from dagnet.ops import conv as conv_module
from dagnet.ops import direct
from dagnet.ops.conv import conv_backward, conv_forward, dx_by_direct, grad_buffer

pytestmark = pytest.mark.skipif(direct._ext is None, reason="the direct kernels are not built")

# (n, c, h, w, f, kh, kw, pad): resnet20's 64-channel 8 x 8 conv and others the rule takes
TAKEN = [(3, 64, 8, 8, 64, 3, 3, 1), (2, 64, 8, 8, 64, 3, 3, 0), (2, 64, 8, 8, 64, 3, 3, 2),
         (2, 8, 9, 9, 64, 3, 3, 1), (2, 64, 8, 8, 64, 2, 2, 0), (2, 40, 7, 8, 24, 3, 3, 1)]


def case(n, c, h, w, f, kh, kw, pad, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    out, cache = conv_forward(x, wt, b, 1, pad)
    dout = rng.standard_normal(out.shape).astype(dtype)
    return x, wt, b, cache, dout


@pytest.mark.parametrize("shape", TAKEN)
def test_taken_convs_match_the_reference(shape):
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 5e-6)):
        x, w, b, cache, dout = case(*shape, dtype=dtype)
        assert isinstance(cache, tuple), "the forward runs by im2col"
        assert dx_by_direct(x.shape, w.shape, (1, 1), cache[5], (1, 1), dout.shape)
        dx, dw, db = conv_backward(dout, cache)
        assert dx.dtype == dtype and dx.shape == x.shape
        want = reference.conv_backward(*(a.astype(np.float64) for a in (dout, x, w)), 1,
                                       shape[-1])
        scale = np.abs(want[0]).max()
        np.testing.assert_allclose(dx, want[0], atol=tol * scale, rtol=0)
        np.testing.assert_allclose(dw, want[1], atol=tol * np.abs(want[1]).max(), rtol=0)


@pytest.mark.parametrize("shape", TAKEN[:3])
def test_float64_gradient(shape):
    n, c, h, w_, f, kh, kw, pad = shape
    x, w, b, cache, dout = case(1, 6, h, w_, 5, kh, kw, pad)  # few channels: the rule holds
    assert dx_by_direct(x.shape, w.shape, (1, 1), cache[5], (1, 1), dout.shape)
    dx = conv_backward(dout, cache)[0]
    num = numerical_gradient_array(lambda: conv_forward(x, w, b, 1, pad)[0], x, dout)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-7)


def test_same_numbers_as_col2im_and_laid_out_dout(monkeypatch):
    x, w, b, cache, dout = case(*TAKEN[0])
    got = conv_backward(dout, cache)[0]
    laid = grad_buffer(cache, dout.shape, dout.dtype)
    laid[...] = dout
    assert np.array_equal(conv_backward(laid, cache)[0], got)
    monkeypatch.setattr(conv_module, "DX_DIRECT", False)
    assert not dx_by_direct(x.shape, w.shape, (1, 1), cache[5], (1, 1), dout.shape)
    np.testing.assert_allclose(conv_backward(dout, cache)[0], got, atol=1e-12)


def test_bitwise_the_same_for_any_thread_count(monkeypatch):
    x, w, b, cache, dout = case(5, 64, 8, 8, 64, 3, 3, 1, dtype=np.float32)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        results.append(conv_backward(dout, cache)[0])
    assert all(np.array_equal(r, results[0]) for r in results[1:])


@pytest.mark.parametrize("x_shape,w_shape,stride,pad,dilation,dout_shape", [
    ((2, 64, 8, 8), (64, 64, 3, 3), (2, 2), (1, 1), (1, 1), (2, 64, 4, 4)),  # strided
    ((2, 64, 8, 8), (64, 64, 3, 3), (1, 1), (1, 1), (2, 2), (2, 64, 6, 6)),  # dilated
    ((2, 64, 8, 8), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), (2, 64, 7, 7)),  # pads 1, 0
    ((2, 64, 8, 8), (64, 64, 3, 3), (1, 1), (3, 3), (1, 1), (2, 64, 12, 12)),  # pad > k - 1
    ((2, 64, 8, 8), (64, 64, 1, 1), (1, 1), (0, 0), (1, 1), (2, 64, 8, 8)),  # 1x1
    ((2, 64, 12, 12), (48, 64, 5, 5), (1, 1), (2, 2), (1, 1), (2, 48, 12, 12)),  # wide grid
])
def test_left_to_col2im(x_shape, w_shape, stride, pad, dilation, dout_shape):
    assert not dx_by_direct(x_shape, w_shape, stride, pad, dilation, dout_shape)


def test_off_with_the_direct_kernels(monkeypatch):
    monkeypatch.setattr(direct, "ENABLED", False)
    assert not dx_by_direct((2, 64, 8, 8), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1),
                            (2, 64, 8, 8))
