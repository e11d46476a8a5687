"""IDX files, the format of MNIST and Fashion-MNIST: a reader and a loader for the four files.

    data = load_mnist_like()       # Fashion-MNIST from /usr/share/datasets/fashion-mnist/
    data["X_train"].shape          # (60000, 1, 28, 28) float32 in [0, 1]; data["y_train"] int64

IDX layout: magic 0x00 0x00 <type code> <ndim>, then ndim big-endian uint32 sizes, then the
data in big-endian C order. Files may be gzipped (told apart by content, not by name).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from dagnet.data.preprocess import scale_to_unit
from dagnet.errors import DatasetError

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


def read_idx(path) -> np.ndarray:
    """One IDX file (raw or gzipped) as a native-endian array of the shape its header gives."""
    path = os.fspath(path)
    raw = _read_maybe_gzipped(path)
    if len(raw) < 4:
        raise DatasetError(f"{path} is truncated: {len(raw)} bytes, less than an IDX header; download it again")
    if raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DatasetError(f"{path} is not an IDX file (magic 0x{raw[:4].hex()}, expected 0x0000TTNN with "
                           "type TT in 08,09,0b,0c,0d,0e and NN dimensions, e.g. 0x00000803 for images)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated inside its header; download it again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    count = int(np.prod(dims, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DatasetError(f"{path} is {what}: header gives shape {dims} ({expected} bytes), the file has "
                           f"{len(raw)} bytes; download it again")
    return np.frombuffer(raw, dtype, count, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _read_maybe_gzipped(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path} is a damaged or truncated gzip file ({e}); download it again") from None


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
