"""Transposed convolution (a "deconvolution", ONNX ConvTranspose): conv_transpose.

    x: (N, C, H, W), w: (C, F/groups, kh, kw), b: (F,) -> (N, F, Ho, Wo),
    Ho = (H - 1)*sh - pad_top - pad_bottom + (kh - 1)*dh + 1 + output_padding_h

It is conv2d's backward for dx run forward: each input pixel adds itself times the filter
onto the output, stride cells apart. So it is the same two kernels the other way round:
forward = a GEMM w^T @ x giving the columns, then col2im; backward = im2col of dout, then
GEMMs for dx and dw. Groups split the channels as in conv2d (one batched matmul); the pads
crop the output, output_padding adds rows/columns at its bottom/right (which size, of the
several a strided conv maps to H, is meant).
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, as_pair, check_floats, check_rank, register
from dagnet.ops.conv import GROUPS, INIT, WEIGHT_SCALE
from dagnet.ops.declare import COUNT, PAD, REQUIRED, WINDOW, Attr, data, param, weight
from dagnet.ops.window import DILATION, PADDING, STRIDE, as_pads, span
from dagnet.ops.workspace import Workspace


def transposed_size(size, k, s, begin, end, d, extra) -> int:
    """Output cells along one axis of a transposed convolution."""
    return (size - 1) * s - begin - end + span(k, d) + extra


def conv_transpose_forward(x, w, b, stride, pad, output_padding=0, dilation=1, groups=1):
    """x: (N, C, H, W), w: (C, F/groups, kh, kw), b: (F,) -> (out (N, F, Ho, Wo), cache)."""
    stride, pads, dil, extra = as_pair(stride), as_pads(pad), as_pair(dilation), \
        as_pair(output_padding)
    n, c, h, wd = x.shape
    fg, kh, kw = w.shape[1:]
    f, k = fg * groups, fg * kh * kw
    out_size = tuple(transposed_size(x.shape[2 + a], w.shape[2 + a], stride[a], pads[a],
                                     pads[2 + a], dil[a], extra[a]) for a in range(2))
    w3 = w.reshape(groups, c // groups, k)
    # per sample and group: cols = w_g^T @ x_g, (F/G*kh*kw, H*W), the conv's dx columns
    cols = np.matmul(w3.transpose(0, 2, 1), x.reshape(n, groups, c // groups, h * wd))
    out = kernels.col2im(cols.reshape(n, groups * k, h * wd), (n, f, *out_size), (kh, kw),
                         stride, pads[:2], (h, wd), dilation=dil)
    out += b.reshape(f, 1, 1)
    return out, (x, w, stride, pads[:2], dil, groups)


def conv_transpose_backward(dout, cache, need_dx=True):
    """Gradients of conv_transpose_forward.  dout: (N, F, Ho, Wo) -> (dx or None, dw, db)."""
    x, w, stride, pad, dil, groups = cache
    n, c, h, wd = x.shape
    k = w[0].size
    dcols = kernels.im2col(dout, w.shape[2:], stride, pad, (h, wd), dilation=dil)
    d4 = dcols.reshape(n, groups, k, h * wd)
    x4 = x.reshape(n, groups, c // groups, h * wd)
    dw = np.matmul(x4, d4.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3))
    if not need_dx:
        return None, dw, db
    dx = np.matmul(w.reshape(groups, c // groups, k), d4).reshape(x.shape)
    return dx, dw, db


@register
class ConvTranspose(Op):
    """Transposed 2-D convolution.  x: (N, C, H, W), w: (C, F/groups, kh, kw), b: (F,) -> (N, F, Ho, Wo)."""

    name = "conv_transpose"
    short = "deconv"
    aliases = ("deconv", "conv_transpose2d", "deconvolution")
    ports = (data("x", "images (N, C, H, W)"),
             weight("w", "filters (C, F/groups, kh, kw): input channels first"),
             param("b", "zeros", "one bias per output channel (F,)"))
    attributes = (
        Attr("filters", "int", REQUIRED, COUNT, "number of output channels F",
             ("num_filters",), node=False),
        Attr("size", "pair", REQUIRED, WINDOW, "kernel size: an int, or (height, width)",
             ("filter_size", "kernel_size"), node=False),
        Attr(STRIDE.name, "pair", 1, WINDOW, "spacing of the input's pixels on the output: "
             "an int, or (height, width)"),
        Attr(PADDING.name, "pads", 0, PAD, "cells cropped from the output's sides: an int, "
             "(height, width) or (top, left, bottom, right) as in ONNX", PADDING.aliases),
        Attr("output_padding", "pair", 0, PAD, "cells added at the output's bottom/right "
             "(less than the stride or the dilation): which of the sizes a strided conv maps "
             "to the input's is meant", ("output_pad",), keep_default=False),
        DILATION, GROUPS, INIT, WEIGHT_SCALE,
    )
    fusion_kind = "opaque"
    # backward reads x (for dw) and w; the output is not needed
    saves = frozenset({"input"})

    def param_shapes(self, x_shape, attrs):
        check_rank(self.name, "x", tuple(x_shape), 3, "C, H, W")
        f, g = attrs["filters"], attrs["groups"]
        if x_shape[0] % g or f % g:
            raise ShapeError(
                f"conv_transpose: groups={g} must divide the input channels ({x_shape[0]}) and "
                f"the output channels ({f}); use a divisor of both, e.g. groups="
                f"{np.gcd(x_shape[0], f)}")
        return {"w": (x_shape[0], f // g, *attrs["size"]), "b": (f,)}

    def infer_shape(self, in_shapes, attrs):
        x_shape, w_shape, b_shape = (tuple(s) for s in in_shapes)
        a = self.read_attrs(attrs)
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        if len(w_shape) != 4:
            raise ShapeError(f"conv_transpose: weight 'w' must have 4 dims (C, F/groups, kh, "
                             f"kw), got shape {w_shape}")
        g = a["groups"]
        if w_shape[0] != x_shape[0]:
            raise ShapeError(
                f"conv_transpose: input has {x_shape[0]} channels but weight expects "
                f"{w_shape[0]} (w shape {w_shape}: input channels first); give w shape "
                f"({x_shape[0]}, {w_shape[1]}, {w_shape[2]}, {w_shape[3]})")
        if x_shape[0] % g:
            raise ShapeError(f"conv_transpose: groups={g} must divide the input channels "
                             f"({x_shape[0]})")
        f = w_shape[1] * g
        if b_shape != (f,):
            raise ShapeError(f"conv_transpose: bias 'b' has shape {b_shape} but w shape "
                             f"{w_shape} with groups={g} makes {f} output channels; give b "
                             f"shape ({f},)")
        stride, pads, dil, extra = a["stride"], a["pad"], a["dilation"], a["output_padding"]
        for axis in range(2):
            if extra[axis] >= max(stride[axis], dil[axis]):
                raise AttrError(
                    f"conv_transpose: output_padding {extra} must be smaller than the stride "
                    f"{stride} or the dilation {dil} on each axis: a larger one adds cells no "
                    f"input reaches")
        out = tuple(transposed_size(x_shape[1 + a], w_shape[2 + a], stride[a], pads[a],
                                    pads[2 + a], dil[a], extra[a]) for a in range(2))
        if min(out) < 1:
            raise ShapeError(
                f"conv_transpose: pads {pads} crop the whole output (input {x_shape}, kernel "
                f"{w_shape[2:]}, stride {stride}: {out[0]}x{out[1]} left); use smaller pads")
        return (f, *out)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, w, b = inputs
        check_floats(self.name, self.input_names, inputs)
        if x.ndim != 4:
            raise ShapeError(f"conv_transpose: input 'x' must be (N, C, H, W), got shape {x.shape}")
        self.infer_shape([x.shape[1:], w.shape, b.shape], attrs)
        a = self.read_attrs(attrs)
        return conv_transpose_forward(x, w, b, a["stride"], a["pad"], a["output_padding"],
                                      a["dilation"], a["groups"])

    def backward(self, dout, cache, attrs, needs=None):
        return conv_transpose_backward(dout, cache, need_dx=needs is None or bool(needs[0]))

    def flops(self, in_shapes, out_shape, attrs):
        x_shape, w_shape = in_shapes[:2]
        return 2 * int(np.prod(x_shape, dtype=np.int64)) * int(np.prod(w_shape[1:], dtype=np.int64))

    def workspace(self, in_shapes, out_shape, attrs):
        """The columns of one example, (F/groups*kh*kw*groups) x (H*W), scattered into the
        output and not kept."""
        x_shape, w_shape = in_shapes[:2]
        g = self.read_attrs(attrs)["groups"]
        return Workspace(int(np.prod(w_shape[1:], dtype=np.int64)) * g *
                         int(np.prod(x_shape[1:], dtype=np.int64)))
