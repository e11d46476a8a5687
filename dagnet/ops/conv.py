"""2-D convolution (cross-correlation, as in every DL framework): conv2d.

    x: (N, C, H, W), w: (F, C/groups, kh, kw), b: (F,) -> (N, F, Ho, Wo),
    Ho = 1 + (H + pad_top + pad_bottom - (kh - 1)*dh - 1) / sh  (an integer unless floor=True)

`conv_forward` / `conv_backward` are the numeric kernels (the fused ops call them): im2col in
Cython, then BLAS GEMMs. With enough output pixels per sample there is one GEMM per sample,
(w | b) @ cols[n] = out[n], already NCHW; for small outputs one GEMM over the batch is faster
even with the transposes it needs. The row of ones in cols folds the bias add into the GEMM
and, in backward, makes db the last column of dout @ cols.T: no separate bias or reduction
pass over the output. A dilation only changes which pixels im2col gathers; asymmetric pads
only where the windows start and how many there are.

Stride-1 convs the direct kernels (ops/direct.py) leave to im2col because of their dx run on
the direct kernels' forward where ops/conv_planes.py takes them: dx always, the forward too
where its grid is narrow (dw then from the direct kernels' planes).

Grouped convolutions (groups > 1; depthwise when groups = C) take the same columns: the rows
of group g's channels are one contiguous block, so one batched matmul, (G, F/G, K/G) @
(N, G, K/G, P), computes every group of every sample; the bias is a separate add.
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.errors import ShapeError
from dagnet.ops.base import Op, as_pair, check_floats, check_rank, register
from dagnet.ops.conv_blocks import blocked_backward, blocked_forward
from dagnet.ops.conv_planes import (PlanesCache, direct_input_grad, dx_by_direct, fwd_by_direct,
                                    planes_backward)
from dagnet.ops.declare import (COUNT, INITIALIZERS, POSITIVE, REQUIRED, WINDOW, Attr, data,
                                param, weight)
from dagnet.ops.depthwise import (DepthwiseCache, depthwise_backward, depthwise_forward,
                                  uses_depthwise)
from dagnet.ops.depthwise import planes_size as depthwise_planes_size
from dagnet.ops.direct import DirectCache, direct_backward, direct_forward, planes_size, uses_direct
from dagnet.ops.winograd import input_grad, uses_dx
from dagnet.ops.window import (DILATION, FLOOR, PADDING, STRIDE, as_pads, is_symmetric,
                               out_extent, window_out_size)
from dagnet.ops.workspace import Workspace

#: the initializer attrs of an op whose builder makes a weight
INIT = Attr("init", "choice", "he", doc="initializer of the weight (torch: of the bias too, as "
            "PyTorch draws them; see the param nodes' initializers)", choices=INITIALIZERS,
            node=False)
WEIGHT_SCALE = Attr("weight_scale", "number", None, POSITIVE, "std of the weight's gaussian, "
                    "bound of its uniform (for the fan-based inits: instead of the computed "
                    "one)", node=False)
GROUPS = Attr("groups", "int", 1, COUNT, "channel groups: each filter sees C/groups input "
              "channels (groups = C: depthwise)", ("group",), keep_default=False)


def conv_geometry(x_shape, w_shape, stride, pad, dilation=1):
    """(ksize, stride, (top, left) offset, out_size) pairs of a conv with int-or-pair stride
    and dilation and an int, pair or (top, left, bottom, right) pad; floored."""
    stride, pads, ksize = as_pair(stride), as_pads(pad), tuple(w_shape[2:])
    return ksize, stride, pads[:2], window_out_size(x_shape, ksize, stride, pads, dilation)


def weights_with_bias(w, b, dtype):
    """(w | b): (F, C*kh*kw + 1), the GEMM operand whose last column meets im2col's row of
    ones and adds the bias."""
    f = w.shape[0]
    wb = np.empty((f, w[0].size + 1), dtype=dtype)
    wb[:, :-1] = w.reshape(f, -1)
    wb[:, -1] = b
    return wb


# Below this many output pixels per sample, per-sample GEMMs are too thin for BLAS and one GEMM
# over the whole batch wins, transposes included (measured on the benchmark's shapes).
BATCH_GEMM_BELOW = 256
#: the im2col convs by blocks of samples, each block's products one-thread GEMMs on whichever
#: thread is free (ops/conv_blocks.py); False: one GEMM over the batch (or per sample, the
#: batch in one call) threaded by OpenBLAS, for A/B measurements
BLOCKED: bool = True


def conv_forward(x, w, b, stride, pad, contiguous=True, out=None, workspace=None, dilation=1,
                 groups=1):
    """Convolution by im2col and GEMM.  x: (N, C, H, W), w: (F, C/groups, kh, kw), b: (F,)
    -> (out (N, F, Ho, Wo), cache); a stride that does not tile the input is floored.
    pad: an int, (h, w) or (top, left, bottom, right); dilation: an int or (h, w).

    contiguous=False returns the GEMM's output as it lies: for the batch GEMM that is the
    (N, F, Ho, Wo) view of an (F, N, Ho, Wo) array (planes contiguous). A fused epilogue reads
    it in place instead of paying for the transpose to NCHW; `grad_buffer` gives the matching
    layout for the gradient. out: an (N, F, Ho, Wo) array to write into (the memory plan's
    buffer); the batch GEMM with contiguous=False ignores it and returns its own layout.
    workspace: a byte array to build the im2col columns in (the memory plan's buffer)."""
    n, f = x.shape[0], w.shape[0]
    dilation = as_pair(dilation)
    if takes_direct(x.shape[1:], w.shape, stride, pad, dilation, groups):
        # few channels: no im2col (ops/direct.py)
        return direct_forward(x, w, b, as_pair(stride), as_pads(pad)[:2], out=out,
                              workspace=workspace)
    if fwd_by_direct(x.shape[1:], w.shape, stride, pad, dilation, groups):
        out, cache = direct_forward(x, w, b, (1, 1), as_pads(pad)[:2], out=out,
                                    workspace=workspace)
        return out, PlanesCache(*cache)
    ksize, stride, pad, out_size = conv_geometry(x.shape, w.shape, stride, pad, dilation)
    if groups != 1:
        return _grouped_forward(x, w, b, ksize, stride, pad, dilation, out_size, groups, out,
                                workspace)
    p = out_size[0] * out_size[1]
    # the same rule for a fused epilogue reading the GEMM's own layout: giving it the batch
    # GEMM for large outputs too (no transposes to pay) measured slower on LeNet's conv1
    # (fused step 10.4 vs 10.9 ms) and lenet_bn, equal on resnet_small
    layout = "KNP" if p < BATCH_GEMM_BELOW else "NKP"
    wb = weights_with_bias(w, b, x.dtype)
    if BLOCKED:
        return blocked_forward(x, wb, w, ksize, stride, pad, dilation, out_size, layout,
                               contiguous, out, workspace)
    cols = kernels.im2col(x, ksize, stride, pad, out_size, ones_row=True, layout=layout,
                          buffer=workspace, dilation=dilation)
    cache = (cols, layout, w, x.shape, stride, pad, dilation)
    if layout == "NKP":  # one GEMM per sample writes NCHW directly
        if out is None:
            out = np.empty((n, f, *out_size), dtype=x.dtype)
        np.matmul(wb, cols, out=out.reshape(n, f, p))
        return out, cache
    # one GEMM for the batch gives (F, N, P)
    fnp = (wb @ cols.reshape(-1, n * p)).reshape(f, n, *out_size)
    view = fnp.transpose(1, 0, 2, 3)
    if not contiguous:
        return view, cache
    if out is None:
        return np.ascontiguousarray(view), cache
    out[...] = view
    return out, cache


def _grouped_forward(x, w, b, ksize, stride, pad, dilation, out_size, groups, out, workspace):
    """conv_forward for groups > 1: few channels per group by shifted planes
    (ops/depthwise.py), else one batched matmul over (sample, group); NCHW out."""
    if uses_depthwise(x.shape[1:], w.shape, groups):
        return depthwise_forward(x, w, b, groups, stride, pad, dilation, out_size, out=out,
                                 workspace=workspace)
    n, f = x.shape[0], w.shape[0]
    p = out_size[0] * out_size[1]
    cols = kernels.im2col(x, ksize, stride, pad, out_size, layout="NKP", buffer=workspace,
                          dilation=dilation)
    k = cols.shape[1] // groups
    if out is None:
        out = np.empty((n, f, *out_size), dtype=x.dtype)
    np.matmul(w.reshape(groups, f // groups, k), cols.reshape(n, groups, k, p),
              out=out.reshape(n, groups, f // groups, p))
    out += b.reshape(f, 1, 1)
    return out, (cols, "grouped", w, x.shape, stride, pad, dilation, groups)


def grad_buffer(cache, dout_shape, dtype):
    """An empty (N, F, Ho, Wo) gradient laid out as conv_forward's GEMM output (the transposed
    view of an (F, N, Ho, Wo) array for the batch GEMM): a fused epilogue writes dout there
    and conv_backward reads it without a transpose."""
    if isinstance(cache, (DirectCache, DepthwiseCache)) or cache[1] != "KNP":
        return np.empty(dout_shape, dtype=dtype)
    n, f = dout_shape[:2]
    return np.empty((f, n, *dout_shape[2:]), dtype=dtype).transpose(1, 0, 2, 3)


def conv_backward(dout, cache, need_dx=True):
    """Gradients of conv_forward.  dout: (N, F, Ho, Wo) -> (dx (N, C, H, W) or None,
    dw (F, C/groups, kh, kw), db (F,)). A dout from grad_buffer is used as it lies (no copy)."""
    if isinstance(cache, PlanesCache):  # fwd_by_direct (ops/conv_planes.py)
        return planes_backward(dout, cache, need_dx)
    if isinstance(cache, DirectCache):
        if need_dx and uses_dx(cache.x_shape[1:], cache.w.shape, cache.stride, cache.pad):
            dout = np.ascontiguousarray(dout)  # dx by Winograd (ops/winograd.py), dw direct
            return (input_grad(dout, cache.w, cache.pad), *direct_backward(dout, cache, False)[1:])
        return direct_backward(dout, cache, need_dx)
    if isinstance(cache, DepthwiseCache):
        return depthwise_backward(dout, cache, need_dx)
    if cache[1] == "grouped":
        return _grouped_backward(dout, cache, need_dx)
    if need_dx and dx_by_direct(cache[3], cache[2].shape, cache[4], cache[5], cache[6],
                                dout.shape):
        return (direct_input_grad(dout, cache[2], cache[5]),
                *conv_backward(dout, cache, need_dx=False)[1:])
    if BLOCKED:
        return blocked_backward(dout, cache, need_dx)
    cols, layout, w, x_shape, stride, pad, dilation = cache
    n, f = dout.shape[:2]
    p = dout.shape[2] * dout.shape[3]
    w2 = w.reshape(f, -1)
    if layout == "NKP":
        d3 = dout.reshape(n, f, p)
        # per sample cols[n] @ dout[n].T is (K + 1, F), transposed: dw | db, db from the ones
        # row. This orientation ran 1.1-1.8x faster in OpenBLAS than dout[n] @ cols[n].T.
        dwb = np.matmul(cols, d3.transpose(0, 2, 1)).sum(axis=0).T
    else:
        d3 = np.ascontiguousarray(dout.reshape(n, f, p).transpose(1, 0, 2)).reshape(f, n * p)
        dwb = (cols.reshape(-1, n * p) @ d3.T).T  # likewise 1.2x faster than d3 @ cols.T
    dw = dwb[:, :-1].reshape(w.shape)
    db = np.ascontiguousarray(dwb[:, -1])
    if not need_dx:
        return None, dw, db
    dcols = np.matmul(w2.T, d3)  # (N, K, P) per sample, or (K, N*P) for the batch
    dx = kernels.col2im(dcols.reshape(-1, n, p) if layout == "KNP" else dcols, x_shape,
                        w.shape[2:], stride, pad, dout.shape[2:], layout=layout,
                        dilation=dilation)
    return dx, dw, db


def takes_direct(x_shape, w_shape, stride, pad, dilation=(1, 1), groups=1) -> bool:
    """Whether conv_forward runs a conv by the direct kernels (ops/direct.py): plain windows
    (one group, no dilation, the same pad on both sides) that uses_direct picks."""
    pads = as_pads(pad)
    return (groups == 1 and as_pair(dilation) == (1, 1) and is_symmetric(pads)
            and uses_direct(x_shape, w_shape, as_pair(stride), pads[:2]))


def columns_size(w_shape, out_shape, groups=1) -> int:
    """Values of one example's im2col columns (or im2row's rows): (C*kh*kw + 1) x (Ho*Wo)."""
    k = int(np.prod(w_shape[1:], dtype=np.int64)) * groups
    return (k + 1) * int(np.prod(out_shape[1:]))


def _grouped_backward(dout, cache, need_dx):
    cols, _, w, x_shape, stride, pad, dilation, groups = cache
    n, f = dout.shape[:2]
    p = dout.shape[2] * dout.shape[3]
    k = cols.shape[1] // groups
    d4 = dout.reshape(n, groups, f // groups, p)
    # summed over the batch in float64 would cost a copy; the matmul's sums are per sample
    dw = np.matmul(d4, cols.reshape(n, groups, k, p).transpose(0, 1, 3, 2)).sum(axis=0)
    db = dout.sum(axis=(0, 2, 3))
    if not need_dx:
        return None, dw.reshape(w.shape), db
    dcols = np.matmul(w.reshape(groups, f // groups, k).transpose(0, 2, 1), d4)
    dx = kernels.col2im(dcols.reshape(n, groups * k, p), x_shape, w.shape[2:], stride, pad,
                        dout.shape[2:], dilation=dilation)
    return dx, dw.reshape(w.shape), db


def check_weight(op: str, channels: int, w_shape: tuple, groups: int) -> None:
    """ShapeError unless groups divides the input channels and the filters and w (F,
    C/groups, *kernel) holds C/groups channels per filter."""
    f, per = w_shape[:2]
    fix = f"give w shape {(f, channels // groups, *w_shape[2:])}"
    if channels % groups or f % groups:
        raise ShapeError(
            f"{op}: groups={groups} must divide the input channels ({channels}) and the filters "
            f"({f}, w shape {w_shape}); use a divisor of both, e.g. groups="
            f"{np.gcd(channels, f)}")
    if per * groups != channels:
        each = f" ({per} per group x {groups} groups)" if groups > 1 else ""
        raise ShapeError(
            f"{op}: input has {channels} channels but weight expects {per * groups}{each} "
            f"(w shape {w_shape}); {fix}")


@register
class Conv2D(Op):
    """2-D convolution (cross-correlation).  x: (N, C, H, W), w: (F, C/groups, kh, kw), b: (F,) -> (N, F, Ho, Wo)."""

    name = "conv2d"
    short = "conv"
    aliases = ("conv", "convolution")
    ports = (data("x", "images (N, C, H, W)"), weight("w", "filters (F, C/groups, kh, kw)"),
             param("b", "zeros", "one bias per filter (F,)"))
    attributes = (
        Attr("filters", "int", REQUIRED, COUNT, "number of filters F (output channels)",
             ("num_filters",), node=False),
        Attr("size", "pair", REQUIRED, WINDOW, "kernel size: an int, or (height, width)",
             ("filter_size", "kernel_size"), node=False),
        STRIDE, PADDING, INIT, WEIGHT_SCALE, FLOOR, DILATION, GROUPS,
    )
    fusion_kind = "out_fusable"  # an elementwise chain may follow in its step
    supports_out = True
    # backward reads the im2col columns (its workspace) and w, never x itself or the output
    saves = frozenset()
    fresh_grads = True  # dx is a new array on every path (views, such as dw's, are not taken)

    def param_shapes(self, x_shape, attrs):
        check_rank(self.name, "x", tuple(x_shape), 3, "C, H, W")
        f, g = attrs["filters"], attrs["groups"]
        if x_shape[0] % g or f % g:
            raise ShapeError(
                f"conv2d: groups={g} must divide the input channels ({x_shape[0]}) and the "
                f"filters ({f}); use a divisor of both, e.g. groups="
                f"{np.gcd(x_shape[0], f)}")
        return {"w": (f, x_shape[0] // g, *attrs["size"]), "b": (f,)}

    def infer_shape(self, in_shapes, attrs):
        x_shape, w_shape, b_shape = (tuple(s) for s in in_shapes)
        a = self.read_attrs(attrs)
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        if len(w_shape) != 4:
            raise ShapeError(
                f"conv2d: weight 'w' must have 4 dims (F, C/groups, kh, kw), got shape {w_shape}")
        check_weight(self.name, x_shape[0], w_shape, a["groups"])
        f = w_shape[0]
        if b_shape != (f,):
            raise ShapeError(
                f"conv2d: bias 'b' has shape {b_shape} but w shape {w_shape} has {f} filters; "
                f"give b shape ({f},)")
        if min(w_shape[2:]) < 1:
            raise ShapeError(f"conv2d: kernel must be at least 1x1, got w shape {w_shape}")
        return (f, *out_extent(self.name, x_shape, w_shape[2:], a["stride"], a["pad"],
                               a["floor"], dilation=a["dilation"]))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        x, w, b = inputs
        check_floats(self.name, self.input_names, inputs)
        if x.ndim != 4:
            raise ShapeError(f"conv2d: input 'x' must be (N, C, H, W), got shape {x.shape}")
        self.infer_shape([x.shape[1:], w.shape, b.shape], attrs)
        a = self.read_attrs(attrs)
        return conv_forward(x, w, b, a["stride"], a["pad"], out=out, workspace=workspace,
                            dilation=a["dilation"], groups=a["groups"])

    def backward(self, dout, cache, attrs, needs=None):
        return conv_backward(dout, cache, need_dx=needs is None or bool(needs[0]))

    def flops(self, in_shapes, out_shape, attrs):
        w_shape = in_shapes[1]
        return 2 * int(np.prod(w_shape[1:], dtype=np.int64)) * int(np.prod(out_shape, dtype=np.int64))

    def workspace(self, in_shapes, out_shape, attrs):
        """The im2col columns of one example, (C*kh*kw + 1) x (Ho*Wo), or the direct path's
        padded planes: built in the planned buffer, kept for backward."""
        w_shape = in_shapes[1]
        a = self.read_attrs(attrs)
        if (takes_direct(in_shapes[0], w_shape, a["stride"], a["pad"], a["dilation"], a["groups"])
                or fwd_by_direct(in_shapes[0], w_shape, a["stride"], a["pad"], a["dilation"],
                                 a["groups"])):
            planes = planes_size(in_shapes[0], w_shape, as_pair(a["stride"]), as_pads(a["pad"])[:2])
            return Workspace(planes, saved=planes, planned=planes)
        if uses_depthwise(in_shapes[0], w_shape, a["groups"]):
            planes = depthwise_planes_size(in_shapes[0], w_shape, a["groups"],
                                           as_pair(a["stride"]), as_pads(a["pad"]),
                                           as_pair(a["dilation"]), out_shape[1:])
            return Workspace(planes, saved=planes, planned=planes)
        cols = columns_size(w_shape, out_shape, a["groups"])
        return Workspace(cols, saved=cols, planned=cols)

    def kernel_note(self, in_shapes, attrs):
        g = self.read_attrs(attrs)["groups"]
        if g == 1:
            return ""
        kind = "depthwise" if g == in_shapes[0][0] else f"{g} groups"
        planes = uses_depthwise(in_shapes[0], in_shapes[1], g)
        return f"{kind}: {'shifted planes' if planes else 'batched matmul'}"
