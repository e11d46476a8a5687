"""IDX files, the format of MNIST and Fashion-MNIST: a reader and a loader for the four files.

    data = load_mnist_like()       # Fashion-MNIST from /usr/share/datasets/fashion-mnist/
    data["X_train"].shape          # (60000, 1, 28, 28) float32 in [0, 1]; data["y_train"] int64

IDX layout: magic 0x00 0x00 <type code> <ndim>, then ndim big-endian uint32 sizes, then the
data in big-endian C order. Files may be gzipped (told apart by content, not by name).
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from dagnet.data.preprocess import scale_to_unit
from dagnet.errors import DatasetError
from dagnet.files import check_regular

#: IDX type code -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: the four files of an MNIST-like dataset, without the optional .gz
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

NUM_CLASSES = 10

#: per kind: display name, default directory (None: the user must pass one), how to get it
KINDS = {
    "fashion-mnist": ("Fashion-MNIST", "/usr/share/datasets/fashion-mnist/",
                      "install it with `apt-get install dataset-fashion-mnist`"),
    "mnist": ("MNIST", None, "download the four MNIST files"),
}


#: the largest IDX file read (EMNIST, the largest MNIST-like set, is under 1 GB)
MAX_IDX_BYTES = 4 * 2 ** 30


def read_idx(path) -> np.ndarray:
    """One IDX file (raw or gzipped) as a native-endian array of the shape its header gives.

    The header is read first and the data only up to the size it declares (plus one byte, to
    tell a longer file): a damaged header or a gzip bomb never makes it allocate more."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise DatasetError(f"read_idx: path = {path!r:.60}; it must be a file path")
    path = os.fsdecode(os.fspath(path))
    check_regular(path, DatasetError, "IDX file")
    with _open_maybe_gzipped(path) as f:
        head = _read(f, path, 4)
        if len(head) < 4:
            raise DatasetError(f"{path} is truncated: {len(head)} bytes, less than an IDX "
                               f"header; download it again")
        if head[:2] != b"\0\0" or head[2] not in IDX_DTYPES or head[3] == 0:
            raise DatasetError(f"{path} is not an IDX file (magic 0x{head.hex()}, expected "
                               "0x0000TTNN with type TT in 08,09,0b,0c,0d,0e and NN dimensions, "
                               "e.g. 0x00000803 for images)")
        ndim = head[3]
        raw_dims = _read(f, path, 4 * ndim)
        if len(raw_dims) < 4 * ndim:
            raise DatasetError(f"{path} is truncated inside its header; download it again")
        dims = struct.unpack(f">{ndim}I", raw_dims)
        dtype = np.dtype(IDX_DTYPES[head[2]])
        count = math.prod(dims)  # Python ints: a damaged header must not overflow
        header = 4 + 4 * ndim
        expected = header + count * dtype.itemsize
        if expected > MAX_IDX_BYTES:
            raise DatasetError(f"{path}: its header gives shape {dims} ({expected:,} bytes), "
                               f"more than any IDX data set ({MAX_IDX_BYTES:,} bytes at most); "
                               f"the file is damaged: download it again")
        data = _read(f, path, count * dtype.itemsize + 1)
    got = header + len(data)
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        size = f"{got:,} bytes" if got < expected else "more"
        raise DatasetError(f"{path} is {what}: header gives shape {dims} ({expected:,} bytes), "
                           f"the file has {size}; download it again")
    return np.frombuffer(data, dtype, count).reshape(dims).astype(dtype.newbyteorder("="))


def _open_maybe_gzipped(path: str):
    """The file, decompressing as it is read if it is gzipped (told apart by content)."""
    try:
        f = open(path, "rb")
        if f.read(2) == b"\x1f\x8b":
            f.close()
            return gzip.open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror}") from None
    f.seek(0)
    return f


def _read(f, path: str, n: int) -> bytes:
    try:
        return f.read(n)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path} is a damaged or truncated gzip file ({e}); download it "
                           f"again") from None


def find_idx_file(directory: str, name: str) -> str | None:
    """Path of `name.gz` or `name` in directory, whichever exists (gz first), else None."""
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def load_mnist_like(directory=None, kind: str = "fashion-mnist") -> dict[str, np.ndarray]:
    """The train and test splits of an MNIST-like dataset in `directory`.

    Returns {"X_train": (60000, 1, 28, 28), "y_train": (60000,), "X_test": (10000, 1, 28, 28),
    "y_test": (10000,)} for (Fashion-)MNIST: images float32 in [0, 1], labels int64 in 0..9.
    directory None means the kind's default (Fashion-MNIST: /usr/share/datasets/fashion-mnist/).
    """
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; known: {', '.join(KINDS)}")
    title, default, how = KINDS[kind]
    directory = default if directory is None else os.fspath(directory)
    wanted = ", ".join(f"{name}[.gz]" for name in FILES.values())
    if directory is None:
        raise DatasetError(f"{title} has no default directory: {how} and pass a directory holding {wanted}")
    paths = {key: find_idx_file(directory, name) for key, name in FILES.items()}
    missing = [FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise DatasetError(f"{title} not found in {directory} (missing {', '.join(missing)}): {how}, "
                           f"or pass a directory holding {wanted}")
    data = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"])
        labels = read_idx(paths[f"{split}_labels"])
        _check_split(paths[f"{split}_images"], images, paths[f"{split}_labels"], labels)
        data[f"X_{split}"] = scale_to_unit(images)[:, None, :, :]
        data[f"y_{split}"] = labels.astype(np.int64)
    train, test = data["X_train"].shape[2:], data["X_test"].shape[2:]
    if train != test:  # found now, not after a whole training run, when the test set is used
        raise DatasetError(f"{paths['test_images']} holds {test[0]}x{test[1]} images but "
                           f"{paths['train_images']} {train[0]}x{train[1]}: the test set is "
                           f"from another data set; put the matching files together")
    return data


def _check_split(images_path: str, images: np.ndarray, labels_path: str, labels: np.ndarray) -> None:
    """Images must be (N, H, W) uint8, labels (N,) uint8 in 0..9."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetError(f"{labels_path}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DatasetError(f"{labels_path}: label {int(labels.max())} is out of range 0..{NUM_CLASSES - 1}")
