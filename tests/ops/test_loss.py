import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError, FeedError, ShapeError
from dagnet.ops import get_op
from tests.ops.harness import check_op

SIZES = [(5, 4), (1, 3), (8, 10), (3, 2)]


def scores_labels(n, c, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((n, c)), rng.integers(0, c, size=n)


def hinge_scores(n, c, seed=0):
    """Scores whose hinge margins s_j - s_y + 1 all stay >= 0.05 away from the kink at 0."""
    rng = np.random.default_rng(seed)
    scores, labels = rng.standard_normal((n, c)), rng.integers(0, c, size=n)
    rows = np.arange(n)
    margins = scores - scores[rows, labels][:, None] + 1
    too_close = (np.abs(margins) < 0.05) & (np.arange(c) != labels[:, None])
    scores[too_close] += 0.1
    return scores, labels


def log_softmax(s):
    s = s - s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("n,c", SIZES)
def test_softmax_cross_entropy_gradients(n, c):
    scores, labels = scores_labels(n, c)
    expected = -log_softmax(scores)[np.arange(n), labels].mean()
    out, (dscores, dlabels) = check_op("softmax_cross_entropy", [scores, labels], expected=expected)
    assert dlabels is None
    np.testing.assert_allclose(dscores.sum(axis=1), 0, atol=1e-15)


@pytest.mark.parametrize("n,c", SIZES)
@pytest.mark.parametrize("delta", [1.0, 0.5])
def test_svm_loss_gradients(n, c, delta):
    scores, labels = hinge_scores(n, c)
    margins = np.maximum(0, scores - scores[np.arange(n), labels][:, None] + delta)
    margins[np.arange(n), labels] = 0
    check_op("svm_loss", [scores, labels], {"delta": delta}, expected=margins.sum() / n)


@pytest.mark.parametrize("n,c", [(4, 5), (1, 3), (3, 2)])
def test_softmax_gradients(n, c):
    x, _ = scores_labels(n, c)
    expected = np.exp(log_softmax(x))
    out, _ = check_op("softmax", [x], expected=expected)
    np.testing.assert_allclose(out.sum(axis=1), 1)


@pytest.mark.parametrize("c", [3, 10, 100])
def test_losses_of_small_random_scores(c):
    scores, labels = scores_labels(50, c, scale=0.001)
    ce, _ = get_op("softmax_cross_entropy").forward([scores, labels], {})
    svm, _ = get_op("svm_loss").forward([scores, labels], {})
    assert abs(ce - np.log(c)) < 0.01
    assert abs(svm - (c - 1)) < 0.01
    assert ce.shape == svm.shape == ()


def test_loss_returns_the_scores_dtype():
    scores, labels = scores_labels(4, 3)
    for name in ("softmax_cross_entropy", "svm_loss"):
        op = get_op(name)
        loss, cache = op.forward([scores.astype(np.float32), labels], {})
        assert loss.dtype == np.float32 and loss.shape == ()
        # a float64 upstream gradient must not promote the float32 gradient
        dscores, _ = op.backward(np.float64(1.0), cache, {})
        assert dscores.dtype == np.float32


def test_stable_for_huge_scores():
    scores = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 1000.0]])
    labels = np.array([0, 1])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, _ = get_op("softmax_cross_entropy").forward([scores, labels], {})
        y, _ = get_op("softmax").forward([scores], {})
    np.testing.assert_allclose(loss, np.log(2) / 2)
    np.testing.assert_allclose(y, [[1, 0, 0], [0, 0.5, 0.5]])


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "svm_loss"])
@pytest.mark.parametrize("bad,index", [(5, 2), (-1, 0)])
def test_bad_labels_are_feed_errors(name, bad, index):
    scores, _ = scores_labels(4, 5)
    labels = np.array([1, 2, 3, 0])
    labels[index] = bad
    with pytest.raises(FeedError, match=rf"{name}: label {bad} at index {index} is not a class index in \[0, 5\)"):
        get_op(name).forward([scores, labels], {})


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "svm_loss"])
def test_bad_loss_inputs(name):
    op = get_op(name)
    scores, labels = scores_labels(4, 5)
    with pytest.raises(DTypeError, match=f"{name}: labels must be an integer array of class indices, got float64"):
        op.forward([scores, labels.astype(np.float64)], {})
    with pytest.raises(DTypeError, match=f"{name}: input 'scores' must be a float32 or float64 array, got int64"):
        op.forward([labels.reshape(2, 2), labels], {})
    with pytest.raises(ShapeError, match=rf"{name}: labels must have shape \(4,\) to match scores of shape \(4, 5\), got \(3,\)"):
        op.forward([scores, labels[:3]], {})
    with pytest.raises(ShapeError, match=rf"{name}: input 'scores' must have 1 dims \(C\) per example, got shape \(5, 2\)"):
        op.forward([scores.reshape(2, 5, 2), labels[:2]], {})
    with pytest.raises(ShapeError, match=rf"{name}: input 'labels' must have 0 dims .* got shape \(1,\)"):
        op.infer_shape([(5,), (1,)], {})


def test_softmax_bad_rank_and_axis_and_svm_bad_delta():
    for name in ("softmax", "log_softmax"):
        with pytest.raises(ShapeError, match=rf"{name}: input 'x' has no dims per example"):
            get_op(name).infer_shape([()], {})
        with pytest.raises(AttrError, match=rf"{name}: axis 0 is the batch axis"):
            get_op(name).infer_shape([(3, 4)], {"axis": 0})
        with pytest.raises(AttrError, match=rf"{name}: axis -4 is out of range .* 2 dims"):
            get_op(name).infer_shape([(3, 4)], {"axis": -4})
        assert get_op(name).infer_shape([(3, 4)], {"axis": -2}) == (3, 4)  # -2 is axis 1
        with pytest.raises(AttrError, match=rf"{name}: axis -3 is the batch axis"):
            get_op(name).infer_shape([(3, 4)], {"axis": -3})
    with pytest.raises(AttrError, match="svm_loss: delta"):
        get_op("svm_loss").forward(list(scores_labels(2, 3)), {"delta": -1})


def _log_softmax_over(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((4, 5), 1), ((2, 3, 4), 1), ((2, 3, 4), -1),
                                        ((2, 3, 4, 5), 2), ((2, 3, 4, 5), -3), ((3, 1, 6), 1),
                                        ((2, 6), None)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_and_log_softmax_over_any_axis(name, shape, axis):
    x = np.random.default_rng(0).standard_normal(shape)
    attrs = {} if axis is None else {"axis": axis}
    want = _log_softmax_over(x, -1 if axis is None else axis)
    out, _ = check_op(name, [x], attrs, expected=np.exp(want) if name == "softmax" else want)
    if name == "softmax":
        np.testing.assert_allclose(out.sum(axis=-1 if axis is None else axis), 1)


def test_log_softmax_is_finite_where_softmax_underflows():
    x = np.array([[0.0, -800.0, 800.0]])
    y, _ = get_op("log_softmax").forward([x], {})
    np.testing.assert_allclose(y, [[-800.0, -1600.0, 0.0]])
