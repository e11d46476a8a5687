"""Shape ops: flatten and reshape, on values with or without the batch axis.  They move no
data: forward returns a view of x where numpy can (always for contiguous x) and backward a view
of dout, hence `may_alias`.

    flatten: x (N, d1, ..., dk), axis 1 -> (N, d1 * ... * dk)
             x (d0, ..., dk) unbatched, axis a -> (d0 * ... * d(a-1), da * ... * dk)  (ONNX)
    reshape: x (N, d1, ..., dk) -> (N,) + shape   (shape per example: the batch axis stays)
             x (d0, ..., dk) unbatched -> shape
             in shape, one -1 is inferred and 0 copies the input's size at that position
"""
from __future__ import annotations

import math

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.broadcast import dims_text
from dagnet.ops.declare import REQUIRED, Attr, value


class _Reshaping(Op):
    ports = (value("x", "any shape"),)
    attributes = ()
    full_shapes = True
    fusion_kind = "injective"
    saves = frozenset()  # backward needs only x's shape, kept in the cache
    may_alias = True
    linear = True

    def backward(self, dout, cache, attrs, needs=None):
        return (dout.reshape(cache),)


@register
class Flatten(_Reshaping):
    """Flatten x into a matrix at `axis` (ONNX Flatten).  (N, d1, ..., dk) -> (N, d1 * ... * dk);
    unbatched (d0, ..., dk) -> (d0 * ... * d(axis-1), d(axis) * ... * dk)."""

    name = "flatten"
    attributes = (Attr("axis", "int", 1, keep_default=False, doc="the axes before it make the "
                       "rows, the rest the columns (negative counts from the end); a batched "
                       "value keeps its batch axis: 1"),)

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        axis = self.read_attrs(attrs)["axis"]
        rank = len(shape)
        if not -rank <= axis <= rank:
            raise AttrError(f"flatten: axis {axis} is out of range for x {dims_text(shape)}; "
                            f"use -{rank}..{rank}")
        axis = axis + rank if axis < 0 else axis
        if shape and shape[0] is None:
            if axis != 1:
                raise ShapeError(f"flatten: axis {axis} of x {dims_text(shape)} would mix the "
                                 f"batch axis N with other axes; a batched value flattens each "
                                 f"example: give axis 1, or reshape each example "
                                 f"(reshape shape=[0, ..., -1])")
            return None, math.prod(shape[1:])
        return math.prod(shape[:axis]), math.prod(shape[axis:])

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        axis = self.read_attrs(attrs)["axis"]
        axis = axis + x.ndim if axis < 0 else axis
        # a batched value is flattened at axis 1, where batched and unbatched agree
        return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:])), x.shape


@register
class Reshape(_Reshaping):
    """x reshaped to `shape` (one -1 inferred, 0 copies the input's size there).
    (N, d1, ..., dk) -> (N,) + shape (shape per example); unbatched x -> shape."""

    name = "reshape"
    attributes = (Attr("shape", "target", REQUIRED,
                       doc="the target shape, per example for a batched value (the batch axis "
                       "stays); one -1 is inferred, 0 copies the input's size at that position"),
                  Attr("batched", "bool", True, keep_default=False,
                       doc="whether x carries the batch axis (shape is then per example); set "
                       "when the graph is built, since forward sees only arrays"))
    #: infer_node records x's batchedness in this attr (forward cannot tell a batch of one
    #: from a leading axis of size 1)
    batched_attr = "batched"

    def infer_shape(self, in_shapes, attrs):
        full = tuple(in_shapes[0])
        batched = bool(full) and full[0] is None
        shape = full[1:] if batched else full
        a = self.read_attrs(attrs)
        if a["batched"] != batched:
            raise ShapeError(f"reshape: batched is {str(a['batched']).lower()} but x "
                             f"{dims_text(full)} is {'' if batched else 'not '}batched; drop "
                             f"the batched attr (it is recorded from x)")
        given = tuple(a["shape"])
        target = list(given)
        for i, d in enumerate(given):
            if d == 0:
                if i >= len(shape):
                    raise ShapeError(f"reshape: shape {list(given)} copies (0) axis {i + batched} "
                                     f"of x {dims_text(full)}, which has no such axis; give the "
                                     f"size there")
                target[i] = shape[i]
        size = math.prod(shape)
        known = math.prod(d for d in target if d != -1)
        if -1 in target and known > 0 and size % known == 0:
            target[target.index(-1)] = size // known
        if math.prod(target) != size or -1 in target:
            what = "per-example shape" if batched else "shape"
            raise ShapeError(f"reshape: cannot reshape {what} {shape} ({size} values) to "
                             f"{given}; the target must hold {size} values")
        return (None, *target) if batched else tuple(target)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        batched = self.read_attrs(attrs)["batched"]
        shape = self.infer_shape([(None, *x.shape[1:]) if batched else x.shape], attrs)
        return x.reshape((x.shape[0], *shape[1:]) if batched else shape), x.shape
