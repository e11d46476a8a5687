"""Fully connected layer: affine.  x: (N, d1, ..., dk) flattened to (N, D), w: (D, M), b: (M,) -> (N, M).

`affine_forward` / `affine_backward` are the numeric kernels; the fused ops (affine + relu)
call them directly.
"""
from __future__ import annotations

import numpy as np

from dagnet import blocks
from dagnet.errors import ShapeError
from dagnet.ops.base import Op, check_floats, register
from dagnet.ops.conv import INIT, WEIGHT_SCALE
from dagnet.ops.declare import COUNT, REQUIRED, Attr, data, param, weight


def affine_forward(x, w, b, out=None, mode="train"):
    """x @ w + b with x flattened per example.  x: (N, d1, ..., dk), w: (D, M), b: (M,) -> (N, M).
    out: an (N, M) array to write into; mode "eval" splits the product into eval's blocks
    (blocks.EVAL_MIN_BLOCK_SIDE), as the inference program's affine does (the same bits)."""
    x2 = x.reshape(x.shape[0], -1)
    # one-thread GEMMs (dagnet/blocks.py: OpenBLAS's waits)
    out = blocks.matmul(x2, w, out=out, min_side=eval_side(mode))
    out += b
    return out, (x2, w, x.shape)


def eval_side(mode: str) -> int | None:
    """The blocks' least width for an affine product in mode (None: blocks.matmul's default)."""
    return blocks.EVAL_MIN_BLOCK_SIDE if mode == "eval" else None


def affine_backward(dout, cache, need_dx=True, dw=None, db=None):
    """Gradients of affine_forward.  dout: (N, M) -> (dx (N, d1, ..., dk) or None, dw (D, M), db (M,));
    dw, db: arrays to write them into (C order)."""
    x2, w, x_shape = cache
    # The first layer's input is data: skipping its gradient saves a GEMM.
    dx = blocks.matmul(dout, w.T).reshape(x_shape) if need_dx else None
    return dx, blocks.matmul(x2.T, dout, out=dw), np.sum(dout, axis=0, out=db)


@register
class Affine(Op):
    """x @ w + b, x flattened per example.  x: (N, d1, ..., dk), w: (D, M), b: (M,) -> (N, M)."""

    name = "affine"
    short = "fc"
    aliases = ("fc", "dense", "linear")
    ports = (data("x", "features (N, D), or any (N, ...) flattened per example"),
             weight("w", "weights (D, M)"), param("b", "zeros", "one bias per output (M,)"))
    attributes = (
        Attr("units", "int", REQUIRED, COUNT, "number of outputs M",
             ("hidden", "hidden_dim", "num_outputs"), node=False),
        INIT, WEIGHT_SCALE,
    )
    fusion_kind = "out_fusable"  # an elementwise chain may follow in its step
    supports_out = True
    writes_grads = True
    saves = frozenset({"input"})

    def param_shapes(self, x_shape, attrs):
        d = int(np.prod(x_shape, dtype=np.int64))
        return {"w": (d, attrs["units"]), "b": (attrs["units"],)}

    def infer_shape(self, in_shapes, attrs):
        x_shape, w_shape, b_shape = (tuple(s) for s in in_shapes)
        if len(w_shape) != 2:
            raise ShapeError(f"affine: weight 'w' must have 2 dims (D, M), got shape {w_shape}")
        features = int(np.prod(x_shape, dtype=np.int64))
        d, m = w_shape
        if features != d:
            raise ShapeError(
                f"affine: input has {features} features (shape {x_shape}) but weight expects {d} "
                f"(w shape {w_shape}); give w shape ({features}, {m})"
            )
        if b_shape != (m,):
            raise ShapeError(
                f"affine: bias 'b' has shape {b_shape} but w shape {w_shape} has {m} outputs; "
                f"give b shape ({m},)"
            )
        return (m,)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, w, b = inputs
        check_floats(self.name, self.input_names, inputs)
        self.infer_shape([x.shape[1:], w.shape, b.shape], attrs)
        return affine_forward(x, w, b, out=out, mode=mode)

    def backward(self, dout, cache, attrs, needs=None, grads=None):
        grads = grads or {}
        return affine_backward(dout, cache, need_dx=needs is None or needs[0],
                               dw=grads.get(1), db=grads.get(2))

    def jvp(self, tangents, inputs, out, cache, attrs):
        (tx, tw, tb), (x2, w, _) = tangents, cache
        terms = [None if tx is None else tx.reshape(len(tx), -1) @ w,
                 None if tw is None else x2 @ tw, tb]
        terms = [t for t in terms if t is not None]
        return None if not terms else np.asarray(sum(terms[1:], terms[0]) + np.zeros_like(out))

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * int(np.prod(in_shapes[1], dtype=np.int64))
