"""Classification losses, softmax and log_softmax.

    softmax_cross_entropy(scores (N, C), labels (N,) int) -> mean over the batch, 0-d
    svm_loss(scores (N, C), labels (N,) int)              -> mean multiclass hinge loss, 0-d
    softmax(x (N, C)), log_softmax(x (N, C))               -> (N, C), over the classes; any
                                                              (N, ...) over attrs["axis"]

Labels are class indices in [0, C); anything else is a FeedError naming the bad label.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, DTypeError, FeedError, ShapeError
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


def example_axis(op: str, attrs_axis: int, rank: int) -> int:
    """The full-array axis (batch = 0) of attrs' axis for values of `rank` dims per example;
    negative axes count from the end. AttrError for the batch axis or one out of range."""
    full = attrs_axis if attrs_axis >= 0 else attrs_axis + rank + 1
    if full == 0:
        which = "axis 1 (or -1)" if rank == 1 else f"an axis in 1..{rank} or a negative one (-1, the last)"
        raise AttrError(f"{op}: axis {attrs_axis} is the batch axis; {op} normalises within each "
                        f"example: give {which}")
    if not 1 <= full <= rank:
        raise AttrError(f"{op}: axis {attrs_axis} is out of range for values with {rank} dims "
                        f"per example (batch axis 0, then 1..{rank}; -1 is the last)")
    return full


AXIS = Attr("axis", "int", -1, doc="the axis normalised over, counting the batch as 0 (refused); "
            "negative counts from the end: -1, the last, is the class axis of (N, C) scores")


class _Normalised(Op):
    """softmax and log_softmax: one axis of any value with at least one dim per example."""

    ports = (data("x", "scores (N, C), or any (N, ...) over `axis`"),)
    attributes = (AXIS,)
    fusion_kind = "opaque"
    saves = frozenset({"output"})

    def infer_shape(self, in_shapes, attrs):
        shape = tuple(in_shapes[0])
        if not shape:
            raise ShapeError(f"{self.name}: input 'x' has no dims per example (shape ()); "
                             f"{self.name} needs at least one axis to normalise over")
        example_axis(self.name, self.read_attrs(attrs)["axis"], len(shape))
        return shape

    def _checked(self, inputs, attrs):
        (x,) = inputs
        check_float(self.name, "x", x)
        self.infer_shape([x.shape[1:]], attrs)
        return x, example_axis(self.name, self.read_attrs(attrs)["axis"], x.ndim - 1)


@register
class Softmax(_Normalised):
    """exp(x) / sum(exp(x)) along an axis (default the last).  x: (N, C) or (N, ...) -> like x."""

    name = "softmax"

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, axis = self._checked(inputs, attrs)
        y = np.exp(x - x.max(axis=axis, keepdims=True))
        y /= y.sum(axis=axis, keepdims=True)
        return y, (y, axis)

    def backward(self, dout, cache, attrs, needs=None):
        y, axis = cache
        return (y * (dout - np.sum(dout * y, axis=axis, keepdims=True)),)


@register
class LogSoftmax(_Normalised):
    """x - log(sum(exp(x))) along an axis (default the last), without overflow.
    x: (N, C) or (N, ...) -> like x."""

    name = "log_softmax"

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, axis = self._checked(inputs, attrs)
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return y, (y, axis)

    def backward(self, dout, cache, attrs, needs=None):
        y, axis = cache
        return (dout - np.exp(y) * dout.sum(axis=axis, keepdims=True),)
