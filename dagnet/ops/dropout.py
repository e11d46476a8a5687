"""Inverted dropout.  x: any shape -> same shape.

Attribute `p` is the probability of dropping a value (default 0.5, as in PyTorch). In train mode
each value is kept with probability 1 - p, drawn from the explicit `rng` (a numpy Generator),
and the kept values are scaled by 1 / (1 - p), so eval mode is the identity and returns the
input array itself (hence `may_alias`).
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, FeedError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.declare import Attr, data
from dagnet.ops.workspace import Workspace


@register
class Dropout(Op):
    """Inverted dropout with drop probability p.  x: any shape -> same shape."""

    name = "dropout"
    short = "drop"
    ports = (data("x", "any shape"),)
    attributes = (Attr("p", "number", 0.5, "[0, 1)", "probability of dropping a value"),)
    fusion_kind = "elementwise"
    saves = frozenset()  # backward reads only the mask it keeps in the cache
    random = True
    may_alias = True

    def infer_shape(self, in_shapes, attrs):
        self.read_attrs(attrs)
        return tuple(in_shapes[0])

    def workspace(self, in_shapes, out_shape, attrs):
        """The keep mask the cache keeps, one bool per value (counted as a full element: an
        upper bound)."""
        return Workspace.kept(int(np.prod(in_shapes[0], dtype=np.int64)))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        p = self.read_attrs(attrs)["p"]
        if mode == "eval" or p == 0:
            return x, None
        if mode != "train":
            raise AttrError(f"dropout: mode must be 'train' or 'eval', got {mode!r}")
        if rng is None:
            raise FeedError(
                "dropout: train mode needs an explicit rng (np.random.default_rng(seed)); "
                "a compiled plan passes its own seeded one"
            )
        # Uniforms drawn in float64 whatever x's dtype, so one seed gives one mask.
        keep = rng.random(x.shape) >= p
        scale = x.dtype.type(1 / (1 - p))
        return np.where(keep, x * scale, 0), (keep, scale)

    def backward(self, dout, cache, attrs, needs=None):
        if cache is None:
            return (dout,)
        keep, scale = cache
        return (np.where(keep, dout * scale, 0),)
