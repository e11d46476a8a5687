"""Datasets and preprocessing: IDX (MNIST, Fashion-MNIST), CIFAR-10 batches, normalisation, batches."""
from dagnet.data.cifar import load_cifar10, load_cifar_batch
from dagnet.data.idx import load_mnist_like, read_idx
from dagnet.data.preprocess import (
    batch_indices,
    fit_normalization,
    iterate_batches,
    normalize,
    normalize_splits,
    scale_to_unit,
    split_train_val,
)

__all__ = [
    "batch_indices",
    "fit_normalization",
    "iterate_batches",
    "load_cifar10",
    "load_cifar_batch",
    "load_mnist_like",
    "normalize",
    "normalize_splits",
    "read_idx",
    "scale_to_unit",
    "split_train_val",
]
