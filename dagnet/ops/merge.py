"""Ops that merge several values: add (skip connections, biases, graph math) and concat (along
any axis).

    add:    x0, x1, ... any shapes that broadcast (numpy's rule, the batch axis leading; see
            dagnet/ops/broadcast.py) -> their broadcast shape
    concat: x0 (N, c0, ...), x1 (N, c1, ...), ... -> (N, c0 + c1 + ..., ...) along attrs["axis"]
            (any axis but a batch axis; values with or without the batch axis, not mixed)

Their backward passes return dout itself (add, for operands of the output's shape) or views
of it (concat): no copies.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_floats, register
from dagnet.ops.broadcast import dims_text, sum_to
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


def _concat_shape(shapes, axis):
    """Full shape (batch axes as None) of the concatenation of values of `shapes` on `axis`."""
    ref = shapes[0]
    for i, s in enumerate(shapes[1:], start=1):
        if len(s) != len(ref):
            raise ShapeError(f"concat: input x{i} has shape {dims_text(s)} but x0 has "
                             f"{dims_text(ref)}: all inputs need the same number of dims")
        if (s[0] is None) != (ref[0] is None):
            raise ShapeError(f"concat: input x{i} {dims_text(s)} and x0 {dims_text(ref)}: one "
                             f"has the batch axis N and the other not; join batched values with "
                             f"batched ones (expand the other to the batch first)")
        for a, (d, d0) in enumerate(zip(s, ref)):
            if a != axis and d != d0:
                raise ShapeError(f"concat: input x{i} has shape {dims_text(s)} but x0 has "
                                 f"{dims_text(ref)}: they differ on axis {a}, and only the "
                                 f"concat axis {axis} may differ")
    return ref[:axis] + (sum(s[axis] for s in shapes),) + ref[axis + 1:]


@register
class Concat(_Merge):
    """Join two or more values along `axis` (default 1, the channel axis; any axis of values
    without the batch axis).  x0 (N, c0, ...), x1 (N, c1, ...) -> (N, c0 + c1 + ..., ...)."""

    name = "concat"
    ports = (variadic("x", 2, "two or more values of one rank", either=True),)
    attributes = (Attr("axis", "int", 1, doc="the axis to join along, counted over the full "
                       "array: 1 is the channel axis (0, the batch axis of batched values, is "
                       "refused); negative counts from the end"),)
    full_shapes = True
    fusion_kind = "injective"
    supports_out = True

    def _axis(self, attrs, shape):
        """attrs["axis"] as an axis of the full `shape` (None: a batch axis)."""
        axis, rank = self.read_attrs(attrs)["axis"], len(shape)
        if not -rank <= axis < rank:
            raise AttrError(f"concat: axis {axis} is out of range for inputs {dims_text(shape)} "
                            f"of {rank} axes; use -{rank}..{rank - 1}")
        if shape[axis] is None:
            raise AttrError(f"concat: axis {axis} is the batch axis of {dims_text(shape)}; "
                            f"concat joins the features of each example, give axis >= 1 (1 is "
                            f"the channel axis)")
        return axis % rank

    def infer_shape(self, in_shapes, attrs):
        shapes = [tuple(s) for s in in_shapes]
        if not shapes[0]:
            raise ShapeError("concat: x0 is a scalar (); concat joins values of rank 1 or more "
                             "(unsqueeze scalars first)")
        return _concat_shape(shapes, self._axis(attrs, shapes[0]))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        check_floats(self.name, [f"x{i}" for i in range(len(inputs))], inputs)
        axis = self._axis(attrs, inputs[0].shape)
        _concat_shape([x.shape for x in inputs], axis)  # full shapes: batch sizes too
        return (np.concatenate(inputs, axis=axis, out=out),
                (axis, [x.shape[axis] for x in inputs]))

    def backward(self, dout, cache, attrs, needs=None):
        axis, sizes = cache
        parts = np.split(dout, np.cumsum(sizes)[:-1], axis=axis)
        return tuple(g if needs is None or needs[i] else None for i, g in enumerate(parts))
