"""Local response normalisation across channels (AlexNet's, Caffe's, ONNX's LRN).

    y[c] = x[c] / (bias + alpha / size * sum of x[c']^2 over c' in window(c)) ** beta
    x: (N, C, ...) -> like x

window(c) is c - (size - 1) // 2 ... c + size // 2, clipped to the channels: ONNX's and Caffe's.
(torch's LocalResponseNorm agrees for odd sizes; for an even size its window starts one channel
earlier.)
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.declare import COUNT, POSITIVE, REQUIRED, Attr, data


def window_sum(v: np.ndarray, before: int, after: int) -> np.ndarray:
    """s[:, c] = sum of v[:, c'] for c - before <= c' <= c + after, clipped to the channels.
    v: (N, C, ...) -> like v."""
    c = v.shape[1]
    pad = [(0, 0)] * v.ndim
    pad[1] = (before, after)
    padded = np.pad(v, pad)
    s = padded[:, :c].copy()
    for k in range(1, before + after + 1):
        s += padded[:, k:k + c]
    return s


def lrn_forward(x, size, alpha, beta, bias):
    """-> (y like x, the denominators' base s like x)."""
    before = (size - 1) // 2
    s = window_sum(x * x, before, size - 1 - before)
    s *= x.dtype.type(alpha / size)
    s += x.dtype.type(bias)
    return x * s ** x.dtype.type(-beta), s


def lrn_backward(dout, x, s, size, alpha, beta):
    """dx for y = x * s^-beta, s = bias + alpha / size * window_sum(x^2).  -> like x."""
    t = x.dtype.type
    scaled = s ** t(-beta)
    # x[c] is in the windows of channels c - after ... c + before: the window mirrored
    before = (size - 1) // 2
    back = window_sum(dout * x * scaled / s, size - 1 - before, before)
    return dout * scaled - t(2 * alpha * beta / size) * x * back


@register
class LRN(Op):
    """Local response normalisation across channels.  x: (N, C, ...) -> like x."""

    name = "lrn"
    aliases = ("local_response_norm",)
    ports = (data("x", "(N, C, ...): features or maps"),)
    attributes = (
        Attr("size", "int", REQUIRED, COUNT, "channels in each window (odd in AlexNet: 5)"),
        Attr("alpha", "number", 1e-4, POSITIVE, "the squares' scale (divided by size)"),
        Attr("beta", "number", 0.75, POSITIVE, "the exponent"),
        Attr("bias", "number", 1.0, POSITIVE, "added to the scaled sum (torch's k)", ("k",)),
    )
    fusion_kind = "opaque"
    saves = frozenset({"input"})

    def infer_shape(self, in_shapes, attrs):
        self.read_attrs(attrs)
        x_shape = tuple(in_shapes[0])
        if not x_shape:
            raise ShapeError("lrn: input 'x' has no channel axis (shape ()); give values shaped "
                             "(C, ...) per example")
        return x_shape

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        self.infer_shape([x.shape[1:]], attrs)
        a = self.read_attrs(attrs)
        y, s = lrn_forward(x, a["size"], a["alpha"], a["beta"], a["bias"])
        return y, (x, s, a)

    def backward(self, dout, cache, attrs, needs=None):
        x, s, a = cache
        return (lrn_backward(dout, x, s, a["size"], a["alpha"], a["beta"]),)
