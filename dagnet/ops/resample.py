"""Resampling: resize (nearest, bilinear), depth_to_space and space_to_depth.

    resize: x (N, C, H, W) -> (N, C, Ho, Wo), Ho = floor(H * scale) or the size given
    depth_to_space: x (N, C, H, W) -> (N, C/b^2, H*b, W*b)
    space_to_depth: x (N, C, H, W) -> (N, C*b^2, H/b, W/b)

resize follows ONNX Resize: each output coordinate o maps to an input coordinate x by
`coordinates` (s: the scale given, else Ho/H)
    half_pixel          x = (o + 0.5)/s - 0.5   (PyTorch's align_corners=False)
    pytorch_half_pixel  the same, but 0 when the output has one cell
    align_corners       x = o * (H - 1)/(Ho - 1)
    asymmetric          x = o/s                  (PyTorch's mode="nearest" with floor)
then nearest takes the cell `nearest_mode` rounds x to, and bilinear mixes the two cells
around x (clamped to [0, H - 1]: the edge repeats). Both are separable: one gather along H
and one along W, and backward adds each output's gradient back along the same taps (the
taps' indices never decrease, so np.add.reduceat sums each input cell's run).

depth_to_space moves each block of b*b channels into a b x b patch (ONNX's DepthToSpace);
mode DCR (ONNX's default) reads the channels depth-major, CRD column-row-depth: PyTorch's
pixel_shuffle is depth_to_space with mode CRD. space_to_depth is its inverse (ONNX's
SpaceToDepth is mode DCR, PyTorch's pixel_unshuffle mode CRD).
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_float, check_rank, register
from dagnet.ops.declare import COUNT, POSITIVE, Attr, data

COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coordinates(length: int, out: int, scale: float, coordinates: str) -> np.ndarray:
    """The input coordinate (float64) each of `out` output cells maps to along one axis."""
    o = np.arange(out, dtype=np.float64)
    if coordinates == "align_corners":
        return o * ((length - 1) / (out - 1)) if out > 1 else np.zeros(out)
    if coordinates == "asymmetric":
        return o / scale
    if coordinates == "pytorch_half_pixel" and out == 1:
        return np.zeros(out)
    return (o + 0.5) / scale - 0.5


def nearest_taps(x: np.ndarray, length: int, mode: str) -> np.ndarray:
    """The input cell each coordinate rounds to (clamped to the axis)."""
    rounded = {"round_prefer_floor": lambda v: np.ceil(v - 0.5),
               "round_prefer_ceil": lambda v: np.floor(v + 0.5),
               "floor": np.floor, "ceil": np.ceil}[mode](x)
    return np.clip(rounded, 0, length - 1).astype(np.intp)


def linear_taps(x: np.ndarray, length: int):
    """(i0, i1, w1): the cells around each coordinate (clamped) and the weight of i1."""
    x = np.clip(x, 0, length - 1)
    i0 = np.floor(x).astype(np.intp)
    return i0, np.minimum(i0 + 1, length - 1), x - i0


def _axis_taps(length, out, scale, a):
    """[(indices, weights or None), ...] along one axis: one tap for nearest, two for bilinear."""
    x = source_coordinates(length, out, scale, a["coordinates"])
    if a["mode"] == "nearest":
        return [(nearest_taps(x, length, a["nearest_mode"]), None)]
    i0, i1, w1 = linear_taps(x, length)
    return [(i0, 1 - w1), (i1, w1)]


def _gather(x, taps, axis):
    """Sum over taps of x gathered along axis, times each tap's weights."""
    shape = [1] * x.ndim
    shape[axis] = -1
    out = None
    for idx, wts in taps:
        v = np.take(x, idx, axis=axis)
        if wts is not None:
            v *= wts.astype(x.dtype).reshape(shape)
        out = v if out is None else out + v
    return out


def _scatter(g, taps, length, axis):
    """The adjoint of _gather: each gathered entry's gradient added back to its cell."""
    shape = [1] * g.ndim
    shape[axis] = -1
    out_shape = list(g.shape)
    out_shape[axis] = length
    out = np.zeros(out_shape, dtype=g.dtype)
    for idx, wts in taps:
        v = g if wts is None else g * wts.astype(g.dtype).reshape(shape)
        starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])  # idx never decreases
        at = [slice(None)] * g.ndim
        at[axis] = idx[starts]
        out[tuple(at)] += np.add.reduceat(v, starts, axis=axis)
    return out


def resize_forward(x, out_size, scales, a):
    """x (N, C, H, W) -> (out (N, C, Ho, Wo), cache); a: resize's read attrs."""
    taps = [_axis_taps(x.shape[2 + i], out_size[i], scales[i], a) for i in range(2)]
    out = _gather(_gather(x, taps[0], 2), taps[1], 3)
    return out, (x.shape, taps)


def resize_backward(dout, cache):
    """Gradient of resize_forward.  dout: (N, C, Ho, Wo) -> dx (N, C, H, W)."""
    x_shape, taps = cache
    return _scatter(_scatter(dout, taps[1], x_shape[3], 3), taps[0], x_shape[2], 2)


@register
class Resize(Op):
    """Nearest or bilinear resize of images, ONNX Resize semantics.  x: (N, C, H, W) -> (N, C, Ho, Wo)."""

    name = "resize"
    aliases = ("upsample", "interpolate")
    ports = (data("x", "images (N, C, H, W)"),)
    attributes = (
        Attr("scale", "scales", None, POSITIVE, "factor per axis: a number, or (height, "
             "width); Ho = floor(H * scale). Give scale or size", ("scales", "scale_factor")),
        Attr("size", "dims", None, doc="output (height, width); give scale or size",
             aliases=("sizes", "out_size")),
        Attr("mode", "choice", "nearest", doc="nearest or bilinear (ONNX's linear)",
             choices=("nearest", "bilinear")),
        Attr("coordinates", "choice", "half_pixel", doc="how output cells map to input "
             "coordinates (ONNX's coordinate_transformation_mode)", choices=COORDINATES,
             aliases=("coordinate_transformation_mode",)),
        Attr("nearest_mode", "choice", "round_prefer_floor", doc="how nearest rounds a "
             "coordinate (ONNX's nearest_mode; PyTorch's nearest is asymmetric with floor)",
             choices=NEAREST_MODES),
    )
    fusion_kind = "injective"
    saves = frozenset()

    def geometry(self, x_shape, attrs):
        """((Ho, Wo), (scale_h, scale_w)) for a per-example (C, H, W) input: the scales given,
        else the ratios of the sizes."""
        a = self.read_attrs(attrs)
        check_rank(self.name, "x", tuple(x_shape), 3, "C, H, W")
        scale, size = a["scale"], a["size"]
        if (scale is None) == (size is None):
            raise AttrError(f"resize: give exactly one of scale and size, got "
                            f"{'both' if scale else 'neither'}")
        hw = tuple(x_shape[1:])
        if size is not None:
            if len(size) != 2:
                raise AttrError(f"resize: size must be (height, width), got {list(size)}")
            return tuple(size), tuple(o / i for o, i in zip(size, hw))
        out = tuple(int(np.floor(i * s)) for i, s in zip(hw, scale))
        if min(out) < 1:
            raise ShapeError(f"resize: scale {scale} leaves no cell of the input {hw} "
                             f"(output {out}); use a larger scale")
        return out, tuple(scale)

    def infer_shape(self, in_shapes, attrs):
        x_shape = tuple(in_shapes[0])
        return (x_shape[0], *self.geometry(x_shape, attrs)[0])

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        if x.ndim != 4:
            raise ShapeError(f"resize: input 'x' must be (N, C, H, W), got shape {x.shape}")
        out_size, scales = self.geometry(x.shape[1:], attrs)
        return resize_forward(x, out_size, scales, self.read_attrs(attrs))

    def backward(self, dout, cache, attrs, needs=None):
        return (resize_backward(dout, cache),)

    def flops(self, in_shapes, out_shape, attrs):
        taps = 1 if self.read_attrs(attrs)["mode"] == "nearest" else 4
        return taps * int(np.prod(out_shape, dtype=np.int64))


BLOCK = Attr("block", "int", 2, COUNT, "the side b of each block", ("blocksize", "block_size"))
BLOCK_MODE = Attr("mode", "choice", "DCR", doc="channel order within a block: DCR "
                  "(depth-column-row, ONNX's default) or CRD (PyTorch's pixel_shuffle order)",
                  choices=("DCR", "CRD"))


def _permutation(x_shape, b, mode, to_space):
    """(split shape, axes permutation, merged shape) that move x's blocks: x.reshape(split)
    .transpose(perm).reshape(merged)."""
    n, c, h, w = x_shape
    if to_space:  # (N, C, H, W) -> (N, C/b^2, H*b, W*b)
        d = c // (b * b)
        if mode == "DCR":
            return (n, b, b, d, h, w), (0, 3, 4, 1, 5, 2), (n, d, h * b, w * b)
        return (n, d, b, b, h, w), (0, 1, 4, 2, 5, 3), (n, d, h * b, w * b)
    split = (n, c, h // b, b, w // b, b)
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    return split, perm, (n, c * b * b, h // b, w // b)


class _Blocks(Op):
    """Shared attrs and numbers of depth_to_space and space_to_depth."""

    ports = (data("x", "images (N, C, H, W)"),)
    attributes = (BLOCK, BLOCK_MODE)
    fusion_kind = "injective"
    saves = frozenset()
    to_space = True

    def _check(self, x_shape, b):
        raise NotImplementedError

    def infer_shape(self, in_shapes, attrs):
        x_shape = tuple(in_shapes[0])
        check_rank(self.name, "x", x_shape, 3, "C, H, W")
        a = self.read_attrs(attrs)
        self._check(x_shape, a["block"])
        return _permutation((1, *x_shape), a["block"], a["mode"], self.to_space)[2][1:]

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        if x.ndim != 4:
            raise ShapeError(f"{self.name}: input 'x' must be (N, C, H, W), got shape {x.shape}")
        self.infer_shape([x.shape[1:]], attrs)
        a = self.read_attrs(attrs)
        split, perm, merged = _permutation(x.shape, a["block"], a["mode"], self.to_space)
        y = x.reshape(split).transpose(perm).reshape(merged)
        if np.shares_memory(y, x):  # block 1 moves nothing: still a fresh array
            y = y.copy()
        return y, (x.shape, split, perm)

    def backward(self, dout, cache, attrs, needs=None):
        x_shape, split, perm = cache
        moved = tuple(split[p] for p in perm)
        return (dout.reshape(moved).transpose(np.argsort(perm)).reshape(x_shape),)


@register
class DepthToSpace(_Blocks):
    """Blocks of b*b channels into b x b patches (ONNX DepthToSpace).  x: (N, C, H, W) -> (N, C/b^2, H*b, W*b)."""

    name = "depth_to_space"
    to_space = True

    def _check(self, x_shape, b):
        if x_shape[0] % (b * b):
            raise ShapeError(f"depth_to_space: {x_shape[0]} channels (input {x_shape}) do not "
                             f"split into blocks of {b}x{b} = {b * b}; give a multiple of "
                             f"{b * b} channels or another block")


@register
class SpaceToDepth(_Blocks):
    """b x b patches into blocks of b*b channels (ONNX SpaceToDepth).  x: (N, C, H, W) -> (N, C*b^2, H/b, W/b)."""

    name = "space_to_depth"
    to_space = False

    def _check(self, x_shape, b):
        if x_shape[1] % b or x_shape[2] % b:
            raise ShapeError(f"space_to_depth: the input's height and width {x_shape[1:]} "
                             f"must be multiples of the block {b}; crop or pad the input")
