"""Shape ops: flatten and reshape.  They move no data: forward returns a view of x where numpy
can (always for contiguous x) and backward a view of dout, hence `may_alias`.

    flatten: (N, d1, ..., dk) -> (N, d1 * ... * dk)
    reshape: (N, d1, ..., dk) -> (N,) + attrs["shape"]   (one -1 allowed, inferred)
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.declare import REQUIRED, Attr, data


class _Reshaping(Op):
    ports = (data("x", "any shape"),)
    attributes = ()
    fusion_kind = "injective"
    saves = frozenset()  # backward needs only x's shape, kept in the cache
    may_alias = True
    linear = True

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        per_example = self.infer_shape([x.shape[1:]], attrs)
        return x.reshape((x.shape[0],) + per_example), x.shape

    def backward(self, dout, cache, attrs, needs=None):
        return (dout.reshape(cache),)


@register
class Flatten(_Reshaping):
    """Flatten each example.  x: (N, d1, ..., dk) -> (N, d1 * ... * dk)."""

    name = "flatten"

    def infer_shape(self, in_shapes, attrs):
        return (int(np.prod(in_shapes[0], dtype=np.int64)),)


@register
class Reshape(_Reshaping):
    """Reshape each example to attrs["shape"] (one -1 allowed).  x: (N, d1, ..., dk) -> (N,) + shape."""

    name = "reshape"
    attributes = (Attr("shape", "target", REQUIRED,
                       doc="the per-example target shape; one -1 is inferred"),)

    def infer_shape(self, in_shapes, attrs):
        in_shape = tuple(in_shapes[0])
        target = self.read_attrs(attrs)["shape"]
        size = int(np.prod(in_shape, dtype=np.int64))
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        if -1 in target and known > 0 and size % known == 0:
            target = tuple(size // known if d == -1 else d for d in target)
        if int(np.prod(target, dtype=np.int64)) != size or -1 in target:
            raise ShapeError(
                f"reshape: cannot reshape per-example shape {in_shape} ({size} values) to "
                f"{tuple(int(d) for d in attrs['shape'])}; the target must hold {size} values"
            )
        return target
