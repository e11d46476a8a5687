"""Slicing on values of any rank: slice (ONNX Slice: starts, ends, axes, steps) and split (one
part of an ONNX Split). Axes count over the full array; a batched value's batch axis is never
sliced (the batch size is not known when the graph is built).

    slice: x (N, 10, 8), starts [2], ends [-1], axes [1], steps [2] -> (N, 4, 8)
    split: x (N, 6, 8), axis 1, sizes [2, 4], index 1              -> (N, 4, 8)

One node is one value in dagnet, so a split of k parts is k `split` nodes (index 0..k-1) on
one input: `g.split(x, sizes=[2, 4])` returns them all. Each part's backward writes its
gradient into zeros of x's shape and the autodiff pass sums the parts' gradients, which costs
k arrays of x's size where a fused split would write one (docs/architecture.md).
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.broadcast import dims_text, normalize_axes
from dagnet.ops.declare import REQUIRED, Attr, value


def slice_bounds(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX's (and numpy's) clamping of one axis's start/end/step as a Python slice: negative
    bounds count from the end; with a negative step, an end before the first item is -1."""
    start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


class _Part(Op):
    """Shared by slice and split: the output is x[index]; backward puts dout there in zeros."""

    ports = (value("x", "any shape"),)
    full_shapes = True
    fusion_kind = "injective"
    saves = frozenset()  # backward needs x's shape and the index only
    may_alias = True  # forward returns a view of x
    linear = True

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        index = self.index(attrs, shape)
        return tuple(None if d is None else len(range(*s.indices(d)))
                     for d, s in zip(shape, index))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        index = self.index(attrs, x.shape)
        return x[index], (x.shape, index)

    def backward(self, dout, cache, attrs, needs=None):
        shape, index = cache
        dx = np.zeros(shape, dtype=dout.dtype)
        dx[index] = dout
        return (dx,)


@register
class Slice(_Part):
    """x[starts:ends:steps] on `axes` (ONNX Slice; bounds clamped as numpy clamps them).
    (N, 10, 8), starts [2], ends [-1], axes [1], steps [2] -> (N, 4, 8)."""

    name = "slice"
    attributes = (
        Attr("starts", "ints", REQUIRED, doc="the first index on each axis (negative counts "
             "from the end)"),
        Attr("ends", "ints", REQUIRED, doc="the index past the last on each axis (clamped: "
             "a huge number means the end, a huge negative one the start for a negative step)"),
        Attr("axes", "axes", None, doc="the axes sliced (default 0, 1, ...: one per start; "
             "never the batch axis of a batched value)"),
        Attr("steps", "ints", None, doc="the step on each axis (default 1; negative walks "
             "backwards; never 0)"),
    )

    def index(self, attrs, shape) -> tuple:
        """The tuple of Python slices x[...] takes, for x of full shape `shape`."""
        a = self.read_attrs(attrs)
        starts, ends = a["starts"], a["ends"]
        axes = tuple(range(len(starts))) if a["axes"] is None else a["axes"]
        steps = (1,) * len(starts) if a["steps"] is None else a["steps"]
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise AttrError(f"slice: starts {list(starts)}, ends {list(ends)}, axes "
                            f"{list(axes)} and steps {list(steps)} need one entry per sliced "
                            f"axis each")
        if 0 in steps:
            raise AttrError(f"slice: steps {list(steps)} hold a 0; a step is a non-zero integer")
        normalize_axes("slice", axes, len(shape))  # an axis out of range or named twice
        index = [slice(None)] * len(shape)
        for axis, start, end, step in zip(axes, starts, ends, steps):
            axis %= len(shape)
            if shape[axis] is None:
                raise ShapeError(f"slice: axes {list(axes)} slice the batch axis N of x "
                                 f"{dims_text(shape)}; slice the axes of each example (1..)")
            index[axis] = slice_bounds(start, end, step, shape[axis])
        return tuple(index)


@register
class Split(_Part):
    """Part `index` of x split along `axis` into `sizes` (or `parts` equal ones; ONNX Split).
    (N, 6, 8), axis 1, sizes [2, 4], index 1 -> (N, 4, 8)."""

    name = "split"
    attributes = (
        Attr("axis", "int", 1, doc="the axis to split (1 is the channel axis; never the "
             "batch axis of a batched value); negative counts from the end"),
        Attr("sizes", "dims", None, doc="the size of each part (they sum to the axis)"),
        Attr("parts", "int", None, "[1, inf)", doc="instead of sizes: this many parts of "
             "ceil(size / parts), the last smaller (ONNX's num_outputs, torch.chunk)"),
        Attr("index", "int", REQUIRED, "[0, inf)", doc="which part this node is (g.split "
             "makes a node per part)"),
    )

    def sizes(self, attrs, shape) -> tuple:
        """(axis, sizes of every part) for x of full shape `shape`."""
        a = self.read_attrs(attrs)
        rank = len(shape)
        if not -rank <= a["axis"] < rank:
            raise AttrError(f"split: axis {a['axis']} is out of range for x {dims_text(shape)}; "
                            f"use -{rank}..{rank - 1}")
        axis = a["axis"] % rank
        dim = shape[axis]
        if dim is None:
            raise ShapeError(f"split: axis {a['axis']} is the batch axis N of x "
                             f"{dims_text(shape)}; split the axes of each example (1..)")
        if (a["sizes"] is None) == (a["parts"] is None):
            raise AttrError("split: give sizes (one per part) or parts (that many equal ones), "
                            "one of them")
        if a["sizes"] is not None:
            sizes = tuple(a["sizes"])
            if sum(sizes) != dim:
                raise ShapeError(f"split: sizes {list(sizes)} sum to {sum(sizes)}, but axis "
                                 f"{axis} of x {dims_text(shape)} has {dim}; make them sum to "
                                 f"{dim}")
        else:
            chunk = -(-dim // a["parts"])
            sizes = tuple(min(chunk, dim - i * chunk) for i in range(a["parts"]))
            if sizes[-1] <= 0:
                raise ShapeError(f"split: {a['parts']} parts of axis {axis} of x "
                                 f"{dims_text(shape)} ({dim}) would leave the last empty "
                                 f"(parts of {chunk}); give sizes, or at most "
                                 f"{-(-dim // chunk)} parts")
        if a["index"] >= len(sizes):
            raise AttrError(f"split: index {a['index']} names no part of {len(sizes)}; use "
                            f"0..{len(sizes) - 1}")
        return axis, sizes

    def index(self, attrs, shape) -> tuple:
        axis, sizes = self.sizes(attrs, shape)
        i = self.read_attrs(attrs)["index"]
        start = sum(sizes[:i])
        return ((slice(None),) * axis + (slice(start, start + sizes[i]),)
                + (slice(None),) * (len(shape) - axis - 1))
