"""Embedding: rows of a learnable table looked up by integer ids.

    embedding(ids (N, ...) int, w (V, D)) -> (N, ..., D), out[n, ...] = w[ids[n, ...]]

The ids get no gradient; the table's gradient sums dout over every position that looked up
each row (rows nobody looked up get 0).
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import DTypeError, FeedError, ShapeError
from dagnet.ops.base import Op, check_float, register
from dagnet.ops.declare import COUNT, INITIALIZERS, POSITIVE, REQUIRED, Attr, labels, weight


def embedding_backward(dout: np.ndarray, ids: np.ndarray, rows: int) -> np.ndarray:
    """The table's gradient.  dout: ids.shape + (D,), ids: any int -> (rows, D)."""
    d = dout.shape[-1]
    flat = ids.reshape(-1)
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if flat.size else []
    dw = np.zeros((rows, d), dtype=dout.dtype)
    if flat.size:
        # one segmented sum over the rows grouped by id: half np.add.at's time (8,192 ids of
        # 1,000, D = 64, float32)
        dw[sorted_ids[starts]] = np.add.reduceat(dout.reshape(-1, d)[order], starts, axis=0)
    return dw


@register
class Embedding(Op):
    """Rows of a learnable table looked up by integer ids.  ids: (N, ...) int, w: (V, D) ->
    (N, ..., D)."""

    name = "embedding"
    short = "emb"
    ports = (labels("ids", "integer ids in [0, V), any shape (N, ...)"),
             weight("w", "the table (V, D): one row per id"))
    attributes = (
        Attr("num", "int", REQUIRED, COUNT, "the number of ids V (the table's rows)",
             ("num_embeddings", "input_dim", "vocab"), node=False),
        Attr("dim", "int", REQUIRED, COUNT, "the length D of each row",
             ("embedding_dim", "output_dim"), node=False),
        Attr("init", "choice", "gaussian", doc="the table's initializer (gaussian with "
             "weight_scale 1 is torch's N(0, 1))", choices=INITIALIZERS, node=False),
        Attr("weight_scale", "number", 1.0, POSITIVE, "std of the gaussian, bound of the "
             "uniform", node=False),
    )
    fusion_kind = "opaque"
    saves = frozenset({"input"})

    def param_shapes(self, ids_shape, attrs):
        return {"w": (attrs["num"], attrs["dim"])}

    def infer_shape(self, in_shapes, attrs):
        ids_shape, w_shape = (tuple(s) for s in in_shapes)
        if len(w_shape) != 2:
            raise ShapeError(f"embedding: table 'w' must have 2 dims (V, D), got shape {w_shape}")
        return ids_shape + (w_shape[1],)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        ids, w = inputs
        if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
            raise DTypeError(f"embedding: input 'ids' must be an integer array, got "
                             f"{getattr(ids, 'dtype', type(ids).__name__)}; convert with "
                             f"ids.astype(np.int64)")
        check_float(self.name, "w", w)
        self.infer_shape([ids.shape[1:], w.shape], attrs)
        if ids.size and (ids.min() < 0 or ids.max() >= len(w)):
            bad = ids[(ids < 0) | (ids >= len(w))].reshape(-1)[0]
            raise FeedError(f"embedding: id {bad} is outside the table's rows [0, {len(w)}); "
                            f"give ids in range, or a table with more rows (num)")
        return w[ids], (ids, len(w))

    def backward(self, dout, cache, attrs, needs=None):
        ids, rows = cache
        return None, embedding_backward(dout, ids, rows)
