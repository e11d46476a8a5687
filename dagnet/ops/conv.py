"""2-D convolution (cross-correlation, as in every DL framework): conv2d.

    x: (N, C, H, W), w: (F, C, kh, kw), b: (F,) -> (N, F, Ho, Wo),
    Ho = 1 + (H + 2*ph - kh) / sh  (an integer unless attrs floor=True), likewise Wo.

`conv_forward` / `conv_backward` are the numeric kernels (the fused ops call them): im2col in
Cython, then BLAS GEMMs. With enough output pixels per sample there is one GEMM per sample,
(w | b) @ cols[n] = out[n], already NCHW; for small outputs one GEMM over the batch is faster
even with the transposes it needs. The row of ones in cols folds the bias add into the GEMM
and, in backward, makes db the last column of dout @ cols.T: no separate bias or reduction
pass over the output.
`out_extent` is shared with the pooling ops.
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.errors import ShapeError
from dagnet.ops.base import Op, as_pair, check_floats, check_rank, register
from dagnet.ops.declare import (COUNT, INITIALIZERS, PAD, POSITIVE, REQUIRED, WINDOW, Attr, data,
                                param, weight)
from dagnet.ops.workspace import Workspace

_AXES = ("height", "width")
#: the attrs every window op (conv, pools) has: how the window moves and what it may drop
STRIDE = Attr("stride", "pair", 1, WINDOW, "step between windows: an int, or (height, width)")
PADDING = Attr("pad", "pair", 0, PAD, "zeros added on each side: an int, or (height, width)",
               ("padding",))
FLOOR = Attr("floor", "bool", False, doc="drop the last rows/columns a stride does not reach, "
             "instead of an error", keep_default=False)
#: the initializer attrs of an op whose builder makes a weight
INIT = Attr("init", "choice", "he", doc="initializer of the weight", choices=INITIALIZERS,
            node=False)
WEIGHT_SCALE = Attr("weight_scale", "number", None, POSITIVE, "std of the weight's gaussian "
                    "(for he and xavier: instead of the computed std)", node=False)


def out_extent(op: str, in_shape: tuple, ksize, stride, pad, floor: bool,
               max_pad=(None, None)) -> tuple[int, int]:
    """Output (Ho, Wo) of a window op on a per-example (C, H, W) input; ShapeError if the
    window does not fit the padded input or (unless floor) the stride does not tile it.
    max_pad bounds the pads the message may suggest (pools allow at most half the window)."""
    size = tuple(in_shape[-2:])
    padded = tuple(s + 2 * p for s, p in zip(size, pad))
    if ksize[0] > padded[0] or ksize[1] > padded[1]:
        raise ShapeError(
            f"{op}: kernel {ksize[0]}x{ksize[1]} is larger than the padded input "
            f"{padded[0]}x{padded[1]} (input {tuple(in_shape)}, pad {pad}); use a kernel of at "
            f"most {padded[0]}x{padded[1]} or pad at least "
            f"{max(0, -(-(ksize[0] - size[0]) // 2))}x{max(0, -(-(ksize[1] - size[1]) // 2))}"
        )
    out = []
    for axis, s, k, st, p, top in zip(_AXES, size, ksize, stride, pad, max_pad):
        span = s + 2 * p - k
        if span % st and not floor:
            raise ShapeError(_tiling_message(op, in_shape, axis, s, k, st, p, top))
        out.append(span // st + 1)
    return tuple(out)


def _tiling_message(op, in_shape, axis, s, k, st, p, max_pad) -> str:
    """Explain 1 + (W - F + 2P)/S is not an integer and say which pad or stride would fit."""
    span = s + 2 * p - k
    fits = []
    top = p + st if max_pad is None else min(p + st, max_pad)
    pads = [q for q in range(max(0, p - st), top + 1) if (s + 2 * q - k) % st == 0]
    if pads:
        fits.append(f"pad {min(pads, key=lambda q: abs(q - p))}")
    # span % st != 0 implies span > 0; the divisors of span below st are all candidates
    fits.append(f"stride {max(d for d in range(1, min(st, span + 1)) if span % d == 0)}")
    dim = "H" if axis == "height" else "W"
    return (
        f"{op}: stride {st} does not tile the input {axis}: 1 + ({dim} - F + 2P)/S = "
        f"1 + ({s} - {k} + 2*{p})/{st} = {1 + span / st:g} is not an integer "
        f"(input {tuple(in_shape)}, kernel {k}, pad {p}, stride {st}); "
        f"{' or '.join(fits)} would fit, or set floor=True to drop the last {span % st} "
        f"{'row' if axis == 'height' else 'column'}(s)"
    )


def window_out_size(shape, ksize, stride, pad) -> tuple[int, int]:
    """(Ho, Wo) of a window op (conv or pool) over the last two axes of `shape`, floored."""
    return tuple((s + 2 * p - k) // st + 1 for s, k, st, p in zip(shape[-2:], ksize, stride, pad))


def conv_geometry(x_shape, w_shape, stride, pad):
    """(ksize, stride, pad, out_size) pairs of a conv with int-or-pair stride and pad."""
    stride, pad, ksize = as_pair(stride), as_pair(pad), tuple(w_shape[2:])
    return ksize, stride, pad, window_out_size(x_shape, ksize, stride, pad)


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


def conv_forward(x, w, b, stride, pad, contiguous=True, out=None, workspace=None):
    """Convolution by im2col and GEMM.  x: (N, C, H, W), w: (F, C, kh, kw), b: (F,)
    -> (out (N, F, Ho, Wo), cache); a stride that does not tile the input is floored.

    contiguous=False returns the GEMM's output as it lies: for the batch GEMM that is the
    (N, F, Ho, Wo) view of an (F, N, Ho, Wo) array (planes contiguous). A fused epilogue reads
    it in place instead of paying for the transpose to NCHW; `grad_buffer` gives the matching
    layout for the gradient. out: an (N, F, Ho, Wo) array to write into (the memory plan's
    buffer); the batch GEMM with contiguous=False ignores it and returns its own layout.
    workspace: a byte array to build the im2col columns in (the memory plan's buffer)."""
    n, f = x.shape[0], w.shape[0]
    ksize, stride, pad, out_size = conv_geometry(x.shape, w.shape, stride, pad)
    p = out_size[0] * out_size[1]
    # the same rule for a fused epilogue reading the GEMM's own layout: giving it the batch
    # GEMM for large outputs too (no transposes to pay) measured slower on LeNet's conv1
    # (fused step 10.4 vs 10.9 ms) and lenet_bn, equal on resnet_small
    layout = "KNP" if p < BATCH_GEMM_BELOW else "NKP"
    cols = kernels.im2col(x, ksize, stride, pad, out_size, ones_row=True, layout=layout,
                          buffer=workspace)
    wb = weights_with_bias(w, b, x.dtype)
    cache = (cols, layout, w, x.shape, stride, pad)
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


def grad_buffer(cache, dout_shape, dtype):
    """An empty (N, F, Ho, Wo) gradient laid out as conv_forward's GEMM output (the transposed
    view of an (F, N, Ho, Wo) array for the batch GEMM): a fused epilogue writes dout there
    and conv_backward reads it without a transpose."""
    if cache[1] == "NKP":
        return np.empty(dout_shape, dtype=dtype)
    n, f = dout_shape[:2]
    return np.empty((f, n, *dout_shape[2:]), dtype=dtype).transpose(1, 0, 2, 3)


def conv_backward(dout, cache, need_dx=True):
    """Gradients of conv_forward.  dout: (N, F, Ho, Wo) -> (dx (N, C, H, W) or None,
    dw (F, C, kh, kw), db (F,)). A dout from grad_buffer is used as it lies (no copy)."""
    cols, layout, w, x_shape, stride, pad = cache
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
                        w.shape[2:], stride, pad, dout.shape[2:], layout=layout)
    return dx, dw, db


@register
class Conv2D(Op):
    """2-D convolution (cross-correlation).  x: (N, C, H, W), w: (F, C, kh, kw), b: (F,) -> (N, F, Ho, Wo)."""

    name = "conv2d"
    short = "conv"
    aliases = ("conv", "convolution")
    ports = (data("x", "images (N, C, H, W)"), weight("w", "filters (F, C, kh, kw)"),
             param("b", "zeros", "one bias per filter (F,)"))
    attributes = (
        Attr("filters", "int", REQUIRED, COUNT, "number of filters F (output channels)",
             ("num_filters",), node=False),
        Attr("size", "pair", REQUIRED, WINDOW, "kernel size: an int, or (height, width)",
             ("filter_size", "kernel_size"), node=False),
        STRIDE, PADDING, INIT, WEIGHT_SCALE, FLOOR,
    )
    fusion_kind = "out_fusable"  # an elementwise chain may follow in its step
    supports_out = True
    # backward reads the im2col columns (its workspace) and w, never x itself or the output
    saves = frozenset()

    def param_shapes(self, x_shape, attrs):
        check_rank(self.name, "x", tuple(x_shape), 3, "C, H, W")
        f = attrs["filters"]
        return {"w": (f, x_shape[0], *attrs["size"]), "b": (f,)}

    def infer_shape(self, in_shapes, attrs):
        x_shape, w_shape, b_shape = (tuple(s) for s in in_shapes)
        a = self.read_attrs(attrs)
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        if len(w_shape) != 4:
            raise ShapeError(
                f"conv2d: weight 'w' must have 4 dims (F, C, kh, kw), got shape {w_shape}")
        f, c = w_shape[:2]
        if x_shape[0] != c:
            raise ShapeError(
                f"conv2d: input has {x_shape[0]} channels but weight expects {c} "
                f"(w shape {w_shape}); give w shape ({f}, {x_shape[0]}, {w_shape[2]}, {w_shape[3]})"
            )
        if b_shape != (f,):
            raise ShapeError(
                f"conv2d: bias 'b' has shape {b_shape} but w shape {w_shape} has {f} filters; "
                f"give b shape ({f},)")
        if min(w_shape[2:]) < 1:
            raise ShapeError(f"conv2d: kernel must be at least 1x1, got w shape {w_shape}")
        return (f, *out_extent(self.name, x_shape, w_shape[2:], a["stride"], a["pad"], a["floor"]))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        x, w, b = inputs
        check_floats(self.name, self.input_names, inputs)
        if x.ndim != 4:
            raise ShapeError(f"conv2d: input 'x' must be (N, C, H, W), got shape {x.shape}")
        self.infer_shape([x.shape[1:], w.shape, b.shape], attrs)
        a = self.read_attrs(attrs)
        return conv_forward(x, w, b, a["stride"], a["pad"], out=out, workspace=workspace)

    def backward(self, dout, cache, attrs, needs=None):
        return conv_backward(dout, cache, need_dx=needs is None or bool(needs[0]))

    def flops(self, in_shapes, out_shape, attrs):
        w_shape = in_shapes[1]
        return 2 * int(np.prod(w_shape[1:], dtype=np.int64)) * int(np.prod(out_shape, dtype=np.int64))

    def workspace(self, in_shapes, out_shape, attrs):
        """The im2col columns of one example, (C*kh*kw + 1) x (Ho*Wo): built in the planned
        buffer, kept for backward."""
        w_shape = in_shapes[1]
        cols = (int(np.prod(w_shape[1:], dtype=np.int64)) + 1) * int(np.prod(out_shape[1:]))
        return Workspace(cols, saved=cols, planned=cols)
