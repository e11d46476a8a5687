"""The fused conv + relu + max-pool in row layout (dagnet/_kernels/convpool.pyx,
ops/convpool.py): each kernel against its numpy version or the unfused ops, and the fused op's
two kernels against the unfused chain."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph, blocks, kernels
from dagnet.gradcheck import norm_error
from dagnet.ops import convpool
from dagnet.ops import fused as fused_module
from dagnet.ops.base import as_pair
from dagnet.ops.conv import conv_forward, window_out_size
from dagnet.ops.pool import maxpool_backward, maxpool_forward
from dagnet.relu_grad import relu_grad
from tests.compiler import nets
from tests.ops.test_kernels import CONV_CASES

POOLS = [(2, 2, 0), (3, 2, 1), (2, 1, 0), ((2, 3), (1, 2), (1, 1))]  # size, stride, pad


def geometry(x_shape, w_shape, stride, pad):
    ksize, stride, pad = tuple(w_shape[2:]), as_pair(stride), as_pair(pad)
    return ksize, stride, pad, window_out_size(x_shape, ksize, stride, pad)


def numpy_kernels(monkeypatch):
    monkeypatch.setattr(kernels, "HAVE_CYTHON", False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_im2row_is_im2col_transposed(x_shape, w_shape, stride, pad, dtype, monkeypatch):
    x = np.random.default_rng(0).standard_normal(x_shape).astype(dtype)
    ksize, stride, pad, out_size = geometry(x_shape, w_shape, stride, pad)
    k1 = int(np.prod(w_shape[1:])) + 1
    junk = np.full(x_shape[0] * out_size[0] * out_size[1] * k1 * np.dtype(dtype).itemsize + 64,
                   0xFF, np.uint8)  # NaN bytes: the padding's zeros must be written too
    rows = kernels.im2row(x, ksize, stride, pad, out_size, ones_row=True, buffer=junk)
    assert np.shares_memory(rows, junk)
    cols = kernels.im2col(x, ksize, stride, pad, out_size, ones_row=True)
    np.testing.assert_array_equal(rows, cols.transpose(0, 2, 1))
    numpy_kernels(monkeypatch)
    np.testing.assert_array_equal(kernels.im2row(x, ksize, stride, pad, out_size, True), rows)


def channels_last(planes):
    """(N, C, H, W) -> the (N, H*W, C) layout of the GEMM's output in row layout."""
    n, c = planes.shape[:2]
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1).reshape(n, -1, c))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("size,stride,pad", POOLS)
def test_maxpool_rows_matches_the_planar_pool(size, stride, pad, relu, monkeypatch):
    monkeypatch.setattr(kernels, "POOL_OUTPUTS_PER_THREAD", 1)  # every thread, even here
    x = np.round(np.random.default_rng(0).standard_normal((3, 5, 8, 9)) * 2)  # many ties
    x[0, 1, 2, 3] = x[2, 4, 5, 5] = x[2, 4, 4, 4] = np.nan
    k, s, p = as_pair(size), as_pair(stride), as_pair(pad)
    out_size = window_out_size(x.shape, k, s, p)
    want, argmax = maxpool_forward(x, size, stride, pad)
    want = np.maximum(want, 0) if relu else want  # maximum keeps NaN, as the kernel must
    got, got_arg = kernels.maxpool_rows(channels_last(x), x.shape[2:], k, s, p, out_size, relu)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_arg, argmax[0])
    numpy_kernels(monkeypatch)
    got_np, arg_np = kernels.maxpool_rows(channels_last(x), x.shape[2:], k, s, p, out_size, relu)
    np.testing.assert_array_equal(got_np, want)
    np.testing.assert_array_equal(arg_np, argmax[0])


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("size,stride,pad", POOLS)
@pytest.mark.parametrize("x_shape,w_shape,cstride,cpad", CONV_CASES[:6] + CONV_CASES[8:9])
def test_sparse_backward_matches_the_dense_one(x_shape, w_shape, cstride, cpad, size, stride,
                                               pad, dtype, tol, need_dx, threads, monkeypatch):
    """The kernel visits only each window's argmax (and skips relu's zeros); the numpy version
    scatters the gradient to the full conv output and runs the dense GEMMs and col2im."""
    conv = geometry(x_shape, w_shape, cstride, cpad)
    pool = (as_pair(size), as_pair(stride), as_pair(pad))
    if min(window_out_size(conv[3], *pool)) < 1 or min(pool[0]) > min(conv[3]):
        pytest.skip("the pool does not fit the conv output")
    monkeypatch.setattr(kernels, "NUM_THREADS", threads)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w2 = rng.standard_normal((w_shape[0], int(np.prod(w_shape[1:])))).astype(dtype)
    rows = kernels.im2row(x, *conv, ones_row=True)
    y = (rows[:, :, :-1] @ w2.T).astype(dtype)  # the conv output, channels-last
    out, argmax = kernels.maxpool_rows(y, conv[3], *pool, window_out_size(conv[3], *pool), True)
    g = (rng.standard_normal(out.shape) * (out > 0)).astype(dtype)  # relu's zeros included
    dx, dwb = kernels.conv_pool_backward(g, argmax, rows, w2, x_shape, conv, pool, need_dx)
    numpy_kernels(monkeypatch)
    dx0, dwb0 = kernels.conv_pool_backward(g, argmax, rows, w2, x_shape, conv, pool, need_dx)
    assert dwb.dtype == dtype and norm_error(dwb, dwb0) < tol
    if need_dx:
        assert dx.dtype == dtype and dx.shape == x_shape and norm_error(dx, dx0) < tol
    else:
        assert dx is None and dx0 is None


def conv_relu_pool_net(c, hw, filters, size, conv_stride, conv_pad, pool):
    g = Graph("crp")
    x = g.input("x", (c, hw, hw))
    y = g.input("y", (), dtype="int64")
    h = g.conv2d(x, filters=filters, size=size, stride=conv_stride, pad=conv_pad, name="conv")
    h = g.max_pool2d(g.relu(h, name="relu"), size=pool[0], stride=pool[1], pad=pool[2],
                     name="pool")
    h = g.conv2d(h, filters=3, size=1, name="conv_b")  # conv gets a gradient for its input
    h = g.max_pool2d(g.relu(h, name="relu_b"), size=1, name="pool_b")
    g.softmax_cross_entropy(g.affine(h, 4, name="fc"), y)
    return g


@pytest.mark.parametrize("rows_from", [0, 10**9], ids=["rows", "columns"])
@pytest.mark.parametrize("net", [
    (1, 12, 4, 5, 1, 0, (2, 2, 0)),   # LeNet's conv1 shape, smaller
    (3, 9, 5, 3, 1, 1, (3, 2, 1)),    # overlapping, padded windows
    (2, 11, 3, 3, 2, 1, (2, 1, 0)),   # strided conv, stride-1 pool
    (8, 8, 32, 3, 1, 1, (2, 2, 0)),   # K = 72, F = 32: the rows path by default
])
def test_fused_conv_relu_pool_matches_unfused(net, rows_from, monkeypatch):
    """Both kernels of the fused op give the unfused chain's loss and gradients (float64,
    1e-10), run by the plan with its planned buffers."""
    monkeypatch.setattr(fused_module.ConvReLUPool, "ROWS_FROM", rows_from)
    if rows_from == 0:  # the rows kernel, also where the direct kernels' planes would win
        monkeypatch.setattr(fused_module.ConvReLUPool, "on_planes", staticmethod(lambda *a: False))
    g = conv_relu_pool_net(*net)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((5, net[0], net[1], net[1])), "y": rng.integers(0, 4, 5)}
    a = dagnet.compile(g, dtype="float64", seed=1)
    b = dagnet.compile(g, dtype="float64", seed=1, fuse=False)
    assert "conv2d+relu+max_pool2d" in {s.pattern for s in a.steps}
    for _ in range(2):  # again on the same planned buffers
        nets.assert_plans_agree(a, b, feeds)


def test_rows_path_is_taken_where_it_pays_and_its_workspace_is_planned(monkeypatch):
    monkeypatch.setattr(fused_module.ConvReLUPool, "ROWS_FROM", convpool.ROWS_FROM_BY_ISA["avx2"])
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 8)).astype(np.float32)
    # K = 72, F = 32: 72*32/104 = 22; padded, the conv runs on the direct kernels' planes
    # (its 8 x 8 grid is narrow), where the dense step wins
    plan = dagnet.compile(conv_relu_pool_net(8, 8, 32, 3, 1, 1, (2, 2, 0)), seed=0)
    step = next(s for s in plan.steps if s.pattern == "conv2d+relu+max_pool2d")
    _, (kernel, _) = step.op.forward([x, plan.params["conv.w"], plan.params["conv.b"]], step.attrs)
    assert kernel == "columns" and step.op.kernel_note([(8, 8, 8), (32, 8, 3, 3), (32,)],
                                                       step.attrs).startswith("direct planes")
    g = conv_relu_pool_net(8, 8, 32, 3, 1, 0, (2, 2, 0))  # unpadded: the rows
    plan = dagnet.compile(g, seed=0)
    step = next(s for s in plan.steps if s.pattern == "conv2d+relu+max_pool2d")
    out, cache = step.op.forward([x, plan.params["conv.w"], plan.params["conv.b"]], step.attrs)
    kernel, (rows, *_) = cache
    assert kernel == "rows" and rows.shape == (2, 36, 73)
    w_shape = plan.params["conv.w"].shape
    per_example = step.op.workspace([(8, 8, 8), w_shape, (32,)], out.shape[1:], step.attrs).planned
    assert per_example == rows[0].size  # what the memory plan sets aside is what im2row fills
    want, _ = conv_forward(x, plan.params["conv.w"], plan.params["conv.b"], 1, 0)
    np.testing.assert_allclose(out, maxpool_forward(np.maximum(want, 0), 2, 2, 0)[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("need_dx", [True, False])
def test_windows_of_more_than_256_cells_take_int32_indices(need_dx, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 20, 20))
    w2 = rng.standard_normal((3, 2))                  # a 1x1 conv: the conv output is 20x20
    conv = geometry(x.shape, (3, 2, 1, 1), 1, 0)
    pool = ((17, 17), (1, 1), (0, 0))                 # 289 cells: int32 argmax
    rows = kernels.im2row(x, *conv, ones_row=True)
    y = rows[:, :, :-1] @ w2.T
    out, argmax = kernels.maxpool_rows(y, conv[3], *pool, (4, 4), relu=True)
    assert argmax.dtype == np.int32
    want, _ = maxpool_forward(np.ascontiguousarray(y.reshape(2, 20, 20, 3).transpose(0, 3, 1, 2)),
                              17, 1, 0)
    np.testing.assert_array_equal(out, np.maximum(want, 0))
    g = rng.standard_normal(out.shape) * (out > 0)
    got = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool, need_dx)
    numpy_kernels(monkeypatch)
    for a, b in zip(got, kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool,
                                                    need_dx)):
        if b is not None:
            assert norm_error(a, b) < 1e-12


def test_rows_kernel_choice_follows_patch_size_and_filter_count(monkeypatch):
    monkeypatch.setattr(fused_module.ConvReLUPool, "ROWS_FROM", convpool.ROWS_FROM_BY_ISA["avx2"])
    op = fused_module.ConvReLUPool()
    assert op.uses_rows((50, 20, 5, 5))        # LeNet's conv2: K = 500, F = 50
    assert op.uses_rows((32, 3, 7, 7))         # the three-layer convnet: K = 147, F = 32
    assert not op.uses_rows((20, 1, 5, 5))     # LeNet's conv1: K = 25
    assert not op.uses_rows((16, 16, 3, 3))    # many values per patch, but only 16 filters
    assert not op.uses_rows((512, 1, 3, 3))    # many filters, but 9 values per patch


def test_where_rows_pay_depends_on_the_vector_instructions_that_run(monkeypatch):
    """With AVX2 or AVX-512 the rows pay from K*F/(K + F) = 20 on; with the portable 4-wide
    sums they never paid against the dense GEMMs, so no shape takes them; the op follows
    what this CPU runs, and without the compiled kernels it keeps the columns."""
    assert convpool.rows_from(kernels.ROW_ISAS.index("avx2")) == 20
    assert convpool.rows_from(kernels.ROW_ISAS.index("avx512")) == 20
    assert convpool.rows_from(kernels.ROW_ISAS.index("portable")) == float("inf")
    assert fused_module.ConvReLUPool.ROWS_FROM == convpool.rows_from() == \
        convpool.rows_from(kernels.ROW_ISA)
    monkeypatch.setattr(fused_module.ConvReLUPool, "ROWS_FROM", convpool.rows_from(0))
    op = fused_module.ConvReLUPool()
    assert not any(op.uses_rows(s) for s in [(50, 20, 5, 5), (512, 512, 3, 3), (4096, 64, 7, 7)])
    assert op.kernel_note([(20, 12, 12), (50, 20, 5, 5), (50,)], {}).startswith("im2col")
    monkeypatch.setattr(kernels, "HAVE_CYTHON", False)
    assert convpool.rows_from() == float("inf")


def test_pooled_gradient_reaches_only_the_window_maxima():
    """What the sparse backward relies on: the unfused chain's conv-output gradient is zero
    except at one argmax per window (2x2 windows: a quarter of the outputs at most)."""
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3, 8, 8))
    out, cache = maxpool_forward(y, 2, 2, 0)
    dy = maxpool_backward(rng.standard_normal(out.shape) * (out > 0), cache) * (y > 0)
    assert np.count_nonzero(dy) <= y.size // 4


ISAS = list(range(kernels.ROW_ISA + 1))  # every variant of the sparse sums this CPU runs


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: kernels.ROW_ISAS[i])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_rows_sum_matches_numpy(isa, dtype):
    """Every variant, every length around the vector widths (blocks of 8, 4, 2 and 1 vectors,
    the last partial vector, rows shorter than one vector), summing into Y or over it."""
    from dagnet._kernels import convpool

    rng = np.random.default_rng(isa)
    for n in [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 24, 31, 33, 47, 63, 64, 65, 96, 127, 128, 129,
              255, 256, 257, 501, 512]:
        x = rng.standard_normal((11, n)).astype(dtype)
        counts = rng.integers(0, 6, 9)
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        idx = rng.integers(0, 11, start[-1]).astype(np.int32)
        coef = rng.standard_normal(start[-1]).astype(dtype)
        y0 = rng.standard_normal((9, n)).astype(dtype)
        dense = np.zeros((9, 11))  # the sparse matrix, dense
        np.add.at(dense, (np.repeat(np.arange(9), counts), idx), coef)
        for accumulate in (False, True):
            y = y0.copy()
            convpool.sparse_rows_sum(x, y, start, idx, coef, accumulate, isa)
            want = dense @ x.astype(np.float64) + (y0 if accumulate else 0)
            assert norm_error(y, want) < (1e-6 if dtype == np.float32 else 1e-14), (n, accumulate)


def test_sparse_rows_sum_refuses_bad_input():
    from dagnet._kernels import convpool

    x, y = np.ones((3, 4)), np.zeros((2, 4))
    start, coef = np.array([0, 1, 2], np.int32), np.ones(2)
    with pytest.raises(ValueError, match="not a row of X"):
        convpool.sparse_rows_sum(x, y, start, np.array([0, 3], np.int32), coef, False, 0)
    with pytest.raises(ValueError, match="must not decrease"):
        convpool.sparse_rows_sum(x, y, np.array([0, 2, 1], np.int32), np.zeros(2, np.int32),
                                 coef, False, 0)
    with pytest.raises(ValueError, match="isa 3"):
        convpool.sparse_rows_sum(x, y, start, np.zeros(2, np.int32), coef, False, 3)


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: kernels.ROW_ISAS[i])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("x_shape,w_shape,pad", [
    ((6, 20, 12, 12), (50, 20, 5, 5), 0),  # LeNet's conv2: K + 1 = 501, partial vectors
    ((3, 2, 14, 14), (7, 2, 3, 3), 1),     # 196 conv outputs: dw's product in 4 row chunks
])
def test_sparse_backward_in_every_variant_matches_the_dense_one_and_repeats_bitwise(
        isa, dtype, tol, x_shape, w_shape, pad, monkeypatch):
    """Each variant of the sums, on 2 threads, equals the numpy version, and a second run is
    bitwise the same."""
    monkeypatch.setattr(kernels, "ROW_ISA", isa)
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    x, w2, rows, out, argmax, g, conv, pool = relu_pool_case(x_shape, w_shape, pad, dtype, seed=3)
    g = (g * (out > 0)).astype(dtype)
    dx, dwb = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool)
    dx2, dwb2 = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool)
    assert np.array_equal(dx, dx2) and np.array_equal(dwb, dwb2)
    numpy_kernels(monkeypatch)
    dx0, dwb0 = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool)
    assert norm_error(dwb, dwb0) < tol and norm_error(dx, dx0) < tol


def relu_pool_case(x_shape, w_shape, pad, dtype, seed=5):
    """x, w2, rows, the pooled output with relu, its argmax and a gradient, for a 2x2 pool."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w2 = rng.standard_normal((w_shape[0], int(np.prod(w_shape[1:])))).astype(dtype)
    conv = geometry(x.shape, w_shape, 1, pad)
    pool = ((2, 2), (2, 2), (0, 0))
    rows = kernels.im2row(x, *conv, ones_row=True)
    out, argmax = kernels.maxpool_rows((rows[:, :, :-1] @ w2.T).astype(dtype), conv[3], *pool,
                                       window_out_size(conv[3], *pool), relu=True)
    return x, w2, rows, out, argmax, rng.standard_normal(out.shape).astype(dtype), conv, pool


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_backward_is_bitwise_the_same_for_any_thread_count(dtype, need_dx, monkeypatch):
    """dw | db is summed per chunk of samples fixed by the batch size, then over the chunks in
    order: 1, 2, 3 or 5 threads give the same bits (37 samples: chunks of 3, the last short)."""
    x, w2, rows, out, argmax, g, conv, pool = relu_pool_case((37, 3, 10, 10), (6, 3, 3, 3), 1,
                                                             dtype)
    got = []
    for threads in (1, 2, 3, 5):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        got.append(kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool,
                                              need_dx, mask=out))
    for dx, dwb in got[1:]:
        np.testing.assert_array_equal(dwb, got[0][1])
        if need_dx:
            np.testing.assert_array_equal(dx, got[0][0])


def test_sparse_backward_applies_relus_mask_itself(monkeypatch):
    """mask=out drops the gradients where the pooled output is not > 0 (a NaN output
    included) as relu's backward, relu_grad (+0.0 there, whatever the gradient), does: the
    same bits as the gradient masked beforehand, a NaN gradient at a dead unit included; the
    numpy version agrees."""
    x, w2, rows, out, argmax, g, conv, pool = relu_pool_case((5, 2, 8, 8), (4, 2, 3, 3), 1,
                                                             np.float64)
    out[1, 2, 1, 1] = np.nan
    assert (out <= 0).sum() >= 5  # relu's zeros to mask
    masked = relu_grad(g, out)
    dx, dwb = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool, mask=out)
    dx1, dwb1 = kernels.conv_pool_backward(masked, argmax, rows, w2, x.shape, conv, pool)
    np.testing.assert_array_equal(dwb, dwb1)
    np.testing.assert_array_equal(dx, dx1)
    numpy_kernels(monkeypatch)
    dx0, dwb0 = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool, mask=out)
    assert norm_error(dwb, dwb0) < 1e-12 and norm_error(dx, dx0) < 1e-12
    g[0, 0, 0, 0], out[0, 0, 0, 0] = np.nan, 0.0  # a NaN gradient where relu passed nothing
    _, dwb0 = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool, mask=out)
    monkeypatch.setattr(kernels, "HAVE_CYTHON", True)
    _, dwb = kernels.conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool, mask=out)
    _, dwb1 = kernels.conv_pool_backward(relu_grad(g, out), argmax, rows, w2, x.shape, conv,
                                         pool)
    assert np.isfinite(dwb).all() and np.isfinite(dwb0).all()
    np.testing.assert_array_equal(dwb, dwb1)
    assert norm_error(dwb, dwb0) < 1e-12


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("x_shape,w_shape,pad", [
    ((19, 3, 16, 16), (8, 3, 7, 7), 3),    # the three-layer convnet's conv, smaller: 4 blocks
    ((21, 20, 12, 12), (50, 20, 5, 5), 0),  # LeNet's conv2: 8 samples a block, the last short
])
def test_blocked_forward_matches_the_whole_batch_one_and_any_thread_count(
        x_shape, w_shape, pad, dtype, tol, monkeypatch):
    """The forward by blocks of samples (im2row, GEMM and pool per block) gives the stages
    run over the whole batch (the argmax exactly), the same bits on 1 and 3 threads, and
    the patch rows the backward reads."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    args = (x, w, b, 1, pad, 2, 2, 0)
    monkeypatch.setattr(convpool, "BLOCKED", False)
    want, want_cache = convpool.conv_relu_pool_forward(*args)
    monkeypatch.setattr(convpool, "BLOCKED", True)
    runs = []
    blocks.threads_for(1)  # finds OpenBLAS
    before = [get() for get, _ in blocks._CONTROLS]
    try:
        for threads in (1, 3):  # as a process with DAGNET_NUM_THREADS=threads has them
            monkeypatch.setattr(kernels, "NUM_THREADS", threads)
            for _, set_threads in blocks._CONTROLS:
                set_threads(threads)
            runs.append(convpool.conv_relu_pool_forward(*args))
    finally:
        for (_, set_threads), n in zip(blocks._CONTROLS, before):
            set_threads(n)
    (got, cache), (got3, cache3) = runs
    assert got.dtype == dtype and norm_error(got, want) < tol
    np.testing.assert_array_equal(got, got3)
    np.testing.assert_array_equal(cache[0], want_cache[0])  # the rows
    np.testing.assert_array_equal(cache[1], cache3[1])  # the argmax, on any thread count
    if dtype == np.float64:  # float32 ties may break differently in another summation order
        np.testing.assert_array_equal(cache[1], want_cache[1])
