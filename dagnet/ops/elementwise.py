"""Elementwise ops of two or three values with numpy broadcasting: sub, mul, div, pow,
maximum, minimum; where; the comparisons equal, less, less_equal, greater, greater_equal.
(add, which takes two or more values, is in merge.py.)

    x (N, 3, 4), y (4,) -> (N, 3, 4)      values with or without the batch axis, any rank

Shapes broadcast as numpy's do on the full arrays, the batch axis leading (the rule and what
it refuses: dagnet/ops/broadcast.py); each gradient is summed back to its operand's shape.
Comparisons give masks of 0.0 and 1.0 in the inputs' float dtype (no bool values in dagnet)
and pass no gradient; where takes such a mask (any nonzero is true).
"""
from __future__ import annotations

import numpy as np

from dagnet.ops.base import Op, check_floats, register
from dagnet.ops.broadcast import broadcast_shapes, runtime_broadcast, sum_to
from dagnet.ops.declare import Port, value


def port_names(op, n: int) -> list[str]:
    """The names of an op's first n input ports (variadic ones numbered: x0, x1, ...)."""
    fixed = [p.name for p in op.ports if not p.variadic]
    many = [p.name for p in op.ports if p.variadic]
    return (fixed + [f"{many[0]}{i}" for i in range(n - len(fixed))])[:n] if many else fixed[:n]


class Broadcasting(Op):
    """Shared by ops whose output is their operands broadcast together (full shapes)."""

    attributes = ()
    full_shapes = True
    fusion_kind = "broadcast"
    supports_out = True

    def infer_shape(self, in_shapes, attrs):
        return broadcast_shapes(self.name, port_names(self, len(in_shapes)), in_shapes)

    def checked(self, inputs) -> tuple:
        """The broadcast shape of the inputs, checked: floats of one dtype whose shapes
        broadcast."""
        names = port_names(self, len(inputs))
        check_floats(self.name, names, inputs)
        return runtime_broadcast(self.name, names, inputs)


def _want(needs, i) -> bool:
    return needs is None or needs[i]


def tangent_sum(out, *terms):
    """The tangent of `out` from its terms (None: zero), each broadcast to out's shape."""
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return np.array(np.broadcast_to(total, np.shape(out)), dtype=out.dtype)  # 0-d stays 0-d


class _Binary(Broadcasting):
    ports = (value("x", "any shape"), value("y", "broadcasts with x"))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        self.checked(inputs)
        x, y = inputs
        z = np.asarray(self.compute(x, y, out))  # 0-d inputs give a numpy scalar
        return z, self.keep(x, y, z)

    def keep(self, x, y, z):
        """What backward needs: by default the operands' shapes only."""
        return x.shape, y.shape


@register
class Sub(_Binary):
    """x - y, broadcasting.  x, y: any shapes that broadcast -> their broadcast shape."""

    name = "sub"
    saves = frozenset()
    linear = True

    def compute(self, x, y, out):
        return np.subtract(x, y, out=out)

    def backward(self, dout, cache, attrs, needs=None):
        xs, ys = cache
        return (sum_to(dout, xs) if _want(needs, 0) else None,
                sum_to(np.negative(dout), ys) if _want(needs, 1) else None)


@register
class Mul(_Binary):
    """x * y, broadcasting.  x, y: any shapes that broadcast -> their broadcast shape."""

    name = "mul"
    saves = frozenset({"input"})

    def compute(self, x, y, out):
        return np.multiply(x, y, out=out)

    def keep(self, x, y, z):
        return x, y

    def backward(self, dout, cache, attrs, needs=None):
        x, y = cache
        return (sum_to(dout * y, x.shape) if _want(needs, 0) else None,
                sum_to(dout * x, y.shape) if _want(needs, 1) else None)

    def jvp(self, tangents, inputs, out, cache, attrs):
        (tx, ty), (x, y) = tangents, inputs
        return tangent_sum(out, None if tx is None else tx * y, None if ty is None else x * ty)


@register
class Div(_Binary):
    """x / y, broadcasting.  x, y: any shapes that broadcast -> their broadcast shape."""

    name = "div"
    saves = frozenset({"input"})

    def compute(self, x, y, out):
        return np.divide(x, y, out=out)

    def keep(self, x, y, z):
        return x, y

    def backward(self, dout, cache, attrs, needs=None):
        x, y = cache
        dx = dout / y
        dy = sum_to(-dx * x / y, y.shape) if _want(needs, 1) else None
        return (sum_to(dx, x.shape) if _want(needs, 0) else None), dy

    def jvp(self, tangents, inputs, out, cache, attrs):
        (tx, ty), (_, y) = tangents, inputs
        return tangent_sum(out, None if tx is None else tx / y,
                           None if ty is None else -out * ty / y)


@register
class Pow(_Binary):
    """x ** y, broadcasting.  x, y: any shapes that broadcast -> their broadcast shape.

    The gradients are torch's: d/dx = y x^(y-1) (0 where y == 0), d/dy = x^y log x (0 where
    x == 0 and y >= 0; NaN for negative x, whose log is undefined)."""

    name = "pow"
    saves = frozenset({"input", "output"})

    def compute(self, x, y, out):
        return np.power(x, y, out=out)

    def keep(self, x, y, z):
        return x, y, z

    def backward(self, dout, cache, attrs, needs=None):
        x, y, z = cache
        dx = dy = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if _want(needs, 0):
                dx = sum_to(np.where(y == 0, 0, dout * y * np.power(x, y - 1)).astype(z.dtype),
                            x.shape)
            if _want(needs, 1):
                dy = sum_to(np.where((x == 0) & (y >= 0), 0, dout * z * np.log(x))
                            .astype(z.dtype), y.shape)
        return dx, dy

    def jvp(self, tangents, inputs, out, cache, attrs):
        # the backward's partials, each with the tangent in place of dout, not summed back
        (tx, ty), (x, y) = tangents, inputs
        with np.errstate(divide="ignore", invalid="ignore"):
            return tangent_sum(
                out, None if tx is None else np.where(y == 0, 0, tx * y * np.power(x, y - 1)),
                None if ty is None else np.where((x == 0) & (y >= 0), 0, ty * out * np.log(x)))


class _Extremum(_Binary):
    """maximum/minimum: the gradient goes to the operand chosen; on a tie half to each (torch)."""

    saves = frozenset({"input"})

    def keep(self, x, y, z):
        return x, y

    def backward(self, dout, cache, attrs, needs=None):
        x, y = cache
        wins = self.ufunc(x, y) == x  # x chosen (ties included)
        tie = x == y
        share = np.where(tie, dout * dout.dtype.type(0.5), dout)
        return (sum_to(np.where(wins, share, 0), x.shape) if _want(needs, 0) else None,
                sum_to(np.where(wins & ~tie, 0, share), y.shape) if _want(needs, 1) else None)

    def jvp(self, tangents, inputs, out, cache, attrs):
        # torch's: the chosen operand's tangent, the mean of both on a tie
        if all(t is None for t in tangents):
            return None
        (x, y), zero = inputs, out.dtype.type(0)
        tx, ty = (zero if t is None else t for t in tangents)
        return tangent_sum(out, np.where(x == y, (tx + ty) * out.dtype.type(0.5),
                                         np.where(self.ufunc(x, y) == x, tx, ty)))

    def compute(self, x, y, out):
        return self.ufunc(x, y, out=out)


@register
class Maximum(_Extremum):
    """The larger of x and y, elementwise, broadcasting."""

    name = "maximum"
    ufunc = staticmethod(np.maximum)


@register
class Minimum(_Extremum):
    """The smaller of x and y, elementwise, broadcasting."""

    name = "minimum"
    ufunc = staticmethod(np.minimum)


@register
class Where(Broadcasting):
    """x where the condition is nonzero, else y, broadcasting all three.

    condition: a mask (a comparison's 0.0/1.0); no gradient flows into it."""

    name = "where"
    ports = (Port("condition", grad=False, either=True, doc="nonzero: take x"),
             value("x", "taken where the condition holds"), value("y", "taken elsewhere"))
    saves = frozenset({"input"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        self.checked(inputs)
        c, x, y = inputs
        mask = c != 0
        z = np.where(mask, x, y)
        if out is not None:
            out[...] = z
            z = out
        return z, (mask, x.shape, y.shape)

    def backward(self, dout, cache, attrs, needs=None):
        mask, xs, ys = cache
        zero = dout.dtype.type(0)
        return (None,
                sum_to(np.where(mask, dout, zero), xs) if _want(needs, 1) else None,
                sum_to(np.where(mask, zero, dout), ys) if _want(needs, 2) else None)

    def jvp(self, tangents, inputs, out, cache, attrs):
        _, tx, ty = tangents
        if tx is None and ty is None:
            return None
        zero = out.dtype.type(0)
        return tangent_sum(out, np.where(cache[0], zero if tx is None else tx,
                                         zero if ty is None else ty))


class _Compare(Broadcasting):
    """A comparison: a mask of 0.0 and 1.0, no gradient."""

    ports = (Port("x", grad=False, either=True, doc="any shape"),
             Port("y", grad=False, either=True, doc="broadcasts with x"))
    saves = frozenset()

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        self.checked(inputs)
        x, y = inputs
        mask = np.asarray(self.ufunc(x, y))
        if out is None:
            return mask.astype(x.dtype), None
        np.copyto(out, mask)
        return out, None

    def backward(self, dout, cache, attrs, needs=None):
        return None, None

    def jvp(self, tangents, inputs, out, cache, attrs):
        return None  # piecewise constant


def _comparison(op_name: str, ufunc, symbol: str):
    cls = type(op_name.title().replace("_", ""), (_Compare,), {
        "name": op_name, "ufunc": staticmethod(ufunc),
        "__doc__": f"1.0 where x {symbol} y, else 0.0 (broadcasting); no gradient."})
    return register(cls)


Equal = _comparison("equal", np.equal, "==")
Less = _comparison("less", np.less, "<")
LessEqual = _comparison("less_equal", np.less_equal, "<=")
Greater = _comparison("greater", np.greater, ">")
GreaterEqual = _comparison("greater_equal", np.greater_equal, ">=")
