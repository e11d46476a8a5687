"""Feeds: the arrays a run starts from, checked against the plan's inputs."""
from __future__ import annotations

import numpy as np

from dagnet.errors import FeedError


def _shape_text(want: tuple, batched: bool) -> str:
    dims = (["N"] if batched else []) + [str(d) for d in want]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


_KINDS: dict = {}


def _kind(dtype) -> str:
    """The kind letter of an input's dtype (np.dtype parses its name in a microsecond: once)."""
    kind = _KINDS.get(dtype)
    if kind is None:
        kind = _KINDS[dtype] = np.dtype(dtype).kind
    return kind


def check_feeds(plan, feeds: dict) -> dict:
    """Feeds as arrays of the plan's dtype (float inputs) or int64 (integer inputs): a batch
    (N, *shape) for a batched input, exactly its shape for an unbatched one.

    Raises FeedError naming the input, the expected and the given shape/dtype."""
    if not isinstance(feeds, dict):
        raise FeedError(f"feeds must be a dict {{input name: array}}, got {type(feeds).__name__}")
    out = {}
    batch = None
    for name, spec in plan.input_specs.items():
        if name not in feeds:
            continue
        want, batched = tuple(spec["shape"]), spec.get("batched", True)
        try:
            a = np.asarray(feeds[name])
        except (TypeError, ValueError) as e:
            raise FeedError(f"feed '{name}': cannot be made into an array ({e}); give a numpy "
                            f"array of shape {_shape_text(want, batched)}") from None
        if (a.shape[1:] if batched and a.ndim else a.shape) != want or batched and not a.ndim:
            kind = "" if batched else " (an unbatched input: no batch axis)"
            raise FeedError(f"feed '{name}': expected shape {_shape_text(want, batched)}{kind}, "
                            f"got {a.shape}")
        kind = _kind(spec["dtype"])
        if kind == "f":
            if a.dtype.kind != "f":
                raise FeedError(f"feed '{name}': expected floats ({plan.dtype}), got {a.dtype}; "
                                f"convert, e.g. x.astype(np.float32) / 255")
            a = a.astype(plan.dtype, copy=False)
        elif a.dtype.kind not in "iu":
            raise FeedError(f"feed '{name}': expected integers (e.g. class labels), got {a.dtype}; "
                            f"convert with y.astype(np.int64)")
        out[name] = a
        if not batched:
            continue
        if a.shape[0] == 0:
            raise FeedError(f"feed '{name}' holds no examples (batch size 0); give at least one")
        if batch is not None and a.shape[0] != batch:
            raise FeedError(f"feeds disagree on the batch size: '{name}' has {a.shape[0]}, "
                            f"others {batch}")
        batch = a.shape[0]
    if len(out) != len(feeds):  # a feed that is no input
        unknown = set(feeds) - set(plan.input_specs)
        raise FeedError(f"unknown feed(s) {sorted(unknown)}; the plan's inputs are "
                        f"{sorted(plan.input_specs)}")
    return out


def batch_size(plan, values) -> int:
    """The batch size of the first batched input among `values` (0 if none is there)."""
    for name, spec in plan.input_specs.items():
        a = values.get(name)
        if a is not None and a.ndim and spec.get("batched", True):
            return len(a)
    return 0
