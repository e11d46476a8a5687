"""The im2col convs by blocks of samples (ops/conv_blocks.py, dagnet/blocks.py), in both column
layouts: the reference's numbers, float64 gradients, PyTorch's, the unblocked products', and
bitwise the same for any thread count."""
import threading

import numpy as np
import pytest

from dagnet import blocks, kernels, reference
from dagnet.gradcheck import numerical_gradient
from dagnet.ops import conv as conv_module
from dagnet.ops import conv_blocks, direct
from dagnet.ops.conv import conv_backward, conv_forward, grad_buffer


@pytest.fixture(params=["KNP", "NKP"])
def columns(request, monkeypatch):
    """Every conv by im2col columns of one layout (the batch GEMM's or per sample), in blocks
    of about 3 samples of 4 x 4 (several blocks and a shorter last one)."""
    monkeypatch.setattr(direct, "ENABLED", False)
    monkeypatch.setattr(conv_module, "BATCH_GEMM_BELOW", 10**9 if request.param == "KNP" else 0)
    monkeypatch.setattr(conv_blocks, "BLOCK_COLUMNS", 48)
    return request.param


def inputs(n, c, h, f, k, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, h)).astype(dtype),
            rng.standard_normal((f, c, k, k)).astype(dtype),
            rng.standard_normal(f).astype(dtype))


def run(x, w, b, stride, pad, dout, laid, need_dx=True, contiguous=True):
    out, cache = conv_forward(x, w, b, stride, pad, contiguous=contiguous)
    if laid:
        d = grad_buffer(cache, dout.shape, dout.dtype)
        d[...] = dout
    else:
        d = dout
    return (np.ascontiguousarray(out), *conv_backward(d, cache, need_dx=need_dx)), cache


CASES = [((7, 3, 6, 4, 3), 1, 1), ((7, 3, 6, 4, 3), 2, 1), ((5, 4, 8, 6, 1), 2, 0),
         ((1, 2, 5, 3, 3), 1, 0)]


@pytest.mark.parametrize("laid", [False, True], ids=["nchw-dout", "gemm-layout-dout"])
@pytest.mark.parametrize("shape,stride,pad", CASES)
def test_blocked_conv_matches_the_reference(columns, shape, stride, pad, laid):
    n, c, h, f, k = shape
    x, w, b = inputs(n, c, h, f, k)
    out, cache = conv_forward(x, w, b, stride, pad)
    assert cache[1] == columns
    np.testing.assert_allclose(out, reference.conv_forward(x, w, b, stride, pad), atol=1e-12)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    got, _ = run(x, w, b, stride, pad, dout, laid, contiguous=not laid)
    want = reference.conv_backward(dout, x, w, stride, pad)
    for g, r in zip(got[1:], want):
        np.testing.assert_allclose(g, r, atol=1e-11)
    assert run(x, w, b, stride, pad, dout, laid, need_dx=False)[0][1] is None


@pytest.mark.parametrize("shape,stride,pad", CASES[:3])
def test_blocked_and_batch_gemm_agree_in_float32(columns, shape, stride, pad, monkeypatch):
    n, c, h, f, k = shape
    x, w, b = inputs(n, c, h, f, k, np.float32)
    dout = np.random.default_rng(2).standard_normal(
        conv_forward(x, w, b, stride, pad)[0].shape).astype(np.float32)
    new = run(x, w, b, stride, pad, dout, True, contiguous=False)[0]
    monkeypatch.setattr(conv_module, "BLOCKED", False)
    old = run(x, w, b, stride, pad, dout, True, contiguous=False)[0]
    for a, o in zip(new, old):
        np.testing.assert_allclose(a, o, rtol=1e-4, atol=1e-4)


def test_blocked_conv_gradients_are_the_numeric_ones(columns):
    x, w, b = inputs(5, 2, 5, 3, 3)
    dout = np.random.default_rng(3).standard_normal((5, 3, 5, 5))

    def loss():
        return float(np.sum(conv_forward(x, w, b, 1, 1)[0] * dout))

    _, dx, dw, db = run(x, w, b, 1, 1, dout, True, contiguous=False)[0]
    for got, arr in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(got, numerical_gradient(loss, arr), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("laid", [False, True])
def test_blocked_conv_is_bitwise_the_same_for_any_thread_count(columns, laid, monkeypatch):
    x, w, b = inputs(11, 3, 6, 5, 3, np.float32)
    dout = np.random.default_rng(4).standard_normal((11, 5, 6, 6)).astype(np.float32)
    first = run(x, w, b, 1, 1, dout, laid, contiguous=not laid)[0]
    for threads in (1, 2, 3, 5):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        for a, a0 in zip(run(x, w, b, 1, 1, dout, laid, contiguous=not laid)[0], first):
            np.testing.assert_array_equal(a, a0)


def test_blocked_conv_matches_torch(columns):
    torch = pytest.importorskip("torch")
    x, w, b = inputs(6, 8, 8, 8, 3)
    out, cache = conv_forward(x, w, b, 1, 1, contiguous=False)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    d = grad_buffer(cache, dout.shape, dout.dtype)
    d[...] = dout
    dx, dw, db = conv_backward(d, cache)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
    yt.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), atol=1e-12)
    for got, t in ((dx, xt), (dw, wt), (db, bt)):
        np.testing.assert_allclose(got, t.grad.numpy(), atol=1e-11)


# -- dagnet/blocks.py ----------------------------------------------------------------------
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_run_calls_every_block_once(threads, monkeypatch):
    monkeypatch.setattr(kernels, "NUM_THREADS", threads)
    seen, lock = [], threading.Lock()

    def fn(i):
        with lock:
            seen.append(i)

    blocks.run(fn, 13)
    assert sorted(seen) == list(range(13))
    blocks.run(fn, 0)
    assert len(seen) == 13


def test_run_raises_a_blocks_error_and_keeps_working(monkeypatch):
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)

    def fn(i):
        if i == 3:
            raise ZeroDivisionError("block 3")

    with pytest.raises(ZeroDivisionError, match="block 3"):
        blocks.run(fn, 8)
    out = np.zeros(8)
    blocks.run(lambda i: out.__setitem__(i, i), 8)
    assert out.tolist() == list(range(8))


def test_run_restores_openblas_threads_and_nests_inline(monkeypatch):
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    blocks.threads_for(2)
    before = [get() for get, _ in blocks._CONTROLS]
    inner = []

    def fn(i):
        if blocks._CONTROLS:
            assert all(get() == 1 for get, _ in blocks._CONTROLS)
        blocks.run(lambda j: inner.append((i, j, threading.get_ident())), 2)

    blocks.run(fn, 4)
    assert [get() for get, _ in blocks._CONTROLS] == before
    # a nested run stays on its block's thread
    for i in range(4):
        assert len({t for a, _, t in inner if a == i}) == 1
    assert len(inner) == 8


@pytest.mark.parametrize("count", [1, 3])
def test_a_one_thread_run_holds_openblas_at_one_thread_too(count, monkeypatch):
    """DAGNET_NUM_THREADS=1 (or a single block) runs the blocks inline, each GEMM still on one
    BLAS thread as on more threads, and gives OpenBLAS its count back."""
    monkeypatch.setattr(kernels, "NUM_THREADS", 1)
    blocks.threads_for(1)
    if not blocks._CONTROLS:
        pytest.skip("no OpenBLAS whose thread count can be set")
    before = [get() for get, _ in blocks._CONTROLS]
    for _, set_threads in blocks._CONTROLS:
        set_threads(2)
    try:
        seen = []
        blocks.run(lambda i: seen.append([get() for get, _ in blocks._CONTROLS]), count)
        assert seen == [[1] * len(blocks._CONTROLS)] * count
        assert [get() for get, _ in blocks._CONTROLS] == [2] * len(blocks._CONTROLS)
    finally:
        for (_, set_threads), n in zip(blocks._CONTROLS, before):
            set_threads(n)


def test_blocks_are_fixed_by_the_shapes():
    assert conv_blocks.parts(64, 64) == [(a, a + 8) for a in range(0, 64, 8)]
    assert len(conv_blocks.parts(64, 256)) == conv_blocks.MAX_BLOCKS  # 4 samples each
    assert conv_blocks.parts(3, 1024) == [(0, 1), (1, 2), (2, 3)]


def test_runs_from_several_threads_give_openblas_its_count_back(monkeypatch):
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    blocks.threads_for(2)
    before = [get() for get, _ in blocks._CONTROLS]
    x = np.random.default_rng(0).standard_normal((64, 64))
    results = {}

    def caller(k):
        out = np.empty((16, 64, 64))
        for _ in range(20):
            blocks.run(lambda i: np.matmul(x, x, out=out[i]), 16)
        results[k] = out

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [get() for get, _ in blocks._CONTROLS] == before
    for out in results.values():
        np.testing.assert_allclose(out, np.broadcast_to(x @ x, out.shape), rtol=1e-12)


def test_spans_cover_the_batch_in_order():
    assert blocks.spans(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert blocks.spans(2, 0) == [(0, 1), (1, 2)]
    assert blocks.spans(0, 4) == []
