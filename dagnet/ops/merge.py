"""Ops that merge several values: add (skip connections, biases, graph math) and concat (along
the channel axis).

    add:    x0, x1, ... any shapes that broadcast (numpy's rule, the batch axis leading; see
            dagnet/ops/broadcast.py) -> their broadcast shape
    concat: x0 (N, c0, ...), x1 (N, c1, ...), ... -> (N, c0 + c1 + ..., ...) along attrs["axis"]

Their backward passes return dout itself (add, for operands of the output's shape) or views
of it (concat): no copies.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_floats, register
from dagnet.ops.broadcast import sum_to
from dagnet.ops.declare import Attr, variadic
from dagnet.ops.elementwise import Broadcasting


class _Merge(Op):
    ports = (variadic("x", 2, "two or more values"),)
    attributes = ()
    saves = frozenset()  # backward needs only the input shapes
    linear = True


@register
class Add(Broadcasting):
    """Elementwise sum of two or more values, broadcasting.  x0, x1, ...: any shapes that
    broadcast -> their broadcast shape; (N, ...) + (N, ...) -> (N, ...)."""

    name = "add"
    ports = (variadic("x", 2, "two or more values", either=True),)
    saves = frozenset()  # backward needs only the input shapes
    linear = True

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        shape = self.checked(inputs)
        if out is None:
            out = np.empty(shape, dtype=inputs[0].dtype)
        y = np.add(inputs[0], inputs[1], out=out)
        for x in inputs[2:]:
            y += x
        return y, [x.shape for x in inputs]

    def backward(self, dout, cache, attrs, needs=None):
        return tuple(sum_to(dout, s) if needs is None or needs[i] else None
                     for i, s in enumerate(cache))


def _concat_shape(shapes, axis, first_axis):
    """Shape of the concatenation of arrays of `shapes` along `axis`.

    Axes are named in messages counting the batch axis as 0: `first_axis` is 1 for per-example
    shapes and 0 for full ones.
    """
    ref = shapes[0]
    for i, s in enumerate(shapes[1:], start=1):
        if len(s) != len(ref):
            raise ShapeError(
                f"concat: input x{i} has shape {s} but x0 has {ref}: all inputs need the same "
                f"number of dims"
            )
        for a, (d, d0) in enumerate(zip(s, ref)):
            if a != axis and d != d0:
                raise ShapeError(
                    f"concat: input x{i} has shape {s} but x0 has {ref}: they differ on axis "
                    f"{a + first_axis}, and only the concat axis {axis + first_axis} may differ"
                )
    return ref[:axis] + (sum(s[axis] for s in shapes),) + ref[axis + 1:]


@register
class Concat(_Merge):
    """Join two or more values along attrs["axis"] (default 1, the channel axis; batch is axis 0).

    x0: (N, c0, ...), x1: (N, c1, ...), ... -> (N, c0 + c1 + ..., ...) for axis 1.
    """

    name = "concat"
    attributes = (Attr("axis", "int", 1, doc="the axis to join along: 1 is the channel axis "
                       "(0, the batch axis, is refused); negative counts from the end"),)
    fusion_kind = "injective"
    supports_out = True

    def _per_example_axis(self, attrs, rank):
        """attrs["axis"] (batch = 0, negatives count from the end) as an axis of a per-example shape."""
        axis = self.read_attrs(attrs)["axis"]
        full = axis if axis >= 0 else axis + rank + 1
        if full == 0:
            raise AttrError(
                f"concat: axis {axis} is the batch axis; concat joins the features of each "
                f"example, give axis >= 1 (1 is the channel axis)"
            )
        if not 1 <= full <= rank:
            raise AttrError(
                f"concat: axis {axis} is out of range for inputs with {rank} dims per example "
                f"(batch axis 0 plus axes 1..{rank})"
            )
        return full - 1

    def infer_shape(self, in_shapes, attrs):
        shapes = [tuple(s) for s in in_shapes]
        return _concat_shape(shapes, self._per_example_axis(attrs, len(shapes[0])), 1)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        check_floats(self.name, [f"x{i}" for i in range(len(inputs))], inputs)
        axis = self._per_example_axis(attrs, inputs[0].ndim - 1) + 1
        _concat_shape([x.shape for x in inputs], axis, 0)  # full shapes: batch sizes too
        return (np.concatenate(inputs, axis=axis, out=out),
                (axis, [x.shape[axis] for x in inputs]))

    def backward(self, dout, cache, attrs, needs=None):
        axis, sizes = cache
        parts = np.split(dout, np.cumsum(sizes)[:-1], axis=axis)
        return tuple(g if needs is None or needs[i] else None for i, g in enumerate(parts))
