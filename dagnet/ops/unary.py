"""Elementwise math of one value: exp, log, sqrt, reciprocal, abs, neg, sin, cos, erf, clip,
sign.  x: any shape, with or without the batch axis -> the same shape.

Each writes into `out` when given (the memory plan's buffer, or its input when it runs in
place) and declares whether its backward reads its input or its output, so the memory pass and
the elementwise fusion overwrite only what no backward needs. The gradients are torch's at the
edges: abs' and sign's at 0 are 0, clip passes the gradient where min <= x <= max.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.declare import Attr, value
from dagnet.special import TWO_OVER_SQRT_PI, erf


class Unary(Op):
    """Shared by the one-value elementwise ops: y = fn(x), the shape kept."""

    ports = (value("x", "any shape"),)
    attributes = ()
    full_shapes = True
    fusion_kind = "elementwise"
    supports_out = True

    def infer_shape(self, in_shapes, attrs):
        return tuple(in_shapes[0])

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        y = np.asarray(self.fn(x, out, attrs))  # a 0-d input gives a numpy scalar
        return y, (x if "input" in self.saves else None, y if "output" in self.saves else None)

    def backward(self, dout, cache, attrs, needs=None):
        x, y = cache
        return (self.grad(dout, x, y, attrs),)


def _into(y, out):
    if out is None:
        return y
    out[...] = y
    return out


@register
class Exp(Unary):
    """e ** x; backward reads the output."""

    name = "exp"
    saves = frozenset({"output"})

    def fn(self, x, out, attrs):
        return np.exp(x, out=out)

    def grad(self, dout, x, y, attrs):
        return dout * y


@register
class Log(Unary):
    """The natural logarithm (-inf at 0, NaN below); backward reads the input."""

    name = "log"

    def fn(self, x, out, attrs):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x, out=out)

    def grad(self, dout, x, y, attrs):
        return dout / x


@register
class Sqrt(Unary):
    """The square root (NaN below 0); backward reads the output."""

    name = "sqrt"
    saves = frozenset({"output"})

    def fn(self, x, out, attrs):
        with np.errstate(invalid="ignore"):
            return np.sqrt(x, out=out)

    def grad(self, dout, x, y, attrs):
        with np.errstate(divide="ignore"):
            return dout / (y + y)


@register
class Reciprocal(Unary):
    """1 / x; backward reads the output (d/dx = -y^2)."""

    name = "reciprocal"
    saves = frozenset({"output"})

    def fn(self, x, out, attrs):
        with np.errstate(divide="ignore"):
            return np.reciprocal(x, out=out)

    def grad(self, dout, x, y, attrs):
        return -dout * y * y


@register
class Abs(Unary):
    """|x|; the gradient at 0 is 0."""

    name = "abs"

    def fn(self, x, out, attrs):
        return np.abs(x, out=out)

    def grad(self, dout, x, y, attrs):
        return dout * np.sign(x)


@register
class Neg(Unary):
    """-x."""

    name = "neg"
    saves = frozenset()

    def fn(self, x, out, attrs):
        return np.negative(x, out=out)

    def grad(self, dout, x, y, attrs):
        return np.negative(dout)


@register
class Sin(Unary):
    """sin(x) (radians); backward reads the input."""

    name = "sin"

    def fn(self, x, out, attrs):
        return np.sin(x, out=out)

    def grad(self, dout, x, y, attrs):
        return dout * np.cos(x)


@register
class Cos(Unary):
    """cos(x) (radians); backward reads the input."""

    name = "cos"

    def fn(self, x, out, attrs):
        return np.cos(x, out=out)

    def grad(self, dout, x, y, attrs):
        return -dout * np.sin(x)


@register
class Erf(Unary):
    """The error function 2/sqrt(pi) * integral of exp(-t^2) from 0 to x (the C library's
    erf, or Cody's rational approximations without the kernels: dagnet/special.py)."""

    name = "erf"

    def fn(self, x, out, attrs):
        return _into(erf(x), out)

    def grad(self, dout, x, y, attrs):
        return dout * (np.exp(-x * x) * x.dtype.type(TWO_OVER_SQRT_PI))


@register
class Sign(Unary):
    """-1, 0 or 1 by the sign of x; its gradient is 0 everywhere."""

    name = "sign"
    saves = frozenset()

    def fn(self, x, out, attrs):
        return np.sign(x, out=out)

    def grad(self, dout, x, y, attrs):
        return np.zeros_like(dout)


@register
class Clip(Unary):
    """x limited to [min, max] (either may be left out); the gradient passes where
    min <= x <= max."""

    name = "clip"
    aliases = ("clamp",)
    attributes = (Attr("min", "number", None, doc="the lower limit (default: none)"),
                  Attr("max", "number", None, doc="the upper limit (default: none)"))

    def limits(self, attrs):
        a = self.read_attrs(attrs)
        if a["min"] is not None and a["max"] is not None and a["min"] > a["max"]:
            raise AttrError(f"clip: min {a['min']:g} is above max {a['max']:g}")
        return a["min"], a["max"]

    def infer_shape(self, in_shapes, attrs):
        self.limits(attrs)
        return tuple(in_shapes[0])

    def fn(self, x, out, attrs):
        lo, hi = self.limits(attrs)
        if lo is None and hi is None:
            return _into(x.copy(), out)
        return np.clip(x, lo, hi, out=out)

    def grad(self, dout, x, y, attrs):
        lo, hi = self.limits(attrs)
        keep = np.ones(x.shape, dtype=bool)
        if lo is not None:
            keep &= x >= lo
        if hi is not None:
            keep &= x <= hi
        return dout * keep
