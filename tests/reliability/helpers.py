"""Shared helpers of the reliability tests: tiny graphs and data, IDX writing, subprocesses."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys

import numpy as np

from dagnet import Graph

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_idx(path, array):
    """An IDX file (gzipped), as the MNIST files are: uint8 arrays only."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(">u1").tobytes())


def write_mnist_like(directory, n_train=120, n_test=40, size=8, classes=4, seed=0):
    """Four IDX files of `size`x`size` images whose class is readable from a bright patch."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, classes, n).astype(np.uint8)
        X = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
        for i, c in enumerate(y):
            X[i, c % size, :] = 255
        write_idx(os.path.join(directory, f"{split}-images-idx3-ubyte.gz"), X)
        write_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"), y)
    return directory


def tiny_mlp(d=6, hidden=5, classes=3, name="tiny"):
    g = Graph(name)
    x = g.input("x", (d,))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.affine(x, hidden, name="fc1"), name="relu1")
    g.softmax_cross_entropy(g.affine(h, classes, name="scores"), y)
    return g


def tiny_convnet(c=1, hw=8, classes=4, dropout=0.0, batchnorm=True, name="tiny_conv"):
    """conv-(bn)-relu-pool, a skip add, conv-relu, (dropout), fc: exercises every threaded kernel."""
    g = Graph(name)
    x = g.input("x", (c, hw, hw))
    y = g.input("y", (), dtype="int64")
    h = g.conv2d(x, 4, 3, pad=1, name="conv1")
    if batchnorm:
        h = g.batchnorm(h, name="bn1")
    h = g.max_pool2d(g.relu(h, name="relu1"), 2, name="pool1")
    h2 = g.relu(g.conv2d(h, 4, 3, pad=1, name="conv2"), name="relu2")
    h = g.add(h, h2, name="skip")
    if dropout:
        h = g.dropout(h, p=dropout, name="drop1")
    g.softmax_cross_entropy(g.affine(h, classes, name="scores"), y)
    return g


def tiny_data(n, shape, classes=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n,) + tuple(shape)).astype(dtype)
    y = rng.integers(0, classes, n)
    return {"X_train": X, "y_train": y, "X_val": X[: max(2, n // 5)], "y_val": y[: max(2, n // 5)]}


def run_python(code_or_args, env=None, timeout=120, **kw):
    """Run `python -c code` (str) or `python args...` (list) from the repo root."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout, **kw)
