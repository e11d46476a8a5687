"""Parameter initializers, named in param nodes: gaussian, he, xavier, zeros, ones, constant."""
from __future__ import annotations

import numpy as np

from dagnet.errors import GraphError


def _fans(shape: tuple, attrs: dict) -> tuple[int, int]:
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
        fan_in, _ = _fans(shape, attrs)
        std = attrs.get("scale") or np.sqrt(2.0 / fan_in)
    elif init == "xavier":
        fan_in, fan_out = _fans(shape, attrs)
        std = attrs.get("scale") or np.sqrt(2.0 / (fan_in + fan_out))
    else:
        raise GraphError(f"{name}: unknown initializer '{init}'")
    return (std * rng.standard_normal(shape)).astype(dtype)
