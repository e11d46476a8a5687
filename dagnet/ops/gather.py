"""gather (ONNX Gather, numpy's take): slices of x picked along one axis by int64 indices.

    gather: x (N, 5, 7), indices (2, 3) int64, axis 2 -> (N, 5, 2, 3)
            x (10, 4) unbatched, indices (N, 6) batched, axis 0 -> (N, 6, 4)  (a table lookup)

out = x[:, ..., indices, ...] with indices at `axis`: the output's shape is x's with that axis
replaced by the indices' shape. Negative indices count from the end. The indices get no
gradient; x's gradient sums dout into every position that was picked (scatter-add), so a slice
picked twice gets both gradients.
"""
from __future__ import annotations

import math

import numpy as np

from dagnet.errors import AttrError, DTypeError, FeedError, ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.broadcast import dims_text
from dagnet.ops.declare import Attr, indices, value
from dagnet.ops.embedding import embedding_backward


def take_backward(dout: np.ndarray, idx: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """The gradient of np.take(x, idx, axis) for x of `shape`: dout summed into the positions
    idx picked.  dout: shape[:axis] + idx.shape + shape[axis+1:] -> shape."""
    pre, post, n = shape[:axis], shape[axis + 1:], shape[axis]
    p, q = math.prod(pre), math.prod(post)
    d = dout.reshape(p, idx.size, q).transpose(1, 0, 2).reshape(idx.size, p * q)
    g = embedding_backward(d, idx.reshape(-1), n)  # (n, p * q): a segmented sum by index
    return np.ascontiguousarray(g.reshape(n, p, q).transpose(1, 0, 2)).reshape(shape)


@register
class Gather(Op):
    """Slices of x picked along `axis` by int64 indices (ONNX Gather).  x (N, 5, 7), indices
    (2, 3), axis 2 -> (N, 5, 2, 3); x (V, D), indices (N, T), axis 0 -> (N, T, D)."""

    name = "gather"
    ports = (value("x", "any shape of rank >= 1"),
             indices("indices", "int64 positions on x's axis, any shape (negative: from the end)"))
    attributes = (Attr("axis", "int", 0, doc="the axis of x to pick along (negative counts "
                       "from the end; never the batch axis of a batched x)"),)
    full_shapes = True
    fusion_kind = "injective"
    saves = frozenset()  # backward keeps the indices in its cache, never x
    linear = True

    def _axis(self, attrs, shape) -> int:
        axis, rank = self.read_attrs(attrs)["axis"], len(shape)
        if not -rank <= axis < rank:
            raise AttrError(f"gather: axis {axis} is out of range for x {dims_text(shape)}"
                            + (f"; use -{rank}..{rank - 1}" if rank else
                               "; a scalar has no axis to gather along"))
        return axis % rank

    def infer_shape(self, in_shapes, attrs):
        x, idx = (tuple(s) for s in in_shapes)
        axis = self._axis(attrs, x)
        if x[axis] is None:
            raise ShapeError(f"gather: axis {axis} is the batch axis N of x {dims_text(x)}; "
                             f"gather along an axis of each example (1..)")
        if idx and idx[0] is None and (axis != 0 or (x and x[0] is None)):
            raise ShapeError(f"gather: batched indices {dims_text(idx)} on axis {axis} of x "
                             f"{dims_text(x)} would put their batch axis N inside the result; "
                             f"batched indices pick from an unbatched x along axis 0 (a table "
                             f"lookup)")
        return x[:axis] + idx + x[axis + 1:]

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, idx = inputs
        check_float(self.name, "x", x)
        if not isinstance(idx, np.ndarray) or idx.dtype.kind not in "iu":
            raise DTypeError(f"gather: input 'indices' must be an integer array, got "
                             f"{getattr(idx, 'dtype', type(idx).__name__)}; convert with "
                             f"indices.astype(np.int64)")
        axis = self._axis(attrs, x.shape)
        n = x.shape[axis]
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)].reshape(-1)[0]
            raise FeedError(f"gather: index {bad} is outside axis {axis} of x {x.shape} "
                            f"(size {n}); give indices in -{n}..{n - 1}")
        idx = np.where(idx < 0, idx + n, idx) if idx.size and idx.min() < 0 else idx
        return np.take(x, idx, axis=axis), (x.shape, idx, axis)

    def backward(self, dout, cache, attrs, needs=None):
        shape, idx, axis = cache
        return take_backward(dout, idx, shape, axis), None

    def jvp(self, tangents, inputs, out, cache, attrs):
        shape, idx, axis = cache
        t = tangents[0]
        return np.zeros(out.shape, out.dtype) if t is None else np.take(t, idx, axis=axis)
