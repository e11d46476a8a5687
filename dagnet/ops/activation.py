"""Element-wise activations: relu, leaky_relu, sigmoid, tanh, elu.  x: any shape, with or
without the batch axis -> same shape.

Each supports `out=` (the memory pass uses it to run in place) and declares whether its
backward reads its input or its output, so in-place runs are only planned where safe.
"""
from __future__ import annotations

import numpy as np

from dagnet.ops.base import Op, check_float, register
from dagnet.ops.declare import POSITIVE, Attr, value


def _into(y: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """y, written into `out` when the memory plan gave a buffer (an in-place step)."""
    if out is None:
        return y
    out[...] = y
    return out


class _Elementwise(Op):
    ports = (value("x", "any shape"),)
    attributes = ()
    fusion_kind = "elementwise"
    supports_out = True

    def infer_shape(self, in_shapes, attrs):
        return tuple(in_shapes[0])


class _WithAlpha(_Elementwise):
    """An activation with a positive slope/scale attr `alpha` (checked when shapes are)."""

    def _alpha(self, attrs) -> float:
        return self.read_attrs(attrs)["alpha"]

    def infer_shape(self, in_shapes, attrs):
        self._alpha(attrs)
        return tuple(in_shapes[0])


@register
class ReLU(_Elementwise):
    """max(x, 0); backward reads only the output (out > 0 iff x > 0)."""

    name = "relu"
    saves = frozenset({"output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        y = np.asarray(np.maximum(x, 0, out=out))  # a 0-d x gives a numpy scalar
        return y, y

    def backward(self, dout, cache, attrs, needs=None):
        return (dout * (cache > 0),)


@register
class LeakyReLU(_WithAlpha):
    """x if x > 0 else alpha * x (alpha default 0.01); backward reads the output (alpha > 0)."""

    name = "leaky_relu"
    attributes = (Attr("alpha", "number", 0.01, POSITIVE, "slope for x < 0"),)
    saves = frozenset({"output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        alpha = self._alpha(attrs)
        y = np.where(x > 0, x, x * x.dtype.type(alpha))
        y = _into(y, out)
        return y, y

    def backward(self, dout, cache, attrs, needs=None):
        alpha = self._alpha(attrs)
        return (np.where(cache > 0, dout, dout * dout.dtype.type(alpha)),)


@register
class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)), computed without overflow; backward reads the output."""

    name = "sigmoid"
    saves = frozenset({"output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        # exp of -|x| never overflows; split by sign for a stable sigmoid.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
        y = _into(y, out)
        return y, y

    def backward(self, dout, cache, attrs, needs=None):
        return (dout * cache * (1 - cache),)


@register
class Tanh(_Elementwise):
    """tanh(x); backward reads the output (1 - y^2)."""

    name = "tanh"
    saves = frozenset({"output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        y = np.asarray(np.tanh(x, out=out))
        return y, y

    def backward(self, dout, cache, attrs, needs=None):
        return (dout * (1 - cache * cache),)


@register
class ELU(_WithAlpha):
    """x if x > 0 else alpha * (exp(x) - 1) (alpha default 1.0); backward reads the output."""

    name = "elu"
    attributes = (Attr("alpha", "number", 1.0, POSITIVE, "the value approached as x -> -inf is -alpha"),)
    saves = frozenset({"output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        alpha = self._alpha(attrs)
        y = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)
        y = _into(y, out)
        return y, y

    def backward(self, dout, cache, attrs, needs=None):
        alpha = self._alpha(attrs)
        # for y <= 0: dy/dx = alpha * exp(x) = y + alpha
        return (np.where(cache > 0, dout, dout * (cache + alpha)),)
