"""Per-example normalisations: layer_norm, group_norm, instance_norm. Unlike batchnorm they
use no batch statistics and keep no running state: train and eval compute the same thing.

    layer_norm(x (N, ...), axis)    statistics over x's axes from `axis` on, per example;
                                    gamma, beta: x.shape[axis:] (torch's normalized_shape)
    group_norm(x (N, C, ...), G)    statistics per example over each group of C/G channels and
                                    their positions; gamma, beta: (C,)
    instance_norm(x (N, C, ...))    group_norm with one channel per group; gamma, beta: (C,)

Each normalises rows of a 2-D view of x, (examples x groups, values per group):
    xhat = (x - mean) / sqrt(var + eps)    (var biased, as torch, ONNX and Keras)
    y = gamma * xhat + beta
and backward runs the closed form per row of m values, with g = dout * gamma:
    dx = inv_std / m * (m * g - sum(g) - xhat * sum(g * xhat))
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import ShapeError
from dagnet.ops.base import Op, check_floats, register
from dagnet.ops.declare import COUNT, POSITIVE, REQUIRED, Attr, data, param
from dagnet.ops.loss import example_axis
from dagnet.ops.workspace import Workspace

EPS = Attr("eps", "number", 1e-5, POSITIVE, "added to the variance before its square root",
           ("epsilon",))


def standardise(rows: np.ndarray, eps: float):
    """(x - mean) / sqrt(var + eps) along the last axis.  rows: (R, m) -> (xhat (R, m), inv_std
    (R, 1))."""
    mean = rows.mean(axis=1, keepdims=True)
    d = rows - mean
    inv_std = 1 / np.sqrt(np.mean(d * d, axis=1, keepdims=True) + rows.dtype.type(eps))
    d *= inv_std
    return d, inv_std


def standardise_backward(g: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
    """Gradient of standardise for the upstream gradient g.  g, xhat: (R, m) -> (R, m)."""
    m = g.shape[1]
    dx = m * g - g.sum(axis=1, keepdims=True)
    dx -= xhat * np.sum(g * xhat, axis=1, keepdims=True)
    dx *= inv_std / g.dtype.type(m)
    return dx


class _PerExample(Op):
    """Shared forward/backward: subclasses say how x is cut into rows (_rows) and how gamma
    and beta broadcast against x (_affine_shape)."""

    ports = (data("x"), param("gamma", "ones", "scale"), param("beta", "zeros", "shift"))
    fusion_kind = "opaque"
    # backward reads the normalised x its cache keeps (workspace) and gamma, never x or y
    saves = frozenset()

    def workspace(self, in_shapes, out_shape, attrs):
        """xhat, the normalised input, kept for backward: one value per input value."""
        return Workspace.kept(int(np.prod(in_shapes[0], dtype=np.int64)))

    def infer_shape(self, in_shapes, attrs):
        x_shape, g_shape, b_shape = (tuple(s) for s in in_shapes)
        want = self.param_shapes(x_shape, self.read_attrs(attrs))["gamma"]
        for port, shape in (("gamma", g_shape), ("beta", b_shape)):
            if shape != want:
                raise ShapeError(f"{self.name}: {port} has shape {shape} but an example of shape "
                                 f"{x_shape} needs {want} ({self._params_are}); give {port} "
                                 f"shape {want}")
        return x_shape

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, gamma, beta = inputs
        check_floats(self.name, self.input_names, inputs)
        self.infer_shape([x.shape[1:], gamma.shape, beta.shape], attrs)
        a = self.read_attrs(attrs)
        xhat, inv_std = standardise(x.reshape(self._rows(x.shape, a)), a["eps"])
        xhat = xhat.reshape(x.shape)
        g, b = (v.reshape(self._affine_shape(x.shape, a)) for v in (gamma, beta))
        return g * xhat + b, (xhat, inv_std, gamma, a)

    def backward(self, dout, cache, attrs, needs=None):
        xhat, inv_std, gamma, a = cache
        shape = self._affine_shape(xhat.shape, a)
        over = tuple(i for i, s in enumerate(shape) if s == 1)  # the axes gamma is shared along
        dgamma = np.sum(dout * xhat, axis=over).reshape(gamma.shape)
        dbeta = dout.sum(axis=over).reshape(gamma.shape)
        dx = None
        if needs is None or needs[0]:
            rows = self._rows(xhat.shape, a)
            g = (dout * gamma.reshape(shape)).reshape(rows)
            dx = standardise_backward(g, xhat.reshape(rows), inv_std).reshape(xhat.shape)
        return dx, dgamma, dbeta


@register
class LayerNorm(_PerExample):
    """Normalise each example over its axes from `axis` on, then scale and shift.
    x: (N, ...) -> like x; gamma, beta: x.shape[axis:]."""

    name = "layer_norm"
    short = "ln"
    aliases = ("layernorm",)
    ports = (data("x", "any (N, ...); (N, T, D) tokens with axis -1, (N, C, H, W) with axis 1"),
             param("gamma", "ones", "scale per normalised value: x.shape[axis:]"),
             param("beta", "zeros", "shift per normalised value: x.shape[axis:]"))
    attributes = (
        Attr("axis", "int", -1, doc="the first normalised axis, counting the batch as 0 "
             "(refused): statistics run over it and every later axis (ONNX's and Keras' axis; "
             "-1: the last, the features of a transformer; 1: the whole example)"),
        EPS,
    )
    _params_are = "one scale and shift per normalised value"

    def param_shapes(self, x_shape, attrs):
        if not x_shape:
            raise ShapeError("layer_norm: input 'x' has no dims per example (shape ()); it "
                             "needs at least one axis to normalise over")
        full = example_axis(self.name, attrs["axis"], len(x_shape))
        shape = tuple(x_shape[full - 1:])
        return {"gamma": shape, "beta": shape}

    def _rows(self, shape, a):
        full = example_axis(self.name, a["axis"], len(shape) - 1)
        return (int(np.prod(shape[:full], dtype=np.int64)), -1)

    def _affine_shape(self, shape, a):
        full = example_axis(self.name, a["axis"], len(shape) - 1)
        return (1,) * full + tuple(shape[full:])


@register
class GroupNorm(_PerExample):
    """Normalise each example over groups of channels (and their positions), then scale and
    shift per channel.  x: (N, C, ...) -> like x; gamma, beta: (C,)."""

    name = "group_norm"
    short = "gn"
    aliases = ("groupnorm",)
    ports = (data("x", "(N, C, ...): features (N, C) or maps (N, C, H, W), C divisible by "
                  "groups"),
             param("gamma", "ones", "scale per channel (C,)"),
             param("beta", "zeros", "shift per channel (C,)"))
    attributes = (Attr("groups", "int", REQUIRED, COUNT, "the number of channel groups; it "
                       "must divide the channels", ("num_groups",)), EPS)
    _params_are = "one scale and shift per channel"

    def param_shapes(self, x_shape, attrs):
        c = self._channels(x_shape, attrs)
        return {"gamma": (c,), "beta": (c,)}

    def _channels(self, x_shape, attrs) -> int:
        if not x_shape:
            raise ShapeError(f"{self.name}: input 'x' has no channel axis (shape ()); give "
                             f"values shaped (C, ...) per example")
        c, groups = x_shape[0], self._groups(x_shape, attrs)
        if c % groups:
            fits = [d for d in range(1, c + 1) if c % d == 0]
            raise ShapeError(f"{self.name}: {groups} groups do not divide the {c} channels of "
                             f"x {tuple(x_shape)}; give groups one of {fits}")
        return c

    def _groups(self, x_shape, attrs) -> int:
        return attrs["groups"]

    def _rows(self, shape, a):
        return (shape[0] * self._groups(shape[1:], a), -1)

    def _affine_shape(self, shape, a):
        return (1, shape[1]) + (1,) * (len(shape) - 2)


@register
class InstanceNorm(GroupNorm):
    """Normalise each channel of each example over its positions, then scale and shift per
    channel.  x: (N, C, ...) with positions -> like x; gamma, beta: (C,)."""

    name = "instance_norm"
    short = "in"
    aliases = ("instancenorm",)
    ports = (data("x", "(N, C, L) or (N, C, H, W): channels with positions"),
             param("gamma", "ones", "scale per channel (C,)"),
             param("beta", "zeros", "shift per channel (C,)"))
    attributes = (EPS,)

    def _groups(self, x_shape, attrs) -> int:
        if len(x_shape) < 2:
            raise ShapeError(f"instance_norm: input 'x' of shape {tuple(x_shape)} per example "
                             f"has no positions to normalise each channel over; give (C, L) or "
                             f"(C, H, W) values (layer_norm normalises features)")
        return x_shape[0]
