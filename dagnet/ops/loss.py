"""Classification losses and softmax.

    softmax_cross_entropy(scores (N, C), labels (N,) int) -> mean over the batch, 0-d
    svm_loss(scores (N, C), labels (N,) int)              -> mean multiclass hinge loss, 0-d
    softmax(x (N, C))                                      -> (N, C), rows sum to 1

Labels are class indices in [0, C); anything else is a FeedError naming the bad label.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import DTypeError, FeedError, ShapeError
from dagnet.ops.base import Op, check_float, check_rank, register
from dagnet.ops.declare import Attr, data, labels
from dagnet.ops.workspace import Workspace


def _shifted(x):
    """x minus its row max: exp() of it never overflows and softmax is unchanged.  (N, C) -> (N, C)."""
    return x - x.max(axis=1, keepdims=True)


def _check_labels(op, scores, labels):
    """Raise unless labels is an (N,) integer array of class indices in [0, C) for scores (N, C)."""
    n, c = scores.shape
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        got = getattr(labels, "dtype", type(labels).__name__)
        raise DTypeError(
            f"{op}: labels must be an integer array of class indices, got {got}; "
            f"convert with y.astype(np.int64)"
        )
    if labels.shape != (n,):
        raise ShapeError(
            f"{op}: labels must have shape ({n},) to match scores of shape {scores.shape}, "
            f"got {labels.shape}"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= c))
    if bad.size:
        i = int(bad[0])
        raise FeedError(
            f"{op}: label {labels[i]} at index {i} is not a class index in [0, {c}) "
            f"(scores have {c} classes); {bad.size} of {n} labels are out of range: fix the "
            f"labels or build the model with num_classes={max(int(labels.max()) + 1, c)}"
        )


class _Loss(Op):
    ports = (data("scores", "class scores (N, C)"), labels("labels", "class indices (N,), int"))
    attributes = ()
    short = "loss"
    kind = "loss"
    fusion_kind = "opaque"
    # backward reads the labels (a feed, never overwritten) and its cached probabilities
    saves = frozenset()

    def workspace(self, in_shapes, out_shape, attrs):
        """The per-class probabilities (or hinge mask) the cache keeps: one value per score."""
        return Workspace.kept(int(np.prod(in_shapes[0], dtype=np.int64)))

    def infer_shape(self, in_shapes, attrs):
        scores, labels = (tuple(s) for s in in_shapes)
        check_rank(self.name, "scores", scores, 1, "C")
        check_rank(self.name, "labels", labels, 0, "a class index")
        return ()

    def _check(self, inputs):
        scores, labels = inputs
        check_float(self.name, "scores", scores)
        self.infer_shape([scores.shape[1:], np.shape(labels)[1:]], {})
        _check_labels(self.name, scores, labels)
        return scores, labels


@register
class SoftmaxCrossEntropy(_Loss):
    """Mean of -log softmax(scores)[label].  scores: (N, C), labels: (N,) int -> 0-d."""

    name = "softmax_cross_entropy"
    aliases = ("softmax", "cross_entropy")

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        scores, labels = self._check(inputs)
        shifted = _shifted(scores)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[np.arange(len(labels)), labels].mean()
        return np.asarray(loss, dtype=scores.dtype), (np.exp(log_probs), labels)

    def backward(self, dout, cache, attrs, needs=None):
        probs, labels = cache
        dscores = probs.copy()
        dscores[np.arange(len(labels)), labels] -= 1
        dscores *= dout / len(labels)
        return dscores, None


@register
class SVMLoss(_Loss):
    """Mean over the batch of sum over j != label of max(0, s_j - s_label + delta).

    scores: (N, C), labels: (N,) int -> 0-d. Attribute delta (the margin, default 1.0).
    """

    name = "svm_loss"
    aliases = ("svm", "hinge")
    attributes = (Attr("delta", "number", 1.0, "[0, inf)", "the margin"),)

    def _delta(self, attrs):
        return self.read_attrs(attrs)["delta"]

    def infer_shape(self, in_shapes, attrs):
        self._delta(attrs)
        return super().infer_shape(in_shapes, attrs)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        scores, labels = self._check(inputs)
        rows = np.arange(len(labels))
        margins = scores - scores[rows, labels][:, None] + scores.dtype.type(self._delta(attrs))
        margins[rows, labels] = 0
        np.maximum(margins, 0, out=margins)
        loss = margins.sum() / len(labels)
        return np.asarray(loss, dtype=scores.dtype), (margins > 0, labels, scores.dtype)

    def backward(self, dout, cache, attrs, needs=None):
        positive, labels, dtype = cache
        dscores = positive.astype(dtype)
        dscores *= dout / len(labels)
        dscores[np.arange(len(labels)), labels] = -dscores.sum(axis=1)
        return dscores, None


@register
class Softmax(Op):
    """exp(x) / sum(exp(x)) along the class axis.  x: (N, C) -> (N, C)."""

    name = "softmax"
    ports = (data("x", "class scores (N, C)"),)
    attributes = ()
    fusion_kind = "opaque"
    saves = frozenset({"output"})

    def infer_shape(self, in_shapes, attrs):
        check_rank(self.name, "x", tuple(in_shapes[0]), 1, "C")
        return tuple(in_shapes[0])

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        (x,) = inputs
        check_float(self.name, "x", x)
        self.infer_shape([x.shape[1:]], attrs)
        y = np.exp(_shifted(x))
        y /= y.sum(axis=1, keepdims=True)
        return y, y

    def backward(self, dout, cache, attrs, needs=None):
        y = cache
        return (y * (dout - np.sum(dout * y, axis=1, keepdims=True)),)
