"""CIFAR-10 batches: read as real (Python 2) files and as Python 3 pickles, never executing code."""
import os
import pickle
import struct

import numpy as np
import pytest

from dagnet.data.cifar import load_cifar10, load_cifar_batch
from dagnet.errors import DatasetError
from tests.payloads import Payload, ShellPayload


def s(b: bytes) -> bytes:
    """A Python 2 str (our bytes) as protocol-2 opcodes: SHORT_BINSTRING or BINSTRING."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def i(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def py2_batch(data: np.ndarray, labels, shape=None) -> bytes:
    """A batch pickled as Python 2's cPickle wrote the real files (protocol 2, numpy.core globals)."""
    dtype = (b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
             + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"(" + i(0) + b"t"
             + s(b"b") + b"\x87R"
             + b"(" + i(1) + b"(" + b"".join(i(d) for d in shape or data.shape) + b"t" + dtype
             + b"\x89" + s(data.tobytes()) + b"tb")
    return (b"\x80\x02}(" + s(b"batch_label") + s(b"training batch 1 of 5") + s(b"data") + array
            + s(b"labels") + b"(" + b"".join(i(label) for label in labels) + b"l" + b"u.")


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def test_py2_helper_matches_pickle():
    """Our hand-written Python 2 bytes are what the real files hold (checked with trusted pickle)."""
    data, labels = batch()
    d = pickle.loads(py2_batch(data, labels), encoding="bytes")
    np.testing.assert_array_equal(d[b"data"], data)
    assert d[b"labels"] == labels and d[b"batch_label"] == b"training batch 1 of 5"


def expected(data):
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("protocol", ["py2", 2, 3, 4, 5])
def test_load_batch(tmp_path, protocol):
    data, labels = batch()
    path = tmp_path / "data_batch_1"
    if protocol == "py2":
        path.write_bytes(py2_batch(data, labels))
    else:
        payload = {b"batch_label": b"x", b"data": data, b"labels": labels, b"filenames": [b"a.png"] * 4}
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
    X, y = load_cifar_batch(path)
    assert X.shape == (4, 3, 32, 32) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, expected(data))
    np.testing.assert_array_equal(y, labels)


def test_channels_are_planes(tmp_path):
    """Each row is 1024 red, 1024 green, 1024 blue values: X[n, c] is plane c."""
    data = np.repeat(np.array([[10], [20], [30]], dtype=np.uint8), 1024, axis=1).reshape(1, 3072)
    (tmp_path / "b").write_bytes(py2_batch(data, [3]))
    X, _ = load_cifar_batch(tmp_path / "b")
    np.testing.assert_array_equal(X[0, :, 5, 7] * 255, [10, 20, 30])


def write_cifar(directory, n=3):
    for k, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        (directory / name).write_bytes(py2_batch(*batch(n, seed=k)))


def test_load_cifar10(tmp_path):
    write_cifar(tmp_path)
    data = load_cifar10(tmp_path)
    assert data["X_train"].shape == (15, 3, 32, 32) and data["y_train"].shape == (15,)
    assert data["X_test"].shape == (3, 3, 32, 32) and data["y_test"].shape == (3,)
    np.testing.assert_array_equal(data["X_train"][3:6], expected(batch(3, seed=1)[0]))
    np.testing.assert_array_equal(data["y_test"], batch(3, seed=5)[1])


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(DatasetError, match="not found: download the CIFAR-10 python version.*cifar-10-python.tar.gz"):
        load_cifar10(tmp_path / "cifar-10-batches-py")
    write_cifar(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(DatasetError, match="missing data_batch_3"):
        load_cifar10(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_cifar_batch(tmp_path / "data_batch_3")


@pytest.mark.parametrize("payload", [Payload, ShellPayload])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_code_in_a_batch_is_never_run(tmp_path, protocol, payload):
    marker = tmp_path / "pwned"
    data, labels = batch()
    evil = {b"data": data, b"labels": labels, b"filenames": [payload(marker)]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(DatasetError, match=r"refusing to unpickle (io\.open|posix\.system)"):
        load_cifar_batch(tmp_path / "data_batch_1")
    assert not marker.exists()


def test_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = {b"data": np.array([Payload(marker)], dtype=object), b"labels": [0]}
    (tmp_path / "b").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        load_cifar_batch(tmp_path / "b")
    assert not marker.exists()
    (tmp_path / "b").write_bytes(pickle.dumps({b"data": np.array([1, 2], dtype=object), b"labels": [0]}))
    with pytest.raises(DatasetError, match="non-numeric dtype"):
        load_cifar_batch(tmp_path / "b")


def test_globals_cannot_be_modified(tmp_path):
    # GLOBAL numpy.dtype, then BUILD with slot state {"_target": 1}: would re-point our stand-in.
    key = b"X" + struct.pack("<I", 7) + b"_target"  # BINUNICODE: a str attribute name
    (tmp_path / "b").write_bytes(b"\x80\x02cnumpy\ndtype\nN}" + key + i(1) + b"s\x86b.")
    with pytest.raises(DatasetError, match="never modifies a global"):
        load_cifar_batch(tmp_path / "b")
    (tmp_path / "good").write_bytes(py2_batch(*batch()))
    np.testing.assert_array_equal(load_cifar_batch(tmp_path / "good")[0], expected(batch()[0]))


def test_damaged_batches(tmp_path):
    data, labels = batch()
    good = py2_batch(data, labels)
    cases = {
        "truncated": good[: len(good) // 2],
        "garbage": b"\x00\x01 not a pickle",
        "wrong shape": py2_batch(data, labels, shape=(4, 3000)),
        "label range": py2_batch(data, [0, 1, 2, 10]),
        "label count": py2_batch(data, [0, 1]),
        "not a dict": pickle.dumps([1, 2, 3], protocol=2),
    }
    for name, raw in cases.items():
        (tmp_path / "b").write_bytes(raw)
        with pytest.raises(DatasetError, match="not a valid CIFAR-10 batch"):
            load_cifar_batch(tmp_path / "b")
