"""IDX reader and the MNIST-like loader, on small files written here and on the real Fashion-MNIST."""
import gzip
import os
import struct

import numpy as np
import pytest

from dagnet.data import idx
from dagnet.data.idx import load_mnist_like, read_idx
from dagnet.errors import DatasetError

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
         np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of array: magic, big-endian dims, big-endian data."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, CODES[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path, array, gz=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-5, 0, 7], dtype=np.int8),
    np.array([[1, -2], [300, 4]], dtype=np.int16),
    np.arange(5, dtype=np.int32) * -70000,
    np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
    np.array([np.pi, -np.e]),
])
def test_read_idx_round_trip(tmp_path, array, gz):
    got = read_idx(write_idx(tmp_path / "a.idx", array, gz))
    assert got.shape == array.shape and got.dtype.isnative
    assert got.dtype.kind == array.dtype.kind and got.dtype.itemsize == array.dtype.itemsize
    np.testing.assert_array_equal(got, array)


def test_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(4, dtype=np.uint8)
    path = tmp_path / "labels-no-suffix"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("cut", [2, 6, 9, -1])
def test_truncated_raw(tmp_path, cut):
    data = idx_bytes(np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    (tmp_path / "t").write_bytes(data[:cut])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "t")


def test_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8)))
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="damaged or truncated gzip"):
        read_idx(tmp_path / "t.gz")


def test_extra_bytes_and_bad_magic(tmp_path):
    (tmp_path / "long").write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)) + b"\0")
    with pytest.raises(DatasetError, match="longer than its header says"):
        read_idx(tmp_path / "long")
    for magic in (b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00"):
        (tmp_path / "bad").write_bytes(magic + b"\0\0\0\0")
        with pytest.raises(DatasetError, match="not an IDX file"):
            read_idx(tmp_path / "bad")
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "absent")


def write_dataset(directory, n_train=6, n_test=4, gz=True, seed=0):
    """Four small MNIST-like files; train gzipped (or not), test always raw."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        zipped = gz and name.startswith("train")
        write_idx(directory / (name + (".gz" if zipped else "")), array, zipped)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_like(tmp_path, gz):
    raw = write_dataset(tmp_path, gz=gz)
    data = load_mnist_like(tmp_path, kind="mnist")
    assert data["X_train"].shape == (6, 1, 28, 28) and data["X_test"].shape == (4, 1, 28, 28)
    assert data["X_train"].dtype == np.float32 and data["y_train"].dtype == np.int64
    np.testing.assert_array_equal(data["X_train"][:, 0], raw["train-images-idx3-ubyte"] / np.float32(255))
    np.testing.assert_array_equal(data["y_test"], raw["t10k-labels-idx1-ubyte"])
    assert 0.0 <= data["X_train"].min() and data["X_train"].max() <= 1.0


def test_missing_dataset_is_one_clear_line(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_mnist_like(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte[.gz]" in message and str(tmp_path) in message


def test_missing_default_directory(monkeypatch, tmp_path):
    absent = str(tmp_path / "not-installed")
    _, _, how = idx.KINDS["fashion-mnist"]
    monkeypatch.setitem(idx.KINDS, "fashion-mnist", ("Fashion-MNIST", absent, how))
    with pytest.raises(DatasetError, match=f"not found in {absent}.*apt-get install dataset-fashion-mnist"):
        load_mnist_like()
    with pytest.raises(DatasetError, match="MNIST has no default directory"):
        load_mnist_like(kind="mnist")
    with pytest.raises(DatasetError, match="unknown dataset kind 'emnist'"):
        load_mnist_like(tmp_path, kind="emnist")


def test_inconsistent_files(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8))
    with pytest.raises(DatasetError, match="has 4 images but .* has 3 labels"):
        load_mnist_like(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 3, 10], dtype=np.uint8))
    with pytest.raises(DatasetError, match="label 10 is out of range"):
        load_mnist_like(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros((4, 1), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"expected uint8 labels \(N,\)"):
        load_mnist_like(tmp_path)


REAL = "/usr/share/datasets/fashion-mnist/"


@pytest.mark.skipif(not os.path.isfile(os.path.join(REAL, "t10k-labels-idx1-ubyte.gz")),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    data = load_mnist_like()
    assert data["X_train"].shape == (60000, 1, 28, 28) and data["y_train"].shape == (60000,)
    assert data["X_test"].shape == (10000, 1, 28, 28) and data["y_test"].shape == (10000,)
    assert data["X_train"].dtype == np.float32 and data["y_test"].dtype == np.int64
    assert data["X_train"].min() == 0.0 and data["X_train"].max() == 1.0
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class
    assert np.bincount(data["y_train"]).tolist() == [6000] * 10
    assert np.bincount(data["y_test"]).tolist() == [1000] * 10
