"""im2col / col2im of stride-1 convs by padded planes (dagnet/_kernels/im2col.pyx) against
plain loops: the columns exactly, the column gradient summed bitwise in the loops' order, for
any thread count; strided convs keep the clipped loops and must agree with them too."""
import numpy as np
import pytest

from dagnet import kernels

pytest.importorskip("dagnet._kernels.im2col")

CASES = [  # (x shape, (kh, kw), stride, (top, left) pad, out size, dilation)
    ((3, 64, 8, 8), (3, 3), (1, 1), (1, 1), (8, 8), (1, 1)),      # resnet20 stage 3: 8-wide rows
    ((2, 3, 16, 16), (3, 3), (1, 1), (1, 1), (16, 16), (1, 1)),   # 16-wide rows
    ((2, 6, 12, 12), (5, 5), (1, 1), (0, 0), (8, 8), (1, 1)),     # LeNet conv2: no plane
    ((2, 2, 7, 9), (3, 5), (1, 1), (1, 2), (7, 9), (1, 1)),       # odd widths
    ((2, 2, 6, 6), (3, 3), (1, 1), (0, 0), (5, 5), (1, 1)),       # bottom/right pad only
    ((2, 2, 5, 5), (3, 3), (1, 1), (4, 4), (11, 11), (1, 1)),     # pad wider than the kernel
    ((1, 2, 9, 9), (3, 3), (1, 1), (2, 2), (9, 9), (2, 2)),       # dilated
    ((2, 1, 1, 7), (1, 3), (1, 1), (0, 1), (1, 7), (1, 1)),       # one row
    ((2, 3, 9, 9), (3, 3), (2, 2), (1, 1), (5, 5), (1, 1)),       # strided: clipped loops
]


def in_window(x_shape, ksize, stride, pad, out_size, dilation):
    """(channel, column row k, input row, input column, output position q) of every tap that
    reads inside the image, in the kernels' order: channel, tap row, tap column, output row."""
    _, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (ho, wo), (dh, dw) = ksize, stride, pad, out_size, dilation
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                for oh in range(ho):
                    for ow in range(wo):
                        ih, iw = oh * sh + i * dh - ph, ow * sw + j * dw - pw
                        if 0 <= ih < h and 0 <= iw < w:
                            yield ch, (ch * kh + i) * kw + j, ih, iw, oh * wo + ow


def loop_im2col(x, ksize, stride, pad, out_size, dilation):
    """cols (N, C*kh*kw, P) by loops over taps and output rows."""
    kh, kw = ksize
    cols = np.zeros((x.shape[0], x.shape[1] * kh * kw, out_size[0] * out_size[1]), x.dtype)
    for ch, k, ih, iw, q in in_window(x.shape, ksize, stride, pad, out_size, dilation):
        cols[:, k, q] = x[:, ch, ih, iw]
    return cols


def loop_col2im(cols, x_shape, ksize, stride, pad, out_size, dilation):
    """dx summed in the kernels' order: channel, tap row, tap column, output row."""
    dx = np.zeros(x_shape, cols.dtype)
    for ch, k, ih, iw, q in in_window(x_shape, ksize, stride, pad, out_size, dilation):
        dx[:, ch, ih, iw] += cols[:, k, q]
    return dx


@pytest.mark.parametrize("layout", ["NKP", "KNP"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,ksize,stride,pad,out_size,dilation", CASES)
def test_im2col_col2im_match_loops_bitwise(x_shape, ksize, stride, pad, out_size, dilation,
                                           dtype, layout):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    want = loop_im2col(x, ksize, stride, pad, out_size, dilation)
    cols = kernels.im2col(x, ksize, stride, pad, out_size, ones_row=True, layout=layout,
                          dilation=dilation)
    samples = cols if layout == "NKP" else cols.transpose(1, 0, 2)
    np.testing.assert_array_equal(samples[:, :-1], want)
    assert (samples[:, -1] == 1).all()
    g = rng.standard_normal(samples.shape).astype(dtype)
    g_laid = g if layout == "NKP" else np.ascontiguousarray(g.transpose(1, 0, 2))
    want_dx = loop_col2im(g, x_shape, ksize, stride, pad, out_size, dilation)
    for threads in (1, 2, 3):
        dx = kernels.col2im(g_laid, x_shape, ksize, stride, pad, out_size, layout=layout,
                            dilation=dilation, threads=threads)
        np.testing.assert_array_equal(dx, want_dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,ksize,stride,pad,out_size,dilation", CASES)
def test_knp_block_of_a_batch_matches_loops(x_shape, ksize, stride, pad, out_size, dilation,
                                            dtype):
    """KNP columns of a block of samples written into its slice of the batch's array (as
    ops/conv_blocks.py does: rows built across the block's samples, the channels split over
    the threads) are the loops' exactly, and nothing outside the slice is touched."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((x_shape[0] + 3, *x_shape[1:])).astype(dtype)
    want = loop_im2col(x[1:-2], ksize, stride, pad, out_size, dilation)
    rows, p = want.shape[1] + 1, want.shape[2]
    for threads in (1, 2, 3):
        big = np.full((rows, x.shape[0], p), np.nan, dtype)
        kernels.im2col(x[1:-2], ksize, stride, pad, out_size, ones_row=True, layout="KNP",
                       dilation=dilation, threads=threads, out=big[:, 1:-2])
        samples = big[:, 1:-2].transpose(1, 0, 2)
        np.testing.assert_array_equal(samples[:, :-1], want)
        assert (samples[:, -1] == 1).all()
        assert np.isnan(big[:, :1]).all() and np.isnan(big[:, -2:]).all()


def test_col2im_overwrites_a_dirty_output():
    """dx is written whole (pixels no window reaches are 0), whatever it held before."""
    x_shape, ksize, pad, out_size = (2, 2, 6, 6), (3, 3), (1, 1), (3, 3)  # windows end early
    g = np.random.default_rng(1).standard_normal((2, 19, 9))
    dx = np.full(x_shape, np.nan)
    kernels.col2im(g, x_shape, ksize, (1, 1), pad, out_size, dx=dx)
    np.testing.assert_array_equal(dx, loop_col2im(g, x_shape, ksize, (1, 1), pad, out_size,
                                                  (1, 1)))
