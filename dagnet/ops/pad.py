"""pad and tile: outputs larger than x, each position of which reads one position of x (or a
constant). Axes count over the full array; a batched value's batch axis is neither padded nor
tiled.

    pad:  x (N, 3, 4), pads [0, 1, 2, 0, 1, 2] (begins then ends, ONNX's order) -> (N, 5, 8)
          modes: constant (value), reflect (mirror without the edge), edge (repeat it),
          wrap (periodic); a negative pad crops
    tile: x (N, 2, 3), repeats [1, 2, 3] -> (N, 4, 9)

Pad is separable: on each axis, output position j reads input position map(j); forward takes
along each padded axis and backward sums dout back through the same maps (take_backward),
so edge and reflect modes send the gradient of every copy to the position it copied.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.broadcast import dims_text, normalize_axes
from dagnet.ops.declare import REQUIRED, Attr, value
from dagnet.ops.gather import take_backward

MODES = ("constant", "reflect", "edge", "wrap")


def source_positions(n: int, begin: int, end: int, mode: str) -> np.ndarray:
    """For each output position of an axis of size n padded by (begin, end), the input position
    it reads (-1: the constant)."""
    i = np.arange(-begin, n + end)
    if mode == "constant":
        return np.where((i >= 0) & (i < n), i, -1)
    if mode == "edge":
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return i % n
    if n == 1:  # reflect: a single position mirrors onto itself
        return np.zeros_like(i)
    i = np.abs(i) % (2 * n - 2)
    return np.where(i >= n, 2 * n - 2 - i, i)


@register
class Pad(Op):
    """x padded on `axes` by `pads` (begins then ends; ONNX Pad) with a constant, its reflection,
    its edge or its wrap.  (N, 3, 4), pads [0, 1, 2, 0, 1, 2] -> (N, 5, 8)."""

    name = "pad"
    ports = (value("x", "any shape"),)
    attributes = (
        Attr("pads", "ints", REQUIRED, doc="the begins of every padded axis, then their ends "
             "(ONNX's order; negative crops); the batch axis's are 0"),
        Attr("mode", "choice", "constant", doc="what the border holds: the constant value, "
             "x mirrored without its edge (reflect), x's edge repeated, x repeated (wrap)",
             choices=MODES),
        Attr("value", "number", 0.0, doc="the constant of mode constant"),
        Attr("axes", "axes", None, doc="the axes pads name (default every axis, 0 first)"),
    )
    full_shapes = True
    fusion_kind = "injective"
    saves = frozenset()

    def jvp(self, tangents, inputs, out, cache, attrs):
        t = tangents[0]
        if t is None:
            return np.zeros(out.shape, out.dtype)
        return self.forward([np.asarray(t)], {**attrs, "value": 0.0})[0]  # affine: the map part

    def plan(self, attrs, shape) -> dict:
        """{axis: (begin, end)} of the padded axes of x of full `shape`, checked."""
        a = self.read_attrs(attrs)
        pads, rank = a["pads"], len(shape)
        axes = tuple(range(rank)) if a["axes"] is None else a["axes"]
        if len(pads) != 2 * len(axes):
            raise AttrError(f"pad: pads {list(pads)} need {2 * len(axes)} numbers for x "
                            f"{dims_text(shape)} (a begin and an end per axis of {list(axes)})")
        normalize_axes("pad", axes, rank)
        out = {}
        for k, axis in enumerate(axes):
            axis %= rank
            begin, end = pads[k], pads[k + len(axes)]
            if not begin and not end:
                continue
            n = shape[axis]
            if n is None:
                raise ShapeError(f"pad: pads {list(pads)} pad the batch axis N of x "
                                 f"{dims_text(shape)}; give 0 there (pad the axes of each "
                                 f"example)")
            if n + begin + end < 1 or (begin < 0 and -begin >= n) or (end < 0 and -end >= n):
                raise ShapeError(f"pad: pads ({begin}, {end}) on axis {axis} of x "
                                 f"{dims_text(shape)} crop all {n} positions; crop fewer")
            if a["mode"] == "reflect" and max(begin, end) >= n and n > 1:
                raise ShapeError(f"pad: reflect pads ({begin}, {end}) on axis {axis} of x "
                                 f"{dims_text(shape)} reach past the mirrored {n - 1} "
                                 f"positions; pad at most {n - 1} there, or use mode edge")
            out[axis] = (begin, end)
        return out

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        plan = self.plan(attrs, shape)
        return tuple(d + sum(plan[i]) if i in plan else d for i, d in enumerate(shape))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        a = self.read_attrs(attrs)
        maps = {axis: source_positions(x.shape[axis], b, e, a["mode"])
                for axis, (b, e) in self.plan(attrs, x.shape).items()}
        y = x
        for axis, src in maps.items():
            y = np.take(y, np.maximum(src, 0), axis=axis)
            if a["mode"] == "constant" and (src < 0).any():
                where = [slice(None)] * y.ndim
                where[axis] = src < 0
                y[tuple(where)] = a["value"]
        return (y.copy() if y is x else y), (x.shape, maps)

    def backward(self, dout, cache, attrs, needs=None):
        shape, maps = cache
        g = dout
        for axis in reversed(list(maps)):
            src = maps[axis]
            keep = src >= 0  # constant positions send no gradient
            part = np.compress(keep, g, axis=axis) if not keep.all() else g
            g = take_backward(part, src[keep], g.shape[:axis] + (shape[axis],) + g.shape[axis + 1:],
                              axis)
        return (g,)


@register
class Tile(Op):
    """x repeated `repeats[i]` times along each axis i (ONNX Tile, numpy's tile).
    (N, 2, 3), repeats [1, 2, 3] -> (N, 4, 9)."""

    name = "tile"
    ports = (value("x", "any shape"),)
    attributes = (Attr("repeats", "dims", REQUIRED, doc="how often x repeats along each axis, "
                       "one per axis (1 for the batch axis of a batched x)"),)
    full_shapes = True
    fusion_kind = "injective"
    saves = frozenset()
    linear = True

    def _repeats(self, attrs, shape) -> tuple:
        reps = self.read_attrs(attrs)["repeats"]
        if len(reps) != len(shape):
            raise AttrError(f"tile: repeats {list(reps)} need one number per axis of x "
                            f"{dims_text(shape)} ({len(shape)})")
        if shape and shape[0] is None and reps[0] != 1:
            raise ShapeError(f"tile: repeats {list(reps)} repeat the batch axis N of x "
                             f"{dims_text(shape)}; give 1 there")
        return tuple(reps)

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        return tuple(None if d is None else d * r
                     for d, r in zip(shape, self._repeats(attrs, shape)))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        reps = self._repeats(attrs, x.shape)
        return np.tile(x, reps) if x.ndim else x.copy(), (x.shape, reps)

    def backward(self, dout, cache, attrs, needs=None):
        shape, reps = cache
        split = [s for r, d in zip(reps, shape) for s in (r, d)]
        return (dout.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2))),)
