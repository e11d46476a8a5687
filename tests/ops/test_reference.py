"""The reference ops check out on their own: the two views of convolution agree, forward and
backward, and every reference backward matches finite differences of its forward."""
import numpy as np
import pytest

from dagnet import reference as ref
from dagnet.gradcheck import numerical_gradient_array, rel_error

CONV_CASES = [  # (x shape, w shape, stride, pad)
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((1, 2, 7, 6), (3, 2, 3, 2), 2, 1),
    ((2, 1, 6, 6), (2, 1, 5, 5), 1, 2),
    ((1, 2, 7, 7), (2, 2, 3, 3), 2, 0),
    ((2, 2, 6, 5), (3, 2, 1, 1), (2, 1), (1, 0)),
    ((1, 1, 8, 8), (1, 1, 3, 3), 3, 1),  # 1 + (8 - 3 + 2)/3 is not an integer: floored
]


def conv_data(x_shape, w_shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
            rng.standard_normal(w_shape[0]))


@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_two_views_of_conv_agree(x_shape, w_shape, stride, pad):
    x, w, b = conv_data(x_shape, w_shape)
    np.testing.assert_allclose(ref.conv_forward_scatter(x, w, b, stride, pad),
                               ref.conv_forward(x, w, b, stride, pad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_two_backward_passes_agree_and_match_finite_differences(x_shape, w_shape, stride, pad):
    x, w, b = conv_data(x_shape, w_shape)
    dout = np.random.default_rng(1).standard_normal(ref.conv_forward(x, w, b, stride, pad).shape)
    loops = ref.conv_backward(dout, x, w, stride, pad)
    convs = ref.conv_backward_as_convolutions(dout, x, w, stride, pad)
    for a, c in zip(loops, convs):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)
    for value, grad in zip((x, w, b), loops):
        num = numerical_gradient_array(lambda: ref.conv_forward(x, w, b, stride, pad), value, dout)
        assert rel_error(num, grad) < 1e-7


def test_input_gradient_is_a_full_convolution_with_the_flipped_filter():
    """Stride 1: dx = dout padded by k - p - 1, correlated with w flipped and its F, C swapped."""
    x, w, b = conv_data((2, 3, 6, 6), (4, 3, 3, 3))
    for pad in (0, 1, 2):
        dout = np.ones_like(ref.conv_forward(x, w, b, 1, pad))
        w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        dx = ref.conv_forward(dout, w_flip, np.zeros(3), 1, 3 - pad - 1)
        np.testing.assert_allclose(dx, ref.conv_backward(dout, x, w, 1, pad)[0], rtol=1e-12)


def test_weight_gradient_is_a_convolution_of_the_input_with_dout():
    """Stride 1: dw[f, c] = x[:, c] (padded) correlated with dout[:, f], summed over the batch."""
    x, w, b = conv_data((2, 3, 6, 6), (4, 3, 3, 3))
    dout = np.random.default_rng(1).standard_normal((2, 4, 6, 6))
    # batch becomes the channel axis being summed: inputs (C, N, H, W), filters (F, N, Ho, Wo)
    dw = ref.conv_forward(x.transpose(1, 0, 2, 3), dout.transpose(1, 0, 2, 3), np.zeros(4), 1, 1)
    np.testing.assert_allclose(dw.transpose(1, 0, 2, 3), ref.conv_backward(dout, x, w, 1, 1)[1],
                               rtol=1e-12)


POOL_CASES = [  # (x shape, size, stride, pad)
    ((2, 2, 4, 4), 2, None, 0),
    ((1, 2, 7, 7), 3, 2, 1),
    ((1, 1, 5, 6), (2, 3), (1, 2), (1, 1)),
]


@pytest.mark.parametrize("x_shape,size,stride,pad", POOL_CASES)
def test_pool_backwards_match_finite_differences(x_shape, size, stride, pad):
    rng = np.random.default_rng(0)
    x = (rng.permutation(int(np.prod(x_shape))) * 0.01).reshape(x_shape)  # no ties
    for forward, backward in [(ref.maxpool_forward, ref.maxpool_backward),
                              (ref.avgpool_forward, ref.avgpool_backward)]:
        dout = rng.standard_normal(forward(x, size, stride, pad).shape)
        num = numerical_gradient_array(lambda: forward(x, size, stride, pad), x, dout)
        assert rel_error(num, backward(dout, x, size, stride, pad)) < 1e-7


def test_pool_values_by_hand():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(ref.maxpool_forward(x, 2)[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(ref.avgpool_forward(x, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    dx = ref.maxpool_backward(np.ones((1, 1, 2, 2)), x, 2)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]])
