"""Preprocessing: statistics fitted on train, seeded splits, batch iteration."""
import numpy as np
import pytest

from dagnet.data.preprocess import (
    batch_indices,
    fit_normalization,
    iterate_batches,
    normalize,
    normalize_splits,
    scale_to_unit,
    split_train_val,
)
from dagnet.errors import DatasetError


def images(n=50, c=3, h=4, w=5, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, w)) * [[[2.0]], [[0.5]], [[3.0]]][:c] + 7).astype(dtype)


def test_scale_to_unit():
    raw = np.array([0, 51, 255], dtype=np.uint8)
    got = scale_to_unit(raw)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([0, 51, 255], dtype=np.float32) / np.float32(255))


def test_mean_image():
    X = images()
    stats = fit_normalization(X, "mean_image")
    assert set(stats) == {"mean"} and stats["mean"].shape == (1, 3, 4, 5)
    np.testing.assert_allclose(stats["mean"][0], X.astype(np.float64).mean(axis=0), rtol=1e-6)
    Xn = normalize(X, stats)
    assert Xn.dtype == np.float32
    assert np.abs(Xn.mean(axis=0)).max() < 1e-5


def test_channel_standardisation_fitted_on_train_only():
    X_train, X_test = images(seed=0), images(n=20, seed=1)
    stats = fit_normalization(X_train, "channel")
    assert stats["mean"].shape == stats["std"].shape == (1, 3, 1, 1)
    per_channel = X_train.astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(stats["mean"].ravel(), per_channel.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(stats["std"].ravel(), per_channel.std(axis=1), rtol=1e-6)
    Xn = normalize(X_train, stats)
    np.testing.assert_allclose(Xn.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(Xn.std(axis=(0, 2, 3)), 1, atol=1e-5)
    # test data uses the train statistics, not its own
    expected = (X_test.astype(np.float64) - stats["mean"]) / stats["std"]
    np.testing.assert_allclose(normalize(X_test, stats), expected, rtol=1e-5, atol=1e-6)


def test_constant_channel_and_integer_input():
    X = np.zeros((4, 2, 3, 3), dtype=np.uint8)
    X[:, 1] = np.arange(4)[:, None, None]
    stats = fit_normalization(X, "channel")
    assert stats["std"].dtype == np.float32 and stats["std"][0, 0, 0, 0] == 1.0
    Xn = normalize(X, stats)
    assert np.isfinite(Xn).all() and Xn.dtype == np.float32


def test_none_and_errors():
    X = images()
    assert fit_normalization(X, "none") == {}
    Xn = normalize(X, {})
    assert Xn is not X and np.array_equal(Xn, X)
    with pytest.raises(DatasetError, match="unknown normalization 'zca'"):
        fit_normalization(X, "zca")
    with pytest.raises(DatasetError, match=r"\(N, C, H, W\)"):
        fit_normalization(X.reshape(50, -1), "channel")
    with pytest.raises(DatasetError, match=r"mean of shape \(1, 3, 4, 5\) does not fit"):
        normalize(images(h=6), fit_normalization(X, "mean_image"))


def test_normalize_splits():
    data = {"X_train": images(), "y_train": np.arange(50), "X_val": images(n=10, seed=3), "y_val": np.arange(10)}
    out, stats = normalize_splits(data, "channel")
    assert set(out) == set(data) and out["y_val"] is data["y_val"]
    np.testing.assert_array_equal(out["X_val"], normalize(data["X_val"], stats))


def test_split_sizes_and_determinism():
    X = np.arange(100).reshape(100, 1) * 10
    y = np.arange(100)
    X_tr, y_tr, X_val, y_val = split_train_val(X, y, num_val=30, seed=7)
    assert len(X_tr) == len(y_tr) == 70 and len(X_val) == len(y_val) == 30
    assert sorted(np.concatenate([y_tr, y_val]).tolist()) == list(range(100))
    np.testing.assert_array_equal(X_tr[:, 0], y_tr * 10)  # X and y stay aligned
    assert np.all(np.diff(y_tr) > 0) and np.all(np.diff(y_val) > 0)  # original order kept
    again = split_train_val(X, y, 30, seed=7)
    np.testing.assert_array_equal(again[3], y_val)
    np.testing.assert_array_equal(split_train_val(X, y, 30, seed=np.random.default_rng(7))[3], y_val)
    assert not np.array_equal(split_train_val(X, y, 30, seed=8)[3], y_val)


@pytest.mark.parametrize("num_val", [0, 100, -1, 2.5])
def test_split_bad_sizes(num_val):
    with pytest.raises(DatasetError, match="num_val"):
        split_train_val(np.zeros((100, 2)), np.zeros(100), num_val, seed=0)


@pytest.mark.parametrize("n,batch_size", [(10, 3), (12, 4), (5, 8)])
def test_every_example_once_per_epoch(n, batch_size):
    X = np.arange(n) * 2.0
    y = np.arange(n)
    rng = np.random.default_rng(0)
    orders = []
    for _ in range(3):
        batches = list(iterate_batches(X, y, batch_size, rng=rng))
        assert [len(yb) for _, yb in batches[:-1]] == [batch_size] * (len(batches) - 1)
        seen = np.concatenate([yb for _, yb in batches])
        assert sorted(seen.tolist()) == list(range(n))
        for xb, yb in batches:
            np.testing.assert_array_equal(xb, yb * 2.0)
        orders.append(seen)
    if n > 5:
        assert not np.array_equal(orders[0], orders[1])  # reshuffled each epoch


def test_drop_last_and_sequential():
    rng = np.random.default_rng(0)
    batches = batch_indices(10, 3, rng, drop_last=True)
    assert [len(b) for b in batches] == [3, 3, 3]
    assert len(set(np.concatenate(batches).tolist())) == 9
    assert [b.tolist() for b in batch_indices(5, 2)] == [[0, 1], [2, 3], [4]]


def test_same_seed_same_batches():
    a = batch_indices(20, 6, np.random.default_rng(3))
    b = batch_indices(20, 6, np.random.default_rng(3))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_batch_errors():
    with pytest.raises(DatasetError, match="batch_size = 0"):
        batch_indices(10, 0)
    with pytest.raises(DatasetError, match="empty"):
        list(iterate_batches(np.zeros((0, 2)), np.zeros(0), 4))
    with pytest.raises(DatasetError, match="X has 3 examples but y has 2"):
        list(iterate_batches(np.zeros((3, 2)), np.zeros(2), 4))
