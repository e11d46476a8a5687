"""CIFAR-10 "python version" batches (data_batch_1..5, test_batch), read without executing code.

    data = load_cifar10("data/cifar-10-batches-py")
    data["X_train"].shape     # (50000, 3, 32, 32) float32 in [0, 1]; data["y_train"] int64

Why a hand-restricted unpickler, and why stand-ins rather than numpy's own functions:
the batches are Python pickles, and plain pickle.load runs whatever callable the file names,
so an untrusted file could execute anything. The usual fix, a find_class allow-list, would
still hand attacker-chosen arguments to numpy internals (`_reconstruct`, `dtype`, ndarray's
__setstate__, which accepts object arrays whose items are unpickled in turn), and would rely
on numpy's pickle paths, which moved in numpy 2 (numpy.core -> numpy._core). So find_class
answers every global with a stand-in written here, wrapped so that the file cannot modify it
(BUILD can setattr on any object a pickle holds): the array and dtype globals return inert
placeholders that only record their arguments, `_codecs.encode` (how Python 3 pickles bytes
at protocol 2) only accepts latin-1, and anything else is refused. Once unpickling is done,
each recorded array becomes np.frombuffer of its raw bytes, for plain numeric dtypes only.
The only code a file can reach is therefore the builtin containers (dict, list, tuple, str,
bytes, int), these stand-ins and np.frombuffer.
"""
from __future__ import annotations

import io
import os
import pickle
import re

import numpy as np

from dagnet.data.preprocess import scale_to_unit
from dagnet.errors import DatasetError
from dagnet.files import read_bounded

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
NUM_CLASSES = 10
HOW_TO_GET = ("download the CIFAR-10 python version (cifar-10-python.tar.gz) from "
              "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and pass the "
              "cifar-10-batches-py directory")

# Plain numeric dtypes only: "u1", "<f4", b"i8", ... (bytes when read with encoding="bytes").
_NUMERIC_DTYPE = re.compile(r"[<>|=]?[biuf][1248]")


class _ArrayRecord:
    """Placeholder for an ndarray: BUILD hands it (version, shape, dtype, fortran, rawdata)."""

    def __init__(self):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _DtypeRecord:
    """Placeholder for a numpy dtype: its name and, after BUILD, its byte order."""

    def __init__(self, name, align=False, copy=True):
        self.name = name.decode("latin-1") if isinstance(name, bytes) else name
        self.order = "|"

    def __setstate__(self, state):
        order = state[1]
        self.order = order.decode("latin-1") if isinstance(order, bytes) else order


class _BufferRecord(_ArrayRecord):
    """Placeholder for numpy's protocol-5 `_frombuffer(buffer, dtype, shape, order)`."""

    def __init__(self, buffer, dtype, shape, order):
        super().__init__()
        self.state = (1, shape, dtype, order == "F", buffer)


class _Global:
    """What find_class hands out: a call-through wrapper that cannot be modified.

    A pickle can BUILD (setattr) on any object it holds, globals included; were these our
    functions or classes, a file could alter them for every later load in the process.
    """

    __slots__ = ("_target",)

    def __init__(self, target):
        object.__setattr__(self, "_target", target)

    def __setattr__(self, key, value):
        raise pickle.UnpicklingError("a CIFAR-10 batch never modifies a global")

    def __call__(self, *args):
        return self._target(*args)


def _never_called():
    raise pickle.UnpicklingError("numpy.ndarray is only an argument of _reconstruct")


_NDARRAY = _Global(_never_called)


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _ArrayRecord()


def _latin1_encode(text, encoding):
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode used for something other than bytes")
    return text.encode("latin-1")


_STAND_INS = {
    ("numpy.core.multiarray", "_reconstruct"): _Global(_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Global(_reconstruct),
    ("numpy.core.numeric", "_frombuffer"): _Global(_BufferRecord),
    ("numpy._core.numeric", "_frombuffer"): _Global(_BufferRecord),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global(_DtypeRecord),
    ("_codecs", "encode"): _Global(_latin1_encode),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _STAND_INS[(module, name)]
        except KeyError:
            raise DatasetError(f"refusing to unpickle {module}.{name}: a CIFAR-10 batch never contains "
                               "it, and loading it could run code") from None


def _to_array(record) -> np.ndarray:
    """The ndarray an _ArrayRecord stands for: numeric dtype, byte count matching the shape."""
    if not isinstance(record, _ArrayRecord) or record.state is None:
        raise ValueError(f"expected a numpy array, found {type(record).__name__}")
    _, shape, dtype, fortran, raw = record.state[:5]
    if not isinstance(dtype, _DtypeRecord) or not isinstance(dtype.name, str) \
            or not isinstance(dtype.order, str) or not _NUMERIC_DTYPE.fullmatch(dtype.order + dtype.name):
        raise ValueError("array of a non-numeric dtype; a CIFAR-10 batch holds uint8 pixels")
    if not isinstance(raw, (bytes, bytearray)):
        raise ValueError(f"array data is a {type(raw).__name__}, not bytes")
    dt = np.dtype(dtype.name).newbyteorder(dtype.order if dtype.order in ("<", ">") else "=")
    shape = tuple(int(d) for d in shape)
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
        raise ValueError(f"array data of {len(raw)} bytes does not fit shape {shape} of {dt}")
    return np.frombuffer(raw, dt).reshape(shape, order="F" if fortran else "C")


def _parse_batch(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 data (N, 3072), labels (N,)) of a pickled batch; ValueError if it is not one."""
    # encoding="bytes": the batches were written by Python 2, whose str is our bytes.
    batch = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError("no dict with data and labels")
    data = _to_array(batch[b"data"])
    labels = batch[b"labels"]
    if not isinstance(labels, list) or not all(type(label) is int for label in labels):
        raise ValueError("labels are not a list of ints")
    labels = np.array(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(data),):
        raise ValueError(f"{len(labels)} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels outside 0..{NUM_CLASSES - 1}")
    return data, labels


#: no CIFAR-10 batch is larger (each holds 10,000 images: about 31 MB)
MAX_BATCH_BYTES = 64 * 2 ** 20


def _path(owner: str, value) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise DatasetError(f"{owner}: {value!r:.60} is not a path; pass the "
                           f"cifar-10-batches-py directory (str or pathlib.Path)")
    return os.fsdecode(os.fspath(value))


def load_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file: X (N, 3, 32, 32) float32 in [0, 1], y (N,) int64."""
    path = _path("load_cifar_batch", path)
    raw = read_bounded(path, MAX_BATCH_BYTES, DatasetError, "CIFAR-10 batch",
                       missing=f"CIFAR-10 batch {path} not found: {HOW_TO_GET}")
    try:
        data, labels = _parse_batch(raw)
    except DatasetError as e:
        raise DatasetError(f"{path}: {e}") from None
    except Exception as e:
        # The pickle machine fails in many ways on damaged or foreign bytes; all mean a bad file.
        raise DatasetError(f"{path} is not a valid CIFAR-10 batch ({type(e).__name__}: {e}); "
                           "download it again") from None
    # Rows are 1024 red, then 1024 green, then 1024 blue values, each image row-major: NCHW.
    return scale_to_unit(data.reshape(-1, 3, 32, 32)), labels


def load_cifar10(directory) -> dict[str, np.ndarray]:
    """CIFAR-10 from a cifar-10-batches-py directory.

    Returns {"X_train": (50000, 3, 32, 32), "y_train": (50000,), "X_test": (10000, 3, 32, 32),
    "y_test": (10000,)}: images float32 in [0, 1], labels int64 in 0..9.
    """
    directory = _path("load_cifar10", directory)
    if not os.path.isdir(directory):
        raise DatasetError(f"CIFAR-10 directory {directory} not found: {HOW_TO_GET}")
    missing = [name for name in TRAIN_BATCHES + (TEST_BATCH,)
               if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise DatasetError(f"CIFAR-10 not complete in {directory} (missing {', '.join(missing)}): {HOW_TO_GET}")
    train = [load_cifar_batch(os.path.join(directory, name)) for name in TRAIN_BATCHES]
    X_test, y_test = load_cifar_batch(os.path.join(directory, TEST_BATCH))
    return {
        "X_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "X_test": X_test,
        "y_test": y_test,
    }
