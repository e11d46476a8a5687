"""The numpy versions of the window kernels: the fallback without the compiled ones, and the
oracle the compiled ones are tested against (same results, several times slower).

    xp = pad_for_windows(x, pad, ksize, stride, out_size, dilation)   # (N, C, H + .., W + ..)
    window_tap(xp, i, j, stride, out_size, dilation)                 # (N, C, ho, wo) view
"""
from __future__ import annotations

import numpy as np


def argmax_dtype(window: int):
    """uint8 indices for windows of at most 256 cells (a quarter of int32's traffic), else int32."""
    return np.uint8 if window <= 256 else np.int32


def pad_for_windows(x, pad, ksize, stride, out_size, dilation, value=0.0):
    """x with pad (top, left) cells of `value` before each axis and, after it, as many as the
    last window reaches past the end (none if it does not)."""
    reach = [(o - 1) * s + (k - 1) * d + 1 - p - size
             for o, s, k, d, p, size in zip(out_size, stride, ksize, dilation, pad, x.shape[2:])]
    return np.pad(x, ((0, 0), (0, 0), (pad[0], max(reach[0], 0)), (pad[1], max(reach[1], 0))),
                  constant_values=value)


def window_tap(xp, i, j, stride, out_size, dilation):
    """The (N, C, ho, wo) view of padded xp that window tap (i, j) reads."""
    (sh, sw), (ho, wo), (dh, dw) = stride, out_size, dilation
    return xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def im2col_numpy(x, ksize, stride, pad, out_size, ones_row=False, dilation=(1, 1)):
    """numpy version of im2col (one strided copy per kernel tap)."""
    n, c = x.shape[:2]
    xp = pad_for_windows(x, pad, ksize, stride, out_size, dilation)
    k = c * ksize[0] * ksize[1]
    cols = np.empty((n, k + int(ones_row), out_size[0] * out_size[1]), dtype=x.dtype)
    taps = cols[:, :k].reshape(n, c, *ksize, *out_size)  # rows (c, i, j), columns (oh, ow)
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            taps[:, :, i, j] = window_tap(xp, i, j, stride, out_size, dilation)
    if ones_row:
        cols[:, k] = 1
    return cols


def col2im_numpy(cols, x_shape, ksize, stride, pad, out_size, dilation=(1, 1)):
    """numpy version of col2im: one strided add per kernel tap."""
    (n, c, h, w), (kh, kw), (ph, pw) = x_shape, ksize, pad
    dxp = pad_for_windows(np.zeros(x_shape, dtype=cols.dtype), pad, ksize, stride, out_size, dilation)
    taps = cols[:, :c * kh * kw].reshape(n, c, kh, kw, *out_size)
    for i in range(kh):
        for j in range(kw):
            window_tap(dxp, i, j, stride, out_size, dilation)[...] += taps[:, :, i, j]
    return dxp[:, :, ph:ph + h, pw:pw + w].copy()


def maxpool_forward_numpy(x, ksize, stride, pad, out_size, dilation=(1, 1)):
    """numpy version of maxpool_forward (argmax over the stacked window taps)."""
    kh, kw = ksize
    xp = pad_for_windows(x, pad, ksize, stride, out_size, dilation, -np.inf)
    windows = np.stack([window_tap(xp, i, j, stride, out_size, dilation)
                        for i in range(kh) for j in range(kw)], axis=-1)
    argmax = np.argmax(windows, axis=-1)
    nan = np.isnan(windows)
    if nan.any():  # np.argmax picks the first NaN; the compiled kernel (and PyTorch) the last
        last = kh * kw - 1 - np.argmax(nan[..., ::-1], axis=-1)
        argmax = np.where(nan.any(axis=-1), last, argmax)
    argmax = argmax.astype(argmax_dtype(kh * kw))
    out = np.take_along_axis(windows, argmax[..., None].astype(np.intp), axis=-1)[..., 0]
    return out, argmax


def maxpool_backward_numpy(dout, argmax, x_shape, ksize, stride, pad, dilation=(1, 1)):
    """numpy version of maxpool_backward (np.add.at sums where windows overlap)."""
    (n, c, h, w), (_, kw), (sh, sw), (ph, pw), (dh, dw) = x_shape, ksize, stride, pad, dilation
    ho, wo = dout.shape[2:]
    k = argmax.astype(np.intp)
    rows = np.arange(ho)[:, None] * sh + k // kw * dh
    cols = np.arange(wo) * sw + k % kw * dw
    dxp = pad_for_windows(np.zeros(x_shape, dtype=dout.dtype), pad, ksize, stride, (ho, wo), dilation)
    ni, ci = np.ogrid[:n, :c]
    np.add.at(dxp, (ni[..., None, None], ci[..., None, None], rows, cols), dout)
    return dxp[:, :, ph:ph + h, pw:pw + w].copy()
