"""Parameter initializers, named in param nodes: gaussian, he, xavier, zeros, ones, constant,
and the attributes of a param node."""
from __future__ import annotations

import numpy as np

from dagnet.errors import GraphError
from dagnet.ops.declare import COUNT, INITIALIZERS, POSITIVE, REQUIRED, Attr

#: the attributes of a param node
PARAM_ATTRS = (
    Attr("shape", "dims", REQUIRED, doc="the full shape (params have no batch dimension)"),
    Attr("init", "choice", "gaussian", doc="initializer", choices=INITIALIZERS),
    Attr("scale", "number", None, POSITIVE, "std of the gaussian (default 0.01); for he and "
         "xavier it replaces the computed std"),
    Attr("value", "number", None, doc="the value of a constant param (default 0)"),
    Attr("decay", "bool", True, doc="whether L2 weight decay applies (constant-initialised "
         "params default to false)"),
    Attr("fan_in", "int", None, COUNT, "inputs per output, for he and xavier (with fan_out)"),
    Attr("fan_out", "int", None, COUNT, "outputs per input, for xavier (with fan_in)"),
)
#: initializers of constant params, which L2 weight decay leaves alone by default
CONSTANT_INITS = ("zeros", "ones", "constant")


def fans_problem(attrs: dict) -> str | None:
    """What is wrong with a param node's fan_in/fan_out (both or neither), or None."""
    if (attrs.get("fan_in") is None) != (attrs.get("fan_out") is None):
        return "give both fan_in and fan_out, or neither"
    return None


def fans(shape: tuple, attrs: dict) -> tuple[int, int]:
    """fan_in/fan_out as recorded by the builder, else guessed from the layout
    ((F, C, kh, kw) conv weights or (D, M) affine weights)."""
    if "fan_in" in attrs:
        return int(attrs["fan_in"]), int(attrs["fan_out"])
    if len(shape) > 2:
        rf = int(np.prod(shape[2:]))
        return shape[1] * rf, shape[0] * rf
    if len(shape) == 2:
        return shape[0], shape[1]
    return shape[0], shape[0]


def init_param(name: str, attrs: dict, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """A fresh array for a param node's attrs (shape, init, scale/value) from an explicit rng."""
    shape = tuple(attrs["shape"])
    init = attrs.get("init", "gaussian")
    if init == "zeros":
        return np.zeros(shape, dtype)
    if init == "ones":
        return np.ones(shape, dtype)
    if init == "constant":
        return np.full(shape, attrs.get("value", 0.0), dtype)
    if init == "gaussian":
        std = attrs.get("scale", 1e-2)
    elif init == "he":
        fan_in, _ = fans(shape, attrs)
        std = attrs.get("scale") or np.sqrt(2.0 / fan_in)
    elif init == "xavier":
        fan_in, fan_out = fans(shape, attrs)
        std = attrs.get("scale") or np.sqrt(2.0 / (fan_in + fan_out))
    else:
        raise GraphError(f"{name}: unknown initializer '{init}'; use one of "
                         f"{', '.join(INITIALIZERS)}")
    return (std * rng.standard_normal(shape)).astype(dtype)
