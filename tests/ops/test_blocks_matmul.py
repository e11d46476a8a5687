"""blocks.matmul, the affine layers' one-thread GEMMs (dagnet/blocks.py): numpy's product,
whole or by row blocks, into a given array, from transposed views, bitwise the same for any
thread count, and OpenBLAS's thread count given back."""
import numpy as np
import pytest

from dagnet import blocks, kernels
from dagnet.ops.dense import affine_backward, affine_forward


@pytest.fixture(params=["whole", "blocks"])
def path(request, monkeypatch):
    """Products of a few thousand multiply-adds: whole (one piece, one BLAS thread) or, with
    SERIAL_MACS lowered, in blocks of rows or columns over the threads (a shorter last block
    included)."""
    monkeypatch.setattr(blocks, "SERIAL_MACS", 10**9 if request.param == "whole" else 500)
    monkeypatch.setattr(blocks, "MIN_BLOCK_SIDE", 2)
    return request.param


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("m,k,n", [(13, 20, 7), (2, 300, 5), (1, 9, 4), (40, 3, 11),
                                   (5, 30, 60), (3, 40, 1)])  # by columns; one column
def test_matmul_is_numpys_product(path, m, k, n, dtype, tol):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    got = blocks.matmul(a, b)
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=tol, atol=tol)


def test_matmul_writes_into_out_and_reads_transposed_views(path):
    rng = np.random.default_rng(1)
    x, d = rng.standard_normal((33, 17)), rng.standard_normal((33, 6))
    out = np.full((17, 6), np.nan)
    assert blocks.matmul(x.T, d, out=out) is out  # affine's dw: x2.T @ dout
    np.testing.assert_allclose(out, x.T @ d, rtol=1e-12, atol=1e-12)
    w = rng.standard_normal((17, 6))
    np.testing.assert_allclose(blocks.matmul(d, w.T), d @ w.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_is_bitwise_the_same_for_any_thread_count(path, dtype, monkeypatch):
    rng = np.random.default_rng(2)
    for m, n in ((64, 30), (20, 90)):  # by rows, by columns
        a = rng.standard_normal((m, 150)).astype(dtype)
        b = rng.standard_normal((150, n)).astype(dtype)
        results = []
        for threads in (1, 2, 3):
            monkeypatch.setattr(kernels, "NUM_THREADS", threads)
            results.append(blocks.matmul(a, b))
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])


def test_matmul_gives_openblas_its_thread_count_back(path, monkeypatch):
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    blocks.threads_for(2)
    before = [get() for get, _ in blocks._CONTROLS]
    blocks.matmul(np.ones((40, 30)), np.ones((30, 20)))
    assert [get() for get, _ in blocks._CONTROLS] == before


def test_affine_by_blocks_matches_the_plain_products(path):
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((9, 2, 5)), rng.standard_normal((10, 4)), rng.standard_normal(4)
    out, cache = affine_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(9, -1) @ w + b, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal((9, 4))
    dx, dw, db = affine_backward(dout, cache)
    np.testing.assert_allclose(dx, (dout @ w.T).reshape(x.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, x.reshape(9, -1).T @ dout, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dout.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_blocks_are_at_least_min_block_side_wide(monkeypatch):
    """A product split into blocks splits its longer side into at most MAX_BLOCKS pieces of
    at least MIN_BLOCK_SIDE (the three-layer convnet's fc1: 100 columns in 2 blocks, not 8 of
    13); one too narrow for two blocks runs whole."""
    calls = []
    real_run = blocks.run
    monkeypatch.setattr(blocks, "run", lambda fn, count: (calls.append(count), real_run(fn, count)))
    rng = np.random.default_rng(3)
    for (m, k, n), want in (((64, 8192, 100), 2), ((64, 100, 8192), 8), ((8192, 64, 100), 8),
                            ((64, 70000, 90), None)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        calls.clear()
        np.testing.assert_allclose(blocks.matmul(a, b), a @ b, rtol=1e-4, atol=1e-3)
        assert calls == ([] if want is None else [want])


def test_eval_mode_affine_splits_into_evals_wider_blocks(monkeypatch):
    """The affine op in eval mode splits its product into blocks at least
    EVAL_MIN_BLOCK_SIDE wide (LeNet's fc1 at batch 256: 2 blocks of 250 columns, not 8 of
    63), in train mode MIN_BLOCK_SIDE wide; the numbers are the product's either way."""
    calls = []
    real_run = blocks.run
    monkeypatch.setattr(blocks, "run", lambda fn, count: (calls.append(count), real_run(fn, count)))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((256, 50, 4, 4)).astype(np.float32)
    w, b = rng.standard_normal((800, 500)).astype(np.float32), np.zeros(500, np.float32)
    want = x.reshape(256, -1).astype(np.float64) @ w
    for mode, count in (("eval", 500 // blocks.EVAL_MIN_BLOCK_SIDE), ("train", 8)):
        calls.clear()
        got, _ = affine_forward(x, w, b, mode=mode)
        assert calls == [count]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert blocks.EVAL_MIN_BLOCK_SIDE > blocks.MIN_BLOCK_SIDE
