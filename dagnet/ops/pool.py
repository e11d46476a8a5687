"""Pooling: max_pool2d, avg_pool2d, global_avg_pool.

    max_pool2d, avg_pool2d: x (N, C, H, W) -> (N, C, Ho, Wo); attrs size (int or pair, 2),
        stride (default size), pad (default 0, at most half the window), floor (default False).
    global_avg_pool: x (N, C, H, W) -> (N, C).

Max-pool pads with -inf; forward stores each window's argmax and backward scatters dout
through it (Cython kernels in dagnet/_kernels/pool.pyx, with a fast path for 2x2 windows at
stride 2 and for any non-overlapping windows in backward). Ties: the first max in the window,
in row-major order, gets the whole gradient. Avg-pool pads with zeros that count in the
average (PyTorch's count_include_pad=True). `maxpool_forward` / `maxpool_backward` are the
kernels the fused ops call.
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, as_pair, check_float, check_rank, register
from dagnet.ops.conv import FLOOR, PADDING, out_extent, window_out_size
from dagnet.ops.declare import WINDOW, Attr, Same, data
from dagnet.ops.workspace import Workspace


def maxpool_forward(x, size, stride, pad, out=None):
    """Window maxima.  x: (N, C, H, W) -> (out (N, C, Ho, Wo), cache); floors a partial tiling.
    out: an array to write the maxima into."""
    ksize, stride, pad = as_pair(size), as_pair(stride), as_pair(pad)
    out, argmax = kernels.maxpool_forward(x, ksize, stride, pad,
                                          window_out_size(x.shape, ksize, stride, pad), out=out)
    return out, (argmax, x.shape, ksize, stride, pad)


def maxpool_backward(dout, cache, dx=None):
    """Gradient of maxpool_forward.  dout: (N, C, Ho, Wo) -> dx (N, C, H, W); dx: an array
    with contiguous (H, W) planes to write it into (a conv's GEMM-layout gradient buffer)."""
    argmax, x_shape, ksize, stride, pad = cache
    return kernels.maxpool_backward(dout, argmax, x_shape, ksize, stride, pad, dx=dx)


def avgpool_forward(x, size, stride, pad, out=None):
    """Window means, zero padding included.  x: (N, C, H, W) -> (out (N, C, Ho, Wo), cache).
    out: an array to write the means into."""
    ksize, stride, pad = as_pair(size), as_pair(stride), as_pair(pad)
    (kh, kw), (sh, sw), (ph, pw) = ksize, stride, pad
    ho, wo = window_out_size(x.shape, ksize, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    # one strided slice per window tap: kh*kw vectorised adds instead of a loop over windows
    if out is None:
        out = np.zeros((*x.shape[:2], ho, wo), dtype=x.dtype)
    else:
        out[...] = 0
    for i in range(kh):
        for j in range(kw):
            out += xp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw]
    out *= x.dtype.type(1.0 / (kh * kw))
    return out, (x.shape, ksize, stride, pad)


def avgpool_backward(dout, cache):
    """Gradient of avgpool_forward: each window spreads dout / (kh*kw).  -> dx (N, C, H, W)."""
    (n, c, h, w), (kh, kw), (sh, sw), (ph, pw) = cache
    ho, wo = dout.shape[2:]
    share = dout * dout.dtype.type(1.0 / (kh * kw))
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dout.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw] += share
    return dxp[:, :, ph:ph + h, pw:pw + w].copy() if ph or pw else dxp


class _Pool2D(Op):
    """Shared attrs and shape checks of max_pool2d and avg_pool2d."""

    ports = (data("x", "images (N, C, H, W)"),)
    attributes = (
        Attr("size", "pair", 2, WINDOW, "window size: an int, or (height, width)",
             ("pool_size", "kernel_size")),
        Attr("stride", "pair", Same("size"), WINDOW,
             "step between windows: an int, or (height, width)"),
        Attr("pad", "pair", 0, PADDING.bounds, "padding on each side, at most half the window: "
             "an int, or (height, width)", PADDING.aliases),
        FLOOR,
    )
    fusion_kind = "opaque"
    supports_out = True

    def _attrs(self, attrs):
        a = self.read_attrs(attrs)
        size, stride, pad = a["size"], a["stride"], a["pad"]
        if pad[0] > size[0] // 2 or pad[1] > size[1] // 2:
            raise AttrError(
                f"{self.name}: pad {pad} must be at most half the window {size} "
                f"(pad <= {(size[0] // 2, size[1] // 2)}), as in PyTorch; a larger pad makes "
                f"windows of padding only")
        return size, stride, pad, a["floor"]

    def infer_shape(self, in_shapes, attrs):
        (x_shape,) = (tuple(s) for s in in_shapes)
        size, stride, pad, floor = self._attrs(attrs)
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        half = (size[0] // 2, size[1] // 2)
        return (x_shape[0], *out_extent(self.name, x_shape, size, stride, pad, floor, half))

    def _checked(self, inputs, attrs):
        """Validate the input array; return it and (size, stride, pad)."""
        (x,) = inputs
        check_float(self.name, "x", x)
        if x.ndim != 4:
            raise ShapeError(f"{self.name}: input 'x' must be (N, C, H, W), got shape {x.shape}")
        self.infer_shape([x.shape[1:]], attrs)
        return x, self._attrs(attrs)[:3]

    def flops(self, in_shapes, out_shape, attrs):
        size = self._attrs(attrs)[0]
        return size[0] * size[1] * int(np.prod(out_shape, dtype=np.int64))


@register
class MaxPool2D(_Pool2D):
    """Max over windows, padding -inf.  x: (N, C, H, W) -> (N, C, Ho, Wo)."""

    name = "max_pool2d"
    short = "pool"
    aliases = ("pool", "max_pool", "maxpool")
    # backward reads only the argmax indices (its workspace), never x or the output
    saves = frozenset()

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, geometry = self._checked(inputs, attrs)
        return maxpool_forward(x, *geometry, out=out)

    def backward(self, dout, cache, attrs, needs=None):
        return (maxpool_backward(dout, cache),)

    def workspace(self, in_shapes, out_shape, attrs):
        """The argmax of one example, kept for backward: one (uint8 or int32) index per
        output element."""
        return Workspace.kept(int(np.prod(out_shape, dtype=np.int64)))


@register
class AvgPool2D(_Pool2D):
    """Mean over windows, zero padding counted.  x: (N, C, H, W) -> (N, C, Ho, Wo)."""

    name = "avg_pool2d"
    linear = True  # forward mode: the average of the tangent
    short = "avgpool"
    aliases = ("avg_pool", "avgpool")
    saves = frozenset()

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, geometry = self._checked(inputs, attrs)
        return avgpool_forward(x, *geometry, out=out)

    def backward(self, dout, cache, attrs, needs=None):
        return (avgpool_backward(dout, cache),)


@register
class GlobalAvgPool(Op):
    """Mean over each channel's plane.  x: (N, C, H, W) -> (N, C)."""

    name = "global_avg_pool"
    linear = True
    short = "gap"
    aliases = ("gap",)
    ports = (data("x", "images (N, C, H, W)"),)
    attributes = ()
    fusion_kind = "reduction"
    saves = frozenset()

    def infer_shape(self, in_shapes, attrs):
        x_shape = tuple(in_shapes[0])
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        return (x_shape[0],)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        if x.ndim != 4:
            raise ShapeError(f"global_avg_pool: input 'x' must be (N, C, H, W), got shape {x.shape}")
        return x.mean(axis=(2, 3)), x.shape

    def backward(self, dout, cache, attrs, needs=None):
        n, c, h, w = cache
        dx = np.empty(cache, dtype=dout.dtype)
        dx[...] = (dout * dout.dtype.type(1.0 / (h * w)))[:, :, None, None]
        return (dx,)

    def flops(self, in_shapes, out_shape, attrs):
        return int(np.prod(in_shapes[0], dtype=np.int64))
