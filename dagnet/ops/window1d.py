"""1-D window ops over sequences: conv1d, max_pool1d, avg_pool1d.

    conv1d: x (N, C, L), w (F, C/groups, k), b (F,) -> (N, F, Lo)
    max_pool1d, avg_pool1d: x (N, C, L) -> (N, C, Lo)
    Lo = 1 + (L + pad_begin + pad_end - (k - 1)*d - 1) / s

Each is its 2-D twin on the (N, C, 1, L) view of its input (a reshape, no copy): one row of
height 1, the 2-D kernels and their fast paths unchanged. The ops are their own (not conv2d
with a flag) so that shapes, messages and ONNX speak of lengths.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_float, check_floats, check_rank, register
from dagnet.ops.conv import GROUPS, INIT, WEIGHT_SCALE, check_weight, conv_backward, conv_forward
from dagnet.ops.declare import COUNT, PAD, REQUIRED, WINDOW, Attr, Same, data, param, weight
from dagnet.ops.pool import (CEIL_MODE, avgpool_backward, avgpool_forward, maxpool_backward,
                             maxpool_forward)
from dagnet.ops.window import FLOOR, out_extent
from dagnet.ops.workspace import Workspace

_LENGTH = ("length",)
STRIDE = Attr("stride", "int", 1, WINDOW, "step between windows")
PADDING = Attr("pad", "pair", 0, PAD, "zeros added at the ends: an int (both), or (begin, end)",
               ("padding",))
DILATION = Attr("dilation", "int", 1, WINDOW, "spacing between the window's taps (1: dense)",
                ("dilations",), keep_default=False)


def _as_2d(a: dict) -> dict:
    """The 2-D window of a 1-D op's read attrs: height 1, no vertical stride, pad or dilation."""
    (begin, end), out = a["pad"], {}
    out["pad"] = (0, begin, 0, end)
    out["stride"] = (1, a["stride"])
    out["dilation"] = (1, a["dilation"])
    if "size" in a:
        out["size"] = (1, a["size"])
    return out


def _rows(x):
    """(N, C, L) -> its (N, C, 1, L) view."""
    return x.reshape(x.shape[0], x.shape[1], 1, x.shape[2])


def _check_input(op: str, x) -> None:
    if x.ndim != 3:
        raise ShapeError(f"{op}: input 'x' must be (N, C, L), got shape {x.shape}")


@register
class Conv1D(Op):
    """1-D convolution (cross-correlation).  x: (N, C, L), w: (F, C/groups, k), b: (F,) -> (N, F, Lo)."""

    name = "conv1d"
    short = "conv1d_"
    aliases = ("convolution1d",)
    ports = (data("x", "sequences (N, C, L)"), weight("w", "filters (F, C/groups, k)"),
             param("b", "zeros", "one bias per filter (F,)"))
    attributes = (
        Attr("filters", "int", REQUIRED, COUNT, "number of filters F (output channels)",
             ("num_filters",), node=False),
        Attr("size", "int", REQUIRED, WINDOW, "kernel size", ("filter_size", "kernel_size"),
             node=False),
        STRIDE, PADDING, INIT, WEIGHT_SCALE, FLOOR, DILATION, GROUPS,
    )
    fusion_kind = "opaque"
    saves = frozenset()

    def param_shapes(self, x_shape, attrs):
        check_rank(self.name, "x", tuple(x_shape), 2, "C, L")
        f, g = attrs["filters"], attrs["groups"]
        check_weight(self.name, x_shape[0], (f, x_shape[0] // g, attrs["size"]), g)
        return {"w": (f, x_shape[0] // g, attrs["size"]), "b": (f,)}

    def infer_shape(self, in_shapes, attrs):
        x_shape, w_shape, b_shape = (tuple(s) for s in in_shapes)
        a = self.read_attrs(attrs)
        check_rank(self.name, "x", x_shape, 2, "C, L")
        if len(w_shape) != 3:
            raise ShapeError(f"conv1d: weight 'w' must have 3 dims (F, C/groups, k), got shape "
                             f"{w_shape}")
        check_weight(self.name, x_shape[0], w_shape, a["groups"])
        if b_shape != (w_shape[0],):
            raise ShapeError(f"conv1d: bias 'b' has shape {b_shape} but w shape {w_shape} has "
                             f"{w_shape[0]} filters; give b shape ({w_shape[0]},)")
        return (w_shape[0], *out_extent(self.name, x_shape, w_shape[2:], (a["stride"],),
                                        a["pad"], a["floor"], dilation=(a["dilation"],),
                                        axes=_LENGTH))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, w, b = inputs
        check_floats(self.name, self.input_names, inputs)
        _check_input(self.name, x)
        self.infer_shape([x.shape[1:], w.shape, b.shape], attrs)
        a = self.read_attrs(attrs)
        a2 = _as_2d(a)
        y, cache = conv_forward(_rows(x), _rows(w), b, a2["stride"], a2["pad"],
                                dilation=a2["dilation"], groups=a["groups"])
        return y.reshape(y.shape[0], y.shape[1], y.shape[3]), cache

    def backward(self, dout, cache, attrs, needs=None):
        dx, dw, db = conv_backward(_rows(dout), cache, need_dx=needs is None or bool(needs[0]))
        return (None if dx is None else dx.reshape(dx.shape[0], dx.shape[1], -1),
                dw.reshape(dw.shape[0], dw.shape[1], -1), db)

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * int(np.prod(in_shapes[1][1:], dtype=np.int64)) * \
            int(np.prod(out_shape, dtype=np.int64))

    def workspace(self, in_shapes, out_shape, attrs):
        """The im2col columns of one example, kept for backward."""
        k = int(np.prod(in_shapes[1][1:], dtype=np.int64)) * self.read_attrs(attrs)["groups"]
        cols = (k + 1) * out_shape[1]
        return Workspace(cols, saved=cols)


class _Pool1D(Op):
    """Shared attrs and checks of max_pool1d and avg_pool1d."""

    ports = (data("x", "sequences (N, C, L)"),)
    attributes = (
        Attr("size", "int", 2, WINDOW, "window size", ("pool_size", "kernel_size")),
        Attr("stride", "int", Same("size"), WINDOW, "step between windows"),
        Attr("pad", "pair", 0, PAD, "padding at the ends, at most half the window: an int "
             "(both), or (begin, end)", ("padding",)),
        FLOOR, DILATION, CEIL_MODE,
    )
    fusion_kind = "opaque"
    saves = frozenset()

    def infer_shape(self, in_shapes, attrs):
        (x_shape,) = (tuple(s) for s in in_shapes)
        a = self.read_attrs(attrs)
        check_rank(self.name, "x", x_shape, 2, "C, L")
        half = a["size"] // 2
        if max(a["pad"]) > half:
            raise AttrError(f"{self.name}: pad {a['pad']} must be at most half the window "
                            f"{a['size']} (pad <= {half}), as in PyTorch")
        if a["ceil_mode"] and a["floor"]:
            raise AttrError(f"{self.name}: ceil_mode and floor both set; choose one")
        return (x_shape[0], *out_extent(self.name, x_shape, (a["size"],), (a["stride"],),
                                        a["pad"], a["floor"], (half,), (a["dilation"],),
                                        a["ceil_mode"], _LENGTH))

    def _checked(self, inputs, attrs):
        (x,) = inputs
        check_float(self.name, "x", x)
        _check_input(self.name, x)
        self.infer_shape([x.shape[1:]], attrs)
        a = self.read_attrs(attrs)
        return _rows(x), {**_as_2d(a), "ceil_mode": a["ceil_mode"]}, a

    @staticmethod
    def _flat(y):
        return y.reshape(y.shape[0], y.shape[1], y.shape[3])

    def flops(self, in_shapes, out_shape, attrs):
        return self.read_attrs(attrs)["size"] * int(np.prod(out_shape, dtype=np.int64))


@register
class MaxPool1D(_Pool1D):
    """Max over windows of a sequence, padding -inf.  x: (N, C, L) -> (N, C, Lo)."""

    name = "max_pool1d"
    short = "pool1d_"
    aliases = ("maxpool1d",)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x4, a2, _ = self._checked(inputs, attrs)
        y, cache = maxpool_forward(x4, a2["size"], a2["stride"], a2["pad"],
                                   dilation=a2["dilation"], ceil_mode=a2["ceil_mode"])
        return self._flat(y), cache

    def backward(self, dout, cache, attrs, needs=None):
        dx = maxpool_backward(_rows(dout), cache)
        return (dx.reshape(dx.shape[0], dx.shape[1], -1),)

    def workspace(self, in_shapes, out_shape, attrs):
        """The argmax of one example, kept for backward."""
        return Workspace.kept(int(np.prod(out_shape, dtype=np.int64)))


@register
class AvgPool1D(_Pool1D):
    """Mean over windows of a sequence.  x: (N, C, L) -> (N, C, Lo)."""

    name = "avg_pool1d"
    short = "avgpool1d_"
    aliases = ("avgpool1d",)
    attributes = _Pool1D.attributes + (
        Attr("count_include_pad", "bool", True, doc="whether the zero padding counts in each "
             "window's mean (PyTorch's default; ONNX's is false)", keep_default=False),
    )

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x4, a2, a = self._checked(inputs, attrs)
        y, cache = avgpool_forward(x4, a2["size"], a2["stride"], a2["pad"],
                                   dilation=a2["dilation"], ceil_mode=a2["ceil_mode"],
                                   count_include_pad=a["count_include_pad"])
        return self._flat(y), cache

    def backward(self, dout, cache, attrs, needs=None):
        dx = avgpool_backward(_rows(dout), cache)
        return (dx.reshape(dx.shape[0], dx.shape[1], -1),)
