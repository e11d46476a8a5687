"""Axis ops on values of any rank: transpose (permute), squeeze, unsqueeze, which move no data
(forward returns a view of x and backward a view of dout, hence `may_alias`), and expand.

    transpose: x (N, H, T, D), perm [0, 2, 1, 3] -> (N, T, H, D)
    squeeze:   x (N, 1, 5), axes [1]               -> (N, 5)
    unsqueeze: x (N, 5), axes [1]                  -> (N, 1, 5)
    expand:    x (N, 1, 5), shape [1, 3, 1]        -> (N, 3, 5)   (numpy broadcasting)

Axes count over the full array (ONNX's and numpy's way): axis 0 of a batched value is its
batch axis, which stays where it is, the leading one; negative axes count from the end.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.broadcast import broadcast_shapes, dims_text, normalize_axes, sum_to
from dagnet.ops.declare import REQUIRED, Attr, value


class _Axes(Op):
    """Shared by the axis ops: views, linear, shapes from the full input shape."""

    ports = (value("x", "any shape"),)
    full_shapes = True
    fusion_kind = "injective"
    saves = frozenset()  # backward needs only the shapes and axes, kept in the cache
    may_alias = True
    linear = True

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        return self.apply(x, attrs), x.shape


@register
class Transpose(_Axes):
    """The axes of x permuted: output axis i is input axis perm[i] (default: all reversed)."""

    name = "transpose"
    aliases = ("permute",)
    attributes = (Attr("perm", "axes", None, doc="a permutation of 0..rank-1 (the batch axis 0 "
                       "of a batched value stays first); default: the axes reversed"),)

    def perm_of(self, attrs, shape) -> tuple:
        perm = self.read_attrs(attrs)["perm"]
        rank = len(shape)
        perm = tuple(range(rank))[::-1] if perm is None else tuple(perm)
        if sorted(p % rank if rank else p for p in perm) != list(range(rank)):
            raise AttrError(f"transpose: perm {list(perm)} is not a permutation of the "
                            f"{rank} axes of x {dims_text(shape)}; list each of 0..{rank - 1} once")
        perm = tuple(p % rank for p in perm)
        if shape and shape[0] is None and perm[0] != 0:
            raise ShapeError(f"transpose: perm {list(perm)} moves the batch axis N of x "
                             f"{dims_text(shape)}; the batch axis stays the leading one: keep "
                             f"perm[0] = 0")
        return perm

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        return tuple(shape[p] for p in self.perm_of(attrs, shape))

    def apply(self, x, attrs):
        return np.transpose(x, self.perm_of(attrs, x.shape))

    def backward(self, dout, cache, attrs, needs=None):
        return (np.transpose(dout, np.argsort(self.perm_of(attrs, cache))),)


@register
class Squeeze(_Axes):
    """x without the size-1 axes named.

    The axes are required: "every size-1 axis" would squeeze the batch axis of a batch of one
    and not of a larger one."""

    name = "squeeze"
    attributes = (Attr("axes", "axes", REQUIRED, doc="the size-1 axes to drop"),)

    def axes_of(self, attrs, shape) -> tuple:
        axes = normalize_axes(self.name, self.read_attrs(attrs)["axes"], len(shape))
        bad = [a for a in axes if shape[a] != 1]
        if bad:
            what = "the batch axis N" if shape[bad[0]] is None else f"size {shape[bad[0]]}"
            raise ShapeError(f"squeeze: axis {bad[0]} of x {dims_text(shape)} has {what}; "
                             f"squeeze drops only axes of size 1")
        return axes

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        axes = self.axes_of(attrs, shape)
        return tuple(d for i, d in enumerate(shape) if i not in axes)

    def apply(self, x, attrs):
        return np.squeeze(x, axis=self.axes_of(attrs, x.shape))

    def backward(self, dout, cache, attrs, needs=None):
        return (dout.reshape(cache),)


@register
class Unsqueeze(_Axes):
    """x with size-1 axes inserted at `axes` (positions in the output)."""

    name = "unsqueeze"
    attributes = (Attr("axes", "axes", REQUIRED, doc="where the new axes go, counted in the "
                       "output (not 0 for a batched value: the batch axis stays first)"),)

    def axes_of(self, attrs, shape) -> tuple:
        axes = normalize_axes(self.name, self.read_attrs(attrs)["axes"], len(shape) + len(
            self.read_attrs(attrs)["axes"]))
        if shape and shape[0] is None and 0 in axes:
            raise ShapeError(f"unsqueeze: axes {list(axes)} put a new axis before the batch "
                             f"axis N of x {dims_text(shape)}; the batch axis stays the leading "
                             f"one: count from 1")
        return axes

    def infer_shape(self, in_shapes, attrs):
        shape = list(in_shapes[0])
        for a in self.axes_of(attrs, tuple(shape)):
            shape.insert(a, 1)
        return tuple(shape)

    def apply(self, x, attrs):
        return np.expand_dims(x, self.axes_of(attrs, (0,) * x.ndim))

    def backward(self, dout, cache, attrs, needs=None):
        return (dout.reshape(cache),)


@register
class Expand(Op):
    """x broadcast against `shape` as numpy broadcasts two arrays (ONNX's Expand): size-1 axes
    stretch, missing leading axes are added; a batched value's batch axis meets 1 in shape."""

    name = "expand"
    ports = (value("x", "any shape"),)
    attributes = (Attr("shape", "dims", REQUIRED, doc="the shape to broadcast against (full: "
                       "a batched value's batch axis is 1 there)"),)
    full_shapes = True
    fusion_kind = "broadcast"
    saves = frozenset()
    linear = True

    def infer_shape(self, in_shapes, attrs):
        target = tuple(self.read_attrs(attrs)["shape"])
        return broadcast_shapes(self.name, ("x", "shape"), [tuple(in_shapes[0]), target])

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        shape = np.broadcast_shapes(x.shape, tuple(self.read_attrs(attrs)["shape"]))
        return np.array(np.broadcast_to(x, shape)), x.shape  # a copy: consumers may write

    def backward(self, dout, cache, attrs, needs=None):
        return (sum_to(dout, cache),)
