"""Preprocessing: scaling, normalisation fitted on train, a seeded train/val split, minibatches.

    stats = fit_normalization(X_train, "channel")      # arrays; save them with the checkpoint
    X_val = normalize(X_val, stats)
    X_tr, y_tr, X_val, y_val = split_train_val(X, y, num_val=5000, seed=0)
    for xb, yb in iterate_batches(X_tr, y_tr, 64, rng=np.random.default_rng(0)): ...
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.data.augment import augment_rng
from dagnet.errors import DatasetError

NORMALIZATIONS = ("none", "mean_image", "channel")


def scale_to_unit(X: np.ndarray, maximum: float = 255.0, dtype=np.float32) -> np.ndarray:
    """X / maximum as dtype: raw pixels (uint8, 0..255) to [0, 1]. X: any shape."""
    return np.divide(X, maximum, dtype=dtype)


def fit_normalization(X_train: np.ndarray, method: str = "channel") -> dict[str, np.ndarray]:
    """Statistics of X_train (N, C, H, W) for `normalize`: {"mean": ..., "std": ...}.

    "mean_image": mean (1, C, H, W), the per-pixel mean image; no std.
    "channel": mean and std (1, C, 1, 1) per channel, i.e. per-channel standardisation.
    "none": {} (normalize is then a copy).
    The leading 1s make them broadcast against a batch, and they save as plain arrays. They
    have X's dtype when X is floating-point, else float32.
    """
    _check_images(X_train, "X_train")
    dtype = X_train.dtype if np.issubdtype(X_train.dtype, np.floating) else np.float32
    # Sums in float64: a float32 running sum over 60000 images loses digits.
    if method == "none":
        return {}
    if method == "mean_image":
        return {"mean": X_train.mean(axis=0, keepdims=True, dtype=np.float64).astype(dtype)}
    if method == "channel":
        if np.issubdtype(X_train.dtype, np.floating) and kernels.HAVE_CYTHON:
            # the batchnorm kernel's per-channel float64 sums: numpy's std would first make a
            # float64 copy of the whole set (345 MB and 1 s for Fashion-MNIST)
            m, v = kernels.bn_stats(X_train)
            mean, std = m.reshape(1, -1, 1, 1), np.sqrt(v).reshape(1, -1, 1, 1)
        else:
            mean = X_train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
            std = X_train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
        # A constant channel has nothing to scale; dividing by 0 would give inf/NaN.
        std[std == 0] = 1.0
        return {"mean": mean.astype(dtype), "std": std.astype(dtype)}
    raise DatasetError(f"unknown normalization {method!r}; choose one of {', '.join(NORMALIZATIONS)}")


def normalize(X: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """(X - mean) / std with the statistics of fit_normalization (a new array). X: (N, C, H, W)."""
    _check_images(X, "X")
    for key, value in stats.items():
        if value.shape not in ((1, X.shape[1], 1, 1), (1,) + X.shape[1:]):
            raise DatasetError(f"normalization {key} of shape {value.shape} does not fit data of shape "
                               f"{X.shape}; fit the statistics on data with the same image shape")
    out = X - stats["mean"] if "mean" in stats else X.copy()
    if "std" in stats:
        out /= stats["std"]
    return out


def normalize_splits(data: dict, method: str = "channel") -> tuple[dict, dict]:
    """Fit on data["X_train"], apply to every "X_*" entry; returns (new data dict, stats)."""
    stats = fit_normalization(data["X_train"], method)
    out = {key: normalize(value, stats) if key.startswith("X_") else value for key, value in data.items()}
    return out, stats


def split_train_val(X: np.ndarray, y: np.ndarray, num_val: int, seed):
    """A random split, the same for the same seed: (X_train, y_train, X_val, y_val).

    X: (N, ...), y: (N,); num_val examples go to validation. seed: int or numpy Generator.
    Both parts keep the original order of their examples.
    """
    n = _check_pair(X, y)
    if not isinstance(num_val, (int, np.integer)) or not 0 < num_val < n:
        raise DatasetError(f"num_val = {num_val!r}, but it must be an integer in [1, {n - 1}] "
                           f"for a dataset of {n} examples")
    perm = np.random.default_rng(seed).permutation(n)
    val = np.sort(perm[:num_val])
    train = np.sort(perm[num_val:])
    return X[train], y[train], X[val], y[val]


def batch_indices(n: int, batch_size: int, rng: np.random.Generator | None = None,
                  drop_last: bool = False) -> list[np.ndarray]:
    """Index arrays of one epoch's minibatches over n examples, shuffled when rng is given.

    The epoch's order is ONE rng.permutation(n) call, so a solver that saves the rng state at
    the start of an epoch can regenerate the epoch and skip the batches already done.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DatasetError(f"batch_size = {batch_size!r}; it must be an integer >= 1")
    if n < 1:
        raise DatasetError("the dataset is empty: there is nothing to iterate over")
    order = np.arange(n) if rng is None else rng.permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def iterate_batches(X: np.ndarray, y: np.ndarray, batch_size: int,
                    rng: np.random.Generator | None = None, drop_last: bool = False,
                    augment=None, seed: int = 0, first_step: int = 0):
    """Yield (X_batch, y_batch) over one epoch: X (N, ...), y (N,); shuffled when rng is given.

    The last partial batch is kept unless drop_last. Without rng the order is the data's (for
    evaluation in batches). augment (an augment.Augment, or any f(X_batch, rng)) transforms
    each batch with augment_rng(seed, step), the steps counted from first_step.
    """
    n = _check_pair(X, y)
    for step, idx in enumerate(batch_indices(n, batch_size, rng, drop_last), first_step):
        xb = X[idx]
        yield (augment(xb, augment_rng(seed, step)) if augment else xb), y[idx]


def _check_pair(X: np.ndarray, y: np.ndarray) -> int:
    if len(X) != len(y):
        raise DatasetError(f"X has {len(X)} examples but y has {len(y)} labels; they must match")
    if len(X) == 0:
        raise DatasetError("the dataset is empty (0 examples)")
    return len(X)


def _check_images(X: np.ndarray, name: str) -> None:
    if X.ndim != 4:
        raise DatasetError(f"{name} must be images (N, C, H, W), got shape {X.shape}")
    if len(X) == 0:
        raise DatasetError(f"{name} is empty (0 examples)")
