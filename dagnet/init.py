"""Parameter initializers, named in param nodes (INIT_DOCS says what each draws), and the
attributes of a param node. For the fan-based ones, `scale` given replaces the computed std
or bound."""
from __future__ import annotations

import numpy as np

from dagnet.errors import GraphError
from dagnet.ops.declare import COUNT, INITIALIZERS, POSITIVE, REQUIRED, Attr

#: the attributes of a param node
PARAM_ATTRS = (
    Attr("shape", "dims", REQUIRED, doc="the full shape (params have no batch dimension)"),
    Attr("init", "choice", "gaussian", doc="initializer", choices=INITIALIZERS),
    Attr("scale", "number", None, POSITIVE, "std of the gaussian (default 0.01), bound of the "
         "uniform (default 0.05); for the fan-based initializers it replaces the computed std "
         "or bound"),
    Attr("value", "number", None, doc="the value of a constant param (default 0)"),
    Attr("low", "number", None, doc="lower bound of a uniform draw (with high; instead of "
         "scale)"),
    Attr("high", "number", None, doc="upper bound of a uniform draw (with low)"),
    Attr("decay", "bool", True, doc="whether L2 weight decay applies (constant-initialised "
         "params default to false)"),
    Attr("fan_in", "int", None, COUNT, "inputs per output, for the fan-based initializers "
         "(with fan_out)"),
    Attr("fan_out", "int", None, COUNT, "outputs per input, for xavier (with fan_in)"),
)
#: what each initializer draws (docs/spec.md shows this table)
INIT_DOCS = {
    "gaussian": "N(0, scale^2), scale default 0.01 (the course's weight_scale)",
    "he": "N(0, 2 / fan_in)",
    "xavier": "N(0, 2 / (fan_in + fan_out))",
    "uniform": "U(-scale, scale), scale default 0.05 (Keras' RandomUniform); or U(low, high)",
    "he_uniform": "U(+-sqrt(6 / fan_in)) (torch's kaiming_uniform_ with a=0)",
    "xavier_uniform": "U(+-sqrt(6 / (fan_in + fan_out))) (Keras' glorot_uniform, its Dense "
                      "default)",
    "torch": "U(+-1 / sqrt(fan_in)): PyTorch's default for Linear and Conv weights "
             "(kaiming_uniform_ with a=sqrt(5)); as init of a conv2d or affine the builder "
             "draws its bias so too, as PyTorch does",
    "zeros": "0", "ones": "1", "constant": "value (default 0)",
}
#: initializers of constant params, which L2 weight decay leaves alone by default
CONSTANT_INITS = ("zeros", "ones", "constant")
#: initializers whose scale follows the param's fans (the builder records them)
FAN_INITS = ("he", "xavier", "he_uniform", "xavier_uniform", "torch")


def param_problem(attrs: dict) -> str | None:
    """What is wrong with a param node's attrs taken together, or None: fan_in/fan_out both
    or neither; low/high both or neither, low < high, only for init uniform and not with
    scale."""
    if (attrs.get("fan_in") is None) != (attrs.get("fan_out") is None):
        return "give both fan_in and fan_out, or neither"
    low, high = attrs.get("low"), attrs.get("high")
    if low is None and high is None:
        return None
    if low is None or high is None:
        return "give both low and high (the bounds of a uniform draw), or neither"
    if attrs.get("init", "gaussian") != "uniform":
        return f"low and high are the bounds of init uniform, not of {attrs.get('init', 'gaussian')}"
    if attrs.get("scale") is not None:
        return "give the uniform's bounds as low and high or as scale (-scale, scale), not both"
    if not low < high:
        return f"low must be below high, got low={low}, high={high}"
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
    """A fresh array for a param node's attrs (shape, init, scale/value/low/high) from an
    explicit rng."""
    shape = tuple(attrs["shape"])
    init = attrs.get("init", "gaussian")
    if init == "zeros":
        return np.zeros(shape, dtype)
    if init == "ones":
        return np.ones(shape, dtype)
    if init == "constant":
        return np.full(shape, attrs.get("value", 0.0), dtype)
    scale = attrs.get("scale")
    if init in FAN_INITS:
        fan_in, fan_out = fans(shape, attrs)
        computed = {"he": np.sqrt(2.0 / fan_in), "xavier": np.sqrt(2.0 / (fan_in + fan_out)),
                    "he_uniform": np.sqrt(6.0 / fan_in),
                    "xavier_uniform": np.sqrt(6.0 / (fan_in + fan_out)),
                    "torch": 1.0 / np.sqrt(fan_in)}[init]
        scale = scale or computed
    if init in ("gaussian", "he", "xavier"):
        std = 1e-2 if scale is None else scale
        return (std * rng.standard_normal(shape)).astype(dtype)
    if init in ("uniform", "he_uniform", "xavier_uniform", "torch"):
        if attrs.get("low") is not None:
            low, high = attrs["low"], attrs["high"]
        else:
            high = 0.05 if scale is None else scale
            low = -high
        return rng.uniform(low, high, shape).astype(dtype)
    raise GraphError(f"{name}: unknown initializer '{init}'; use one of "
                     f"{', '.join(INITIALIZERS)}")
