"""Pooling: max_pool2d, avg_pool2d, global_avg_pool, global_max_pool.

    max_pool2d, avg_pool2d: x (N, C, H, W) -> (N, C, Ho, Wo); attrs size (int or pair, 2),
        stride (default size), pad (an int, (h, w) or (top, left, bottom, right), each at most
        half the window), dilation (default 1), floor or ceil_mode (a stride that does not
        tile the input: drop the rest, or keep a last partial window; default: an error);
        avg_pool2d also count_include_pad (default True).
    global_avg_pool, global_max_pool: x (N, C, H, W) -> (N, C).

Max-pool pads with -inf; forward stores each window's argmax and backward scatters dout
through it (Cython kernels in dagnet/_kernels/pool.pyx, with a fast path for 2x2 windows at
stride 2 and for any non-overlapping windows in backward). Ties: the first max in the window,
in row-major order, gets the whole gradient. Avg-pool pads with zeros; with
count_include_pad (PyTorch's default) they count in the mean, else each window is divided
by the cells of the input it covers. A ceil_mode window past the padding divides by the
cells it covers of the padded input, as in PyTorch. `maxpool_forward` / `maxpool_backward`
are the kernels the fused ops call.
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels, kernels_numpy
from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, as_pair, check_float, check_rank, register
from dagnet.ops.declare import PAD, WINDOW, Attr, Same, data
from dagnet.ops.window import DILATION, FLOOR, PADDING, as_pads, out_extent, window_out_size
from dagnet.ops.workspace import Workspace

CEIL_MODE = Attr("ceil_mode", "bool", False, doc="keep a last, partial window where the "
                 "stride does not tile the input (PyTorch's and ONNX's ceil_mode)",
                 keep_default=False)


def _geometry(shape, size, stride, pad, dilation, ceil_mode):
    """(ksize, stride, pads, dilation, out_size) of a pool, each attr in its long form."""
    ksize, stride, pads, dil = as_pair(size), as_pair(stride), as_pads(pad), as_pair(dilation)
    return ksize, stride, pads, dil, window_out_size(shape, ksize, stride, pads, dil, ceil_mode)


def maxpool_forward(x, size, stride, pad, out=None, dilation=1, ceil_mode=False):
    """Window maxima.  x: (N, C, H, W) -> (out (N, C, Ho, Wo), cache); floors a partial tiling
    unless ceil_mode. out: an array to write the maxima into."""
    ksize, stride, pads, dil, out_size = _geometry(x.shape, size, stride, pad, dilation,
                                                   ceil_mode)
    out, argmax = kernels.maxpool_forward(x, ksize, stride, pads[:2], out_size, out=out,
                                          dilation=dil)
    return out, (argmax, x.shape, ksize, stride, pads[:2], dil)


def maxpool_backward(dout, cache, dx=None):
    """Gradient of maxpool_forward.  dout: (N, C, Ho, Wo) -> dx (N, C, H, W); dx: an array
    with contiguous (H, W) planes to write it into (a conv's GEMM-layout gradient buffer)."""
    argmax, x_shape, ksize, stride, pad, dil = cache
    return kernels.maxpool_backward(dout, argmax, x_shape, ksize, stride, pad, dx=dx,
                                    dilation=dil)


def _counts(size, k, s, d, begin, end, out, include_pad) -> np.ndarray:
    """Per output along one axis: how many of its window's taps fall in the input (with
    include_pad: in the padded input)."""
    lo, hi = (-begin, size + end) if include_pad else (0, size)
    pos = np.arange(out)[:, None] * s - begin + np.arange(k)[None, :] * d
    return ((pos >= lo) & (pos < hi)).sum(axis=1)


def _divisor(x_shape, ksize, stride, pads, dil, out_size, include_pad):
    """What each window's sum is divided by: a scalar when every window counts kh*kw cells,
    else an (Ho, Wo) array."""
    ch, cw = (_counts(x_shape[2 + a], ksize[a], stride[a], dil[a], pads[a], pads[2 + a],
                      out_size[a], include_pad) for a in range(2))
    if (ch == ksize[0]).all() and (cw == ksize[1]).all():
        return float(ksize[0] * ksize[1])
    return np.maximum(ch[:, None] * cw[None, :], 1)  # an empty window: 0, not a NaN


def avgpool_forward(x, size, stride, pad, out=None, dilation=1, ceil_mode=False,
                    count_include_pad=True):
    """Window means.  x: (N, C, H, W) -> (out (N, C, Ho, Wo), cache). out: an array to write
    the means into."""
    ksize, stride, pads, dil, out_size = _geometry(x.shape, size, stride, pad, dilation,
                                                   ceil_mode)
    xp = kernels_numpy.pad_for_windows(x, pads[:2], ksize, stride, out_size, dil) if any(pads) or ceil_mode \
        else x
    # one strided slice per window tap: kh*kw vectorised adds instead of a loop over windows
    if out is None:
        out = np.zeros((*x.shape[:2], *out_size), dtype=x.dtype)
    else:
        out[...] = 0
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            out += kernels_numpy.window_tap(xp, i, j, stride, out_size, dil)
    div = _divisor(x.shape, ksize, stride, pads, dil, out_size, count_include_pad)
    if np.isscalar(div):
        out *= x.dtype.type(1.0 / div)
    else:
        out /= div.astype(x.dtype)
    return out, (x.shape, ksize, stride, pads[:2], dil, div)


def avgpool_backward(dout, cache):
    """Gradient of avgpool_forward: each window spreads dout / its divisor.  -> dx (N, C, H, W)."""
    x_shape, ksize, stride, pad, dil, div = cache
    (h, w), out_size = x_shape[2:], dout.shape[2:]
    share = dout * dout.dtype.type(1.0 / div) if np.isscalar(div) else dout / div.astype(dout.dtype)
    dxp = kernels_numpy.pad_for_windows(np.zeros(x_shape, dtype=dout.dtype), pad, ksize, stride, out_size, dil)
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            kernels_numpy.window_tap(dxp, i, j, stride, out_size, dil)[...] += share
    if dxp.shape == tuple(x_shape):
        return dxp
    return dxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w].copy()


class _Pool2D(Op):
    """Shared attrs and shape checks of max_pool2d and avg_pool2d."""

    ports = (data("x", "images (N, C, H, W)"),)
    attributes = (
        Attr("size", "pair", 2, WINDOW, "window size: an int, or (height, width)",
             ("pool_size", "kernel_size")),
        Attr("stride", "pair", Same("size"), WINDOW,
             "step between windows: an int, or (height, width)"),
        Attr("pad", "pads", 0, PAD, "padding, at most half the window: an int (every side), "
             "(height, width) or (top, left, bottom, right) as in ONNX", PADDING.aliases),
        FLOOR, DILATION, CEIL_MODE,
    )
    fusion_kind = "opaque"
    supports_out = True

    def _attrs(self, attrs):
        a = self.read_attrs(attrs)
        size, pad = a["size"], a["pad"]
        half = (size[0] // 2, size[1] // 2)
        if any(p > half[i % 2] for i, p in enumerate(pad)):
            shown = pad[:2] if pad[:2] == pad[2:] else pad
            raise AttrError(
                f"{self.name}: pad {shown} must be at most half the window {size} "
                f"(pad <= {half}), as in PyTorch; a larger pad makes windows of padding only")
        if a["ceil_mode"] and a["floor"]:
            raise AttrError(f"{self.name}: ceil_mode and floor both set; a stride that does "
                            f"not tile the input keeps a last partial window (ceil_mode) or "
                            f"drops the rest (floor): choose one")
        return a

    def infer_shape(self, in_shapes, attrs):
        (x_shape,) = (tuple(s) for s in in_shapes)
        a = self._attrs(attrs)
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        size = a["size"]
        half = (size[0] // 2, size[1] // 2)
        return (x_shape[0], *out_extent(self.name, x_shape, size, a["stride"], a["pad"],
                                        a["floor"], half, a["dilation"], a["ceil_mode"]))

    def _checked(self, inputs, attrs):
        """Validate the input array; return it and its checked attrs."""
        (x,) = inputs
        check_float(self.name, "x", x)
        if x.ndim != 4:
            raise ShapeError(f"{self.name}: input 'x' must be (N, C, H, W), got shape {x.shape}")
        self.infer_shape([x.shape[1:]], attrs)
        return x, self._attrs(attrs)

    def flops(self, in_shapes, out_shape, attrs):
        size = self._attrs(attrs)["size"]
        return size[0] * size[1] * int(np.prod(out_shape, dtype=np.int64))


def _window_kwargs(a: dict) -> dict:
    return {"dilation": a["dilation"], "ceil_mode": a["ceil_mode"]}


@register
class MaxPool2D(_Pool2D):
    """Max over windows, padding -inf.  x: (N, C, H, W) -> (N, C, Ho, Wo)."""

    name = "max_pool2d"
    short = "pool"
    aliases = ("pool", "max_pool", "maxpool")
    # backward reads only the argmax indices (its workspace), never x or the output
    saves = frozenset()

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, a = self._checked(inputs, attrs)
        return maxpool_forward(x, a["size"], a["stride"], a["pad"], out=out, **_window_kwargs(a))

    def backward(self, dout, cache, attrs, needs=None):
        return (maxpool_backward(dout, cache),)

    def workspace(self, in_shapes, out_shape, attrs):
        """The argmax of one example, kept for backward: one (uint8 or int32) index per
        output element."""
        return Workspace.kept(int(np.prod(out_shape, dtype=np.int64)))


@register
class AvgPool2D(_Pool2D):
    """Mean over windows, zero padding counted unless count_include_pad=False.  x: (N, C, H, W) -> (N, C, Ho, Wo)."""

    name = "avg_pool2d"
    linear = True  # forward mode: the average of the tangent
    short = "avgpool"
    aliases = ("avg_pool", "avgpool")
    attributes = _Pool2D.attributes + (
        Attr("count_include_pad", "bool", True, doc="whether the zero padding counts in each "
             "window's mean (PyTorch's default; ONNX's is false)", keep_default=False),
    )
    saves = frozenset()

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, a = self._checked(inputs, attrs)
        return avgpool_forward(x, a["size"], a["stride"], a["pad"], out=out,
                               count_include_pad=a["count_include_pad"], **_window_kwargs(a))

    def backward(self, dout, cache, attrs, needs=None):
        return (avgpool_backward(dout, cache),)


class _GlobalPool(Op):
    """Shared shape checks of the global pools: (N, C, H, W) -> (N, C)."""

    ports = (data("x", "images (N, C, H, W)"),)
    attributes = ()
    fusion_kind = "reduction"
    saves = frozenset()

    def infer_shape(self, in_shapes, attrs):
        x_shape = tuple(in_shapes[0])
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        return (x_shape[0],)

    def _checked(self, inputs):
        (x,) = inputs
        check_float(self.name, "x", x)
        if x.ndim != 4:
            raise ShapeError(f"{self.name}: input 'x' must be (N, C, H, W), got shape {x.shape}")
        return x

    def flops(self, in_shapes, out_shape, attrs):
        return int(np.prod(in_shapes[0], dtype=np.int64))


@register
class GlobalAvgPool(_GlobalPool):
    """Mean over each channel's plane.  x: (N, C, H, W) -> (N, C)."""

    name = "global_avg_pool"
    linear = True  # forward mode: the mean of the tangent
    fresh_grads = True  # dx is a new array
    short = "gap"
    aliases = ("gap",)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x = self._checked(inputs)
        return x.mean(axis=(2, 3)), x.shape

    def backward(self, dout, cache, attrs, needs=None):
        n, c, h, w = cache
        dx = np.empty(cache, dtype=dout.dtype)
        dx[...] = (dout * dout.dtype.type(1.0 / (h * w)))[:, :, None, None]
        return (dx,)


@register
class GlobalMaxPool(_GlobalPool):
    """Max over each channel's plane (the first max gets the gradient).  x: (N, C, H, W) -> (N, C)."""

    name = "global_max_pool"
    short = "gmp"
    aliases = ("gmp",)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x = self._checked(inputs)
        planes = x.reshape(*x.shape[:2], -1)
        where = np.argmax(planes, axis=2)  # the first max, or the first NaN
        return np.take_along_axis(planes, where[..., None], axis=2)[..., 0], (where, x.shape)

    def backward(self, dout, cache, attrs, needs=None):
        where, x_shape = cache
        dx = np.zeros((*x_shape[:2], x_shape[2] * x_shape[3]), dtype=dout.dtype)
        np.put_along_axis(dx, where[..., None], dout[..., None], axis=2)
        return (dx.reshape(x_shape),)

    def workspace(self, in_shapes, out_shape, attrs):
        """Where each plane's max is, kept for backward."""
        return Workspace.kept(int(np.prod(out_shape, dtype=np.int64)))
