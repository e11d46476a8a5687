"""Reductions over any axes: sum, mean, max, min, prod, l2 (the Euclidean norm), and argmax.

    x (N, 3, 4), axes [2]            -> (N, 3)        keepdims: (N, 3, 1)
    x (N, 3, 4), axes [0]            -> (3, 4)        over the batch: an unbatched value
    x (N, 3, 4), no axes             -> ()            everything

Axes count over the full array as numpy's and ONNX's do: axis 0 of a batched value is its
batch axis, negatives count from the end; a reduction over the batch axis gives an unbatched
value (keepdims keeps it as an axis of size 1, unbatched too). The gradients are torch's: max
and min share theirs equally among tied maxima (amax/amin), prod's is exact with zeros in x,
l2's is 0 where the norm is 0. argmax gives int64 indices (the first maximum) and no gradient.
"""
from __future__ import annotations

import numpy as np

from dagnet.ops.base import Op, check_float, register
from dagnet.ops.broadcast import normalize_axes
from dagnet.ops.declare import Attr, Port, value

_AXES = Attr("axes", "axes", None, doc="the axes to reduce (negatives count from the end; "
             "axis 0 of a batched value is the batch axis); default: all")
_KEEPDIMS = Attr("keepdims", "bool", False, doc="keep each reduced axis with size 1",
                 keep_default=False)


class Reduction(Op):
    """Shared by the reductions: their axes and output shape."""

    ports = (value("x", "any shape"),)
    attributes = (_AXES, _KEEPDIMS)
    full_shapes = True
    fusion_kind = "reduction"
    saves = frozenset({"input"})

    def axes_of(self, attrs, rank: int):
        """(axes as sorted non-negative ints, keepdims) for an input of `rank` axes."""
        a = self.read_attrs(attrs)
        axes = tuple(range(rank)) if a["axes"] is None else normalize_axes(self.name, a["axes"], rank)
        return axes, a["keepdims"]

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        axes, keep = self.axes_of(attrs, len(shape))
        return tuple(1 if i in axes else d for i, d in enumerate(shape)
                     if keep or i not in axes)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        axes, keep = self.axes_of(attrs, x.ndim)
        y = np.asarray(self.reduce(x, axes), dtype=x.dtype)  # keepdims=True: broadcasts back
        return (y if keep else y.reshape([d for i, d in enumerate(y.shape) if i not in axes]),
                (x, y, axes))

    def backward(self, dout, cache, attrs, needs=None):
        x, y, axes = cache
        d = dout.reshape(y.shape)  # the reduced axes back, as size 1
        return (np.array(np.broadcast_to(self.grad(d, x, y, axes), x.shape)),)  # a copy, 0-d kept

    def jvp(self, tangents, inputs, out, cache, attrs):
        # the Jacobian row of each output is grad() with a unit dout: weight the tangent by
        # it and reduce as the forward does
        (t,), (x, y, axes) = tangents, cache
        if t is None:
            return None
        weights = self.grad(np.ones_like(y), x, y, axes)
        return np.sum(weights * t, axis=axes, keepdims=True, dtype=out.dtype).reshape(out.shape)


@register
class ReduceSum(Reduction):
    """The sum over `axes` (default all)."""

    name = "sum"
    aliases = ("reduce_sum",)
    saves = frozenset()

    def reduce(self, x, axes):
        return np.sum(x, axis=axes, keepdims=True)

    def grad(self, d, x, y, axes):
        return d


@register
class ReduceMean(Reduction):
    """The mean over `axes` (default all)."""

    name = "mean"
    aliases = ("reduce_mean",)
    saves = frozenset()

    def reduce(self, x, axes):
        return np.mean(x, axis=axes, keepdims=True)

    def grad(self, d, x, y, axes):
        count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        return d / d.dtype.type(count)


class _Extreme(Reduction):
    """max/min: the gradient goes to the extreme entries, shared equally among ties."""

    saves = frozenset({"input"})

    def grad(self, d, x, y, axes):
        hit = x == y
        return hit * (d / hit.sum(axis=axes, keepdims=True).astype(d.dtype))


@register
class ReduceMax(_Extreme):
    """The maximum over `axes` (default all)."""

    name = "max"
    aliases = ("reduce_max", "amax")

    def reduce(self, x, axes):
        return np.max(x, axis=axes, keepdims=True)


@register
class ReduceMin(_Extreme):
    """The minimum over `axes` (default all)."""

    name = "min"
    aliases = ("reduce_min", "amin")

    def reduce(self, x, axes):
        return np.min(x, axis=axes, keepdims=True)


@register
class ReduceProd(Reduction):
    """The product over `axes` (default all); the gradient is exact where x holds zeros."""

    name = "prod"
    aliases = ("reduce_prod",)

    def reduce(self, x, axes):
        return np.prod(x, axis=axes, keepdims=True)

    def grad(self, d, x, y, axes):
        # d prod / d x_i = the product of the others: exclusive prefix times suffix products
        # along the reduced axes, laid out last and flattened into one
        rest = [i for i in range(x.ndim) if i not in axes]
        moved = np.transpose(x, rest + list(axes))
        flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
        ones = np.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
        before = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        after = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = (before * after).reshape(moved.shape)
        return d * np.transpose(others, np.argsort(rest + list(axes)))


@register
class ReduceL2(Reduction):
    """The Euclidean norm sqrt(sum x^2) over `axes` (default all); its gradient x / norm is
    0 where the norm is 0."""

    name = "l2"
    aliases = ("reduce_l2",)
    saves = frozenset({"input", "output"})

    def reduce(self, x, axes):
        return np.sqrt(np.sum(x * x, axis=axes, keepdims=True))

    def grad(self, d, x, y, axes):
        safe = np.where(y == 0, 1, y)
        return np.where(y == 0, 0, d / safe) * x


@register
class ArgMax(Op):
    """int64 index of the maximum along `axis` (the first one on a tie); no gradient.

    x (N, C), axis -1 -> (N,) int64: the predicted classes."""

    name = "argmax"
    ports = (Port("x", grad=False, either=True, doc="any shape"),)
    attributes = (Attr("axis", "int", -1, doc="the axis to search (negatives count from the "
                       "end; 0 of a batched value is the batch axis)"), _KEEPDIMS)
    full_shapes = True
    fusion_kind = "reduction"
    output_dtype = "int64"
    saves = frozenset()

    def axis_of(self, attrs, rank: int):
        a = self.read_attrs(attrs)
        return normalize_axes(self.name, [a["axis"]], max(rank, 1), "axis")[0], a["keepdims"]

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        axis, keep = self.axis_of(attrs, len(shape))
        if not shape:
            return ()
        return tuple(1 if i == axis else d for i, d in enumerate(shape) if keep or i != axis)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        axis, keep = self.axis_of(attrs, x.ndim)
        if not x.ndim:
            return np.zeros((), dtype=np.int64), None
        return np.argmax(x, axis=axis, keepdims=keep).astype(np.int64, copy=False), None

    def backward(self, dout, cache, attrs, needs=None):
        return (None,)

    def jvp(self, tangents, inputs, out, cache, attrs):
        return None  # indices: piecewise constant
