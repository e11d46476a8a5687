"""Element-wise activations: relu, leaky_relu, sigmoid, tanh, elu (x: any shape, with or
without the batch axis -> same shape); selu, softplus, softsign, hardsigmoid, hardswish, mish,
gelu, and prelu (a learnable slope per channel) (x: a batch of any shape -> same shape).

Each supports `out=` (the memory pass uses it to run in place) and declares whether its
backward reads its input or its output, so in-place runs are only planned where safe.
"""
from __future__ import annotations

import numpy as np

from dagnet import special
from dagnet.errors import ShapeError
from dagnet.ops.base import Op, check_float, check_floats, register
from dagnet.ops.declare import POSITIVE, Attr, Same, data, param, value
from dagnet.relu_grad import relu_grad


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
        return (relu_grad(dout, cache),)  # +0.0 where y <= 0, as torch's threshold_backward


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



class _Pointwise(_Elementwise):
    """y = f(x); backward dout * f'(x) from what `saves` names (x, or y when it alone tells the
    slope: such ops may run in place). Subclasses give _f(x, a) and _df(x, y, a), a the attrs."""

    saves = frozenset({"output"})

    def infer_shape(self, in_shapes, attrs):
        self.read_attrs(attrs)
        return tuple(in_shapes[0])

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        a = self.read_attrs(attrs)
        y = _into(np.asarray(self._f(x, a), dtype=x.dtype), out)
        return y, ((x, None) if "input" in self.saves else (None, y))

    def backward(self, dout, cache, attrs, needs=None):
        x, y = cache
        return (dout * self._df(x, y, self.read_attrs(attrs)),)


def _softplus(x):
    """log(1 + exp(x)) without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _number(x, v):
    return x.dtype.type(v)


@register
class SELU(_Pointwise):
    """gamma * (x if x > 0 else alpha * (exp(x) - 1)), self-normalising; backward reads y."""

    name = "selu"
    attributes = (
        Attr("alpha", "number", 1.6732632423543772, POSITIVE, "the negative saturation's scale"),
        Attr("gamma", "number", 1.0507009873554805, POSITIVE, "the output scale",
             ("scale",)),
    )

    def _f(self, x, a):
        g, al = _number(x, a["gamma"]), _number(x, a["alpha"])
        return g * np.where(x > 0, x, al * np.expm1(np.minimum(x, 0)))

    def _df(self, x, y, a):
        # for y <= 0: dy/dx = gamma * alpha * exp(x) = y + gamma * alpha
        return np.where(y > 0, _number(y, a["gamma"]), y + _number(y, a["gamma"] * a["alpha"]))


@register
class Softplus(_Pointwise):
    """log(1 + exp(x)), computed without overflow; backward reads y (slope 1 - exp(-y))."""

    name = "softplus"

    def _f(self, x, a):
        return _softplus(x)

    def _df(self, x, y, a):
        return -np.expm1(-y)


@register
class Softsign(_Pointwise):
    """x / (1 + |x|); backward reads y (slope (1 - |y|)^2)."""

    name = "softsign"

    def _f(self, x, a):
        return x / (1 + np.abs(x))

    def _df(self, x, y, a):
        return np.square(1 - np.abs(y))


@register
class HardSigmoid(_Pointwise):
    """max(0, min(1, alpha * x + beta)); the default alpha 1/6 is PyTorch's and Keras' (ONNX's
    is 0.2); backward reads y."""

    name = "hardsigmoid"
    aliases = ("hard_sigmoid",)
    attributes = (
        Attr("alpha", "number", 1 / 6, POSITIVE, "the slope (ONNX's default is 0.2, PyTorch's "
             "1/6)"),
        Attr("beta", "number", 0.5, doc="the value at x = 0"),
    )

    def _f(self, x, a):
        return np.clip(_number(x, a["alpha"]) * x + _number(x, a["beta"]), 0, 1)

    def _df(self, x, y, a):
        return ((y > 0) & (y < 1)) * _number(y, a["alpha"])


@register
class HardSwish(_Pointwise):
    """x * relu6(x + 3) / 6 (MobileNetV3); backward reads x."""

    name = "hardswish"
    aliases = ("hard_swish",)
    saves = frozenset({"input"})

    def _f(self, x, a):
        return x * np.clip(x + 3, 0, 6) / 6

    def _df(self, x, y, a):
        return np.where(x < -3, 0, np.where(x > 3, 1, (2 * x + 3) / 6)).astype(x.dtype)


@register
class Mish(_Pointwise):
    """x * tanh(softplus(x)); backward reads x."""

    name = "mish"
    saves = frozenset({"input"})

    def _f(self, x, a):
        return x * np.tanh(_softplus(x))

    def _df(self, x, y, a):
        t = np.tanh(_softplus(x))
        e = np.exp(-np.abs(x))  # sigmoid(x) without overflow
        sig = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return t + x * sig * (1 - t * t)


#: sqrt(2 / pi) and the cubic's coefficient of gelu's tanh approximation
_GELU_C, _GELU_K = 0.7978845608028654, 0.044715


@register
class GELU(_Pointwise):
    """x * Phi(x), Phi the standard normal CDF (exact: erf), or its tanh approximation;
    backward reads x."""

    name = "gelu"
    attributes = (Attr("approximate", "choice", "none", doc="none: x * (1 + erf(x / sqrt 2)) / 2"
                       "; tanh: x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))) / 2",
                       choices=("none", "tanh")),)
    saves = frozenset({"input"})

    def _f(self, x, a):
        if a["approximate"] == "tanh":
            return 0.5 * x * (1 + self._tanh(x))
        return 0.5 * x * (1 + special.erf(x * _number(x, 1 / np.sqrt(2))))

    @staticmethod
    def _tanh(x):
        """tanh(sqrt(2 / pi) * (x + k x^3)), x clipped where it is +-1 already (no overflow)."""
        x = np.clip(x, -10, 10)
        return np.tanh(_number(x, _GELU_C) * (x + _number(x, _GELU_K) * x * x * x))

    def _df(self, x, y, a):
        if a["approximate"] == "tanh":
            t, xc = self._tanh(x), np.clip(x, -10, 10)
            c, k = _number(x, _GELU_C), _number(x, _GELU_K)
            return 0.5 * (1 + t) + 0.5 * xc * (1 - t * t) * c * (1 + 3 * k * xc * xc)
        cdf = 0.5 * (1 + special.erf(x * _number(x, 1 / np.sqrt(2))))
        xc = np.clip(x, -40, 40)  # exp(-800) is 0 already; x * x would overflow in float32
        return cdf + xc * np.exp(-0.5 * xc * xc) * _number(x, 1 / np.sqrt(2 * np.pi))

@register
class PReLU(Op):
    """x if x > 0 else slope * x, slope learnable.  x: (N, C, ...), slope: (C, 1, ...) -> like x.

    One slope per channel, or one for all (shared=True, slope (1,)). The slope broadcasts against one example aligned to the right, as ONNX PRelu's and Keras'
    do; torch.nn.PReLU keeps the same numbers as a (C,) vector.
    """

    name = "prelu"
    ports = (data("x", "any shape (N, C, ...)"),
             param("slope", "constant", "slopes for x < 0: (C, 1, ..., 1), or (1,) shared",
                   value=Same("slope_init")))
    attributes = (
        Attr("shared", "bool", False, doc="one slope for every value (torch's num_parameters=1)"
             "; else one per channel", node=False),
        Attr("slope_init", "number", 0.25, doc="the slopes' initial value (torch's init)",
             node=False),
    )
    fusion_kind = "opaque"  # two inputs: not a candidate for in-place element-wise runs
    saves = frozenset({"input"})

    def param_shapes(self, x_shape, attrs):
        if attrs["shared"] or not x_shape:
            return {"slope": (1,)}
        return {"slope": (x_shape[0],) + (1,) * (len(x_shape) - 1)}

    def infer_shape(self, in_shapes, attrs):
        x_shape, s_shape = (tuple(s) for s in in_shapes)
        if len(s_shape) > len(x_shape) or any(s not in (1, x) for s, x in
                                              zip(reversed(s_shape), reversed(x_shape))):
            c = x_shape[0] if x_shape else 1
            want = (c,) + (1,) * (len(x_shape) - 1) if x_shape else (1,)
            raise ShapeError(
                f"prelu: slope of shape {s_shape} does not broadcast against an example of "
                f"shape {x_shape} (aligned to the right, each slope dim 1 or equal); give it "
                f"shape {want} (one per channel) or (1,) (shared)")
        return x_shape

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, slope = inputs
        check_floats(self.name, self.input_names, inputs)
        self.infer_shape([x.shape[1:], slope.shape], attrs)
        return np.where(x > 0, x, x * slope), (x, slope)

    def backward(self, dout, cache, attrs, needs=None):
        x, slope = cache
        neg = x <= 0
        dx = None if needs is not None and not needs[0] else np.where(neg, dout * slope, dout)
        dslope = None
        if needs is None or needs[1]:
            # sum over the batch and every axis the slope is broadcast along
            full = np.where(neg, dout * x, 0).astype(x.dtype, copy=False)
            lead = full.ndim - slope.ndim
            axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(slope.shape)
                                               if s == 1 and full.shape[lead + i] != 1)
            dslope = full.sum(axis=axes).reshape(slope.shape) if axes else full
        return dx, dslope
