"""Feeds: the arrays a run starts from, checked against the plan's inputs."""
from __future__ import annotations

import numpy as np

from dagnet.errors import FeedError


def check_feeds(plan, feeds: dict) -> dict:
    """Feeds as arrays of the plan's dtype (float inputs) or int64 (integer inputs).

    Raises FeedError naming the input, the expected and the given shape/dtype."""
    if not isinstance(feeds, dict):
        raise FeedError(f"feeds must be a dict {{input name: array}}, got {type(feeds).__name__}")
    out = {}
    batch = None
    for name, spec in plan.input_specs.items():
        if name not in feeds:
            continue
        try:
            a = np.asarray(feeds[name])
        except (TypeError, ValueError) as e:
            raise FeedError(f"feed '{name}': cannot be made into an array ({e}); give a numpy "
                            f"array of shape (N, {', '.join(map(str, spec['shape']))})"
                            .replace(", )", ")")) from None
        want = tuple(spec["shape"])
        if a.ndim != len(want) + 1 or tuple(a.shape[1:]) != want:
            raise FeedError(f"feed '{name}': expected shape (N, {', '.join(map(str, want))})"
                            .replace(", )", ")") + f", got {a.shape}")
        kind = np.dtype(spec["dtype"]).kind
        if kind == "f":
            if a.dtype.kind != "f":
                raise FeedError(f"feed '{name}': expected floats ({plan.dtype}), got {a.dtype}; "
                                f"convert, e.g. x.astype(np.float32) / 255")
            a = a.astype(plan.dtype, copy=False)
        elif a.dtype.kind not in "iu":
            raise FeedError(f"feed '{name}': expected integers (e.g. class labels), got {a.dtype}; "
                            f"convert with y.astype(np.int64)")
        if a.shape[0] == 0:
            raise FeedError(f"feed '{name}' holds no examples (batch size 0); give at least one")
        if batch is not None and a.shape[0] != batch:
            raise FeedError(f"feeds disagree on the batch size: '{name}' has {a.shape[0]}, "
                            f"others {batch}")
        batch = a.shape[0]
        out[name] = a
    unknown = set(feeds) - set(plan.input_specs)
    if unknown:
        raise FeedError(f"unknown feed(s) {sorted(unknown)}; the plan's inputs are "
                        f"{sorted(plan.input_specs)}")
    return out


def batch_size(plan, values) -> int:
    """The batch size of the first batched input among `values` (0 if none is there)."""
    for name in plan.input_specs:
        a = values.get(name)
        if a is not None and a.ndim:
            return len(a)
    return 0
