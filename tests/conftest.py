"""Shared fixtures: every compile lints its graph after each pass; tiny IDX datasets written by
the tests themselves."""
import gzip
import struct

import dagnet  # noqa: F401  (before numpy: it tunes OpenBLAS's threads, see dagnet/procenv.py)
import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def lint_every_pass():
    """Every compile in the tests checks its graph after each pass (compiler/lint.py): a pass
    that breaks an invariant or writes an undeclared meta key fails the test that compiled."""
    from dagnet.compiler import pipeline

    pipeline.LINT = True
    yield
    pipeline.LINT = False


def write_idx(path, array):
    """An IDX file (gzipped) of uint8 data: magic 0 0 0x08 ndim, big-endian dims, bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(">u1").tobytes())


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory):
    """200 train / 60 test 28x28 images whose class is readable from a bright square."""
    d = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("t10k", 60)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        X = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            X[i, 2 * c:2 * c + 6, 4:10] = 255
        write_idx(d / f"{split}-images-idx3-ubyte.gz", X)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    return d
