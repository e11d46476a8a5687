"""The fast kernels (Cython, and their numpy fallbacks) against the loop-based reference."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dagnet import kernels
from dagnet import reference as ref
from dagnet.gradcheck import norm_error
from dagnet.ops.base import as_pair
from dagnet.ops import conv as conv_module
from dagnet.ops.conv import conv_backward, conv_forward
from dagnet.ops.pool import maxpool_backward, maxpool_forward

ROOT = Path(__file__).resolve().parents[2]

CONV_CASES = [  # (x shape, w shape, stride, pad)
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1),
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1),
    ((1, 2, 8, 6), (3, 2, 5, 5), 1, 2),                # batch 1, non-square input
    ((2, 3, 9, 9), (2, 3, 7, 7), 1, 0),
    ((2, 3, 9, 9), (2, 3, 7, 7), 2, 2),
    ((2, 4, 5, 6), (3, 4, 1, 1), 1, 0),                # 1x1
    ((2, 4, 5, 5), (3, 4, 1, 1), 2, 0),
    ((2, 2, 5, 5), (3, 2, 1, 1), 1, 1),                # pad wider than the kernel
    ((2, 2, 7, 9), (3, 2, 3, 5), (2, 1), (1, 2)),      # non-square kernel, stride and pad
    ((1, 1, 6, 6), (2, 1, 3, 3), 2, 0),                # floored: last row/column dropped
    ((3, 3, 11, 10), (5, 3, 3, 2), (1, 2), (0, 1)),
    ((1, 3, 13, 13), (2, 3, 5, 5), 2, 2),
]

POOL_CASES = [  # (x shape, size, stride, pad)
    ((2, 3, 8, 8), 2, 2, 0),                           # the 2x2 fast path
    ((1, 2, 7, 9), 2, 2, 0),                           # fast path, floored odd sizes
    ((2, 2, 9, 9), 3, 3, 0),                           # non-overlapping, general forward
    ((2, 2, 7, 7), 3, 2, 1),                           # overlapping and padded
    ((1, 3, 6, 5), 3, 1, 1),
    ((2, 1, 7, 8), (2, 3), (1, 2), (1, 1)),
    ((1, 1, 5, 5), 5, 1, 2),
    ((1, 1, 20, 20), 17, 1, 0),                        # a 289-cell window: int32 argmax
]


def unique_values(shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.01 - 1.0).reshape(shape).astype(dtype)


def test_cython_extension_is_loaded():
    assert kernels.HAVE_CYTHON, "build the kernels: pip install -e . (or setup.py build_ext --inplace)"
    assert kernels.NUM_THREADS >= 1


@pytest.mark.parametrize("gemm", ["per_sample", "batch"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_conv_matches_reference(x_shape, w_shape, stride, pad, dtype, tol, gemm, monkeypatch):
    monkeypatch.setattr(conv_module, "BATCH_GEMM_BELOW", 0 if gemm == "per_sample" else 10**9)
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1]))
    want = ref.conv_forward(x, w, b, stride, pad)
    dout = rng.standard_normal(want.shape)
    want_grads = ref.conv_backward(dout, x, w, stride, pad)
    out, cache = conv_forward(*(a.astype(dtype) for a in (x, w, b)), stride, pad)
    grads = conv_backward(dout.astype(dtype), cache)
    assert out.dtype == dtype and norm_error(out, want) < tol
    for g, g0 in zip(grads, want_grads):
        assert g.dtype == dtype and norm_error(g, g0) < tol


@pytest.mark.parametrize("layout", ["NKP", "KNP"])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_im2col_col2im_match_numpy_versions(x_shape, w_shape, stride, pad, layout):
    x = np.random.default_rng(0).standard_normal(x_shape)
    ksize, stride, pad = w_shape[2:], as_pair(stride), as_pair(pad)
    out_size = tuple((s + 2 * p - k) // st + 1 for s, k, st, p in zip(x_shape[2:], ksize, stride, pad))
    cols = kernels.im2col(x, ksize, stride, pad, out_size, ones_row=True, layout=layout)
    want = kernels.im2col_numpy(x, ksize, stride, pad, out_size, True)
    np.testing.assert_array_equal(cols if layout == "NKP" else cols.transpose(1, 0, 2), want)
    np.testing.assert_allclose(kernels.col2im(cols, x_shape, ksize, stride, pad, out_size, layout),
                               kernels.col2im_numpy(want, x_shape, ksize, stride, pad, out_size),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape,size,stride,pad", POOL_CASES)
def test_maxpool_matches_reference_and_numpy_version(x_shape, size, stride, pad, dtype):
    x = unique_values(x_shape, dtype=dtype)
    out, cache = maxpool_forward(x, size, stride, pad)
    want = ref.maxpool_forward(x, size, stride, pad)
    np.testing.assert_array_equal(out, want)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dx = maxpool_backward(dout, cache)
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.maxpool_backward(dout, x, size, stride, pad), rtol=1e-6)
    argmax, _, ksize, stride2, pad2, _ = cache
    out_np, argmax_np = kernels.maxpool_forward_numpy(x, ksize, stride2, pad2, out.shape[2:])
    np.testing.assert_array_equal(out_np, out)
    np.testing.assert_array_equal(argmax_np, argmax)
    assert argmax.dtype == (np.uint8 if ksize[0] * ksize[1] <= 256 else np.int32)
    np.testing.assert_allclose(
        kernels.maxpool_backward_numpy(dout, argmax, x.shape, ksize, stride2, pad2), dx, rtol=1e-6)


def test_maxpool_ties_and_nan_agree_with_numpy_version():
    x = np.round(np.random.default_rng(0).standard_normal((2, 3, 8, 8)))  # many ties
    x[0, 0, 2, 3] = x[1, 2, 5, 5] = x[1, 2, 4, 4] = np.nan
    for size, stride, pad in [(2, 2, 0), (3, 1, 1)]:
        out, (argmax, *_) = maxpool_forward(x, size, stride, pad)
        s, st, p = (as_pair(v) for v in (size, stride, pad))
        out_np, argmax_np = kernels.maxpool_forward_numpy(x, s, st, p, out.shape[2:])
        np.testing.assert_array_equal(argmax, argmax_np)
        np.testing.assert_array_equal(out, out_np)  # NaNs in the same places


@pytest.mark.parametrize("size,stride,pad", [(2, 2, 0), (3, 2, 1)])
def test_maxpool_reads_and_writes_planes_in_any_layout(size, stride, pad, monkeypatch):
    """A fused conv pools its GEMM output as it lies, the (N, C, H, W) view of a (C, N, H, W)
    array, and routes the gradient back into such a view: same numbers as contiguous arrays."""
    monkeypatch.setattr(kernels, "POOL_OUTPUTS_PER_THREAD", 1)
    rng = np.random.default_rng(3)
    cnhw = rng.standard_normal((5, 4, 8, 8)).astype(np.float32)
    cnhw[2, 1, 3, 4] = np.nan  # one plane takes the NaN path of the 2x2 kernel
    view = cnhw.transpose(1, 0, 2, 3)
    k, s_, p = as_pair(size), as_pair(stride), as_pair(pad)
    o = tuple((8 + 2 * p[0] - k[0]) // s_[0] + 1 for _ in range(2))
    out_v, arg_v = kernels.maxpool_forward(view, k, s_, p, o)
    out_c, arg_c = kernels.maxpool_forward(np.ascontiguousarray(view), k, s_, p, o)
    np.testing.assert_array_equal(out_v, out_c)
    np.testing.assert_array_equal(arg_v, arg_c)
    assert np.isnan(out_v[1, 2]).any() and not np.isnan(np.delete(out_v[1], 2, axis=0)).any()
    dout = rng.standard_normal(out_v.shape).astype(np.float32)
    dx_buf = np.full((5, 4, 8, 8), np.nan, np.float32)  # every cell must be overwritten
    dx = kernels.maxpool_backward(dout, arg_v, view.shape, k, s_, p, dx=dx_buf.transpose(1, 0, 2, 3))
    assert dx.base is dx_buf or np.shares_memory(dx, dx_buf)
    np.testing.assert_array_equal(dx, kernels.maxpool_backward(dout, arg_c, view.shape, k, s_, p))
    with pytest.raises(ValueError, match="contiguous"):
        kernels.maxpool_backward(dout, arg_v, view.shape, k, s_, p,
                                 dx=np.empty((4, 5, 8, 16), np.float32)[..., ::2])


@pytest.mark.parametrize("batch_gemm_below", [0, 10**9])
def test_kernels_are_deterministic_and_independent_of_thread_count(batch_gemm_below, monkeypatch):
    monkeypatch.setattr(conv_module, "BATCH_GEMM_BELOW", batch_gemm_below)
    monkeypatch.setattr(kernels, "POOL_OUTPUTS_PER_THREAD", 1)  # small pools use every thread too
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((8, 3, 12, 12), (6, 3, 3, 3), (6,)))
    dout = rng.standard_normal((8, 6, 12, 12)).astype(np.float32)

    def run():
        out, cache = conv_forward(x, w, b, 1, 1)
        pooled, pcache = maxpool_forward(out, 3, 1, 1)
        return (out, *conv_backward(dout, cache), pooled, maxpool_backward(dout, pcache))

    first = run()
    for threads in (kernels.NUM_THREADS, 1, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        for a, a0 in zip(run(), first):
            np.testing.assert_array_equal(a, a0)


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=120)


def test_missing_extension_warns_once_and_falls_back_to_numpy():
    code = (
        "import sys, warnings\n"
        "sys.modules['dagnet._kernels.im2col'] = None  # as if it had never been built\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    import numpy as np, dagnet\n"
        "    from dagnet import kernels\n"
        "    import dagnet.kernels\n"
        "    from dagnet.ops import get_op\n"
        "    out, cache = get_op('conv2d').forward([np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)),\n"
        "                                           np.zeros(1)], {'pad': 1})\n"
        "    get_op('conv2d').backward(out, cache, {'pad': 1})\n"
        "    get_op('max_pool2d').forward([out], {'size': 2})\n"
        "msgs = [str(w.message) for w in caught if 'Cython' in str(w.message)]\n"
        "print(kernels.HAVE_CYTHON, len(msgs), out[0, 0, 0, 0], msgs[0])\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    have, count, corner, msg = proc.stdout.split(" ", 3)
    assert (have, count, corner) == ("False", "1", "4.0")
    assert "pip install -e ." in msg


def test_num_threads_from_env():
    proc = run_python("from dagnet import kernels; print(kernels.NUM_THREADS)", DAGNET_NUM_THREADS="3")
    assert proc.stdout.strip() == "3", proc.stderr
    proc = run_python("import dagnet.kernels", DAGNET_NUM_THREADS="zero")
    assert "DAGNET_NUM_THREADS must be a positive integer, got 'zero'" in proc.stderr


@pytest.fixture(params=list(kernels.NORM_VARIANTS) or ["numpy"])
def norm_build(request, monkeypatch):
    """Each build of the batchnorm kernels this CPU runs (kernels.NORM_VARIANTS) in turn."""
    if kernels.NORM_VARIANTS:
        monkeypatch.setattr(kernels, "_norm_ext", kernels.NORM_VARIANTS[request.param])
    return request.param


def test_the_widest_batchnorm_build_the_cpu_runs_serves():
    if not kernels.HAVE_CYTHON:
        pytest.skip("kernels not built")
    want = ["portable", "avx2", "avx512"][:kernels.ROW_ISA + 1]
    if platform.machine() in ("x86_64", "AMD64"):  # setup.py builds them there
        assert list(kernels.NORM_VARIANTS) == want
    assert kernels._norm_ext is list(kernels.NORM_VARIANTS.values())[-1]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("shape,offset", [((3, 2, 5, 7), 0.0), ((2, 3, 1, 3), 0.0),
                                          ((4, 2, 4, 4), 1000.0)],
                         ids=["tail-lanes", "plane-shorter-than-lanes", "far-from-zero"])
@pytest.mark.parametrize("relu,skip", [(False, False), (True, True)], ids=["bn", "bn+add+relu"])
def test_batchnorm_kernels_match_the_loop_reference(dtype, tol, shape, offset, relu, skip,
                                                     norm_build):
    """The compiled kernels (one-pass shifted statistics, sums in eight accumulators, xhat
    recomputed from x in backward) value by value against reference.standardise_rows and its
    Jacobian, per channel: planes whose length is no multiple of the lanes, planes shorter
    than them, and channels whose mean is far from zero (the shift keeps the variance)."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 2 + offset).astype(dtype)
    c = shape[1]
    gamma, beta = (rng.standard_normal(c).astype(dtype) for _ in range(2))
    dout = rng.standard_normal(shape).astype(dtype)
    res = rng.standard_normal(shape).astype(dtype) if skip else None
    mean, var = kernels.bn_stats(x)
    inv_std = 1 / np.sqrt(var.astype(dtype) + dtype(1e-5))
    out = kernels.bn_normalize(x, mean.astype(dtype), inv_std, gamma, beta, relu, skip=res)
    masked = np.empty_like(x) if skip else None
    dx, dgamma, dbeta = kernels.bn_backward(dout, x, mean.astype(dtype), gamma, inv_std,
                                            out if relu else None, masked=masked)

    def rows(a):  # (C, N*H*W) in float64: one row per channel
        return a.astype(np.float64).transpose(1, 0, 2, 3).reshape(c, -1)

    xhat = ref.standardise_rows(rows(x), 1e-5)
    want = gamma[:, None] * xhat + beta[:, None] + (rows(res) if skip else 0)
    want = np.maximum(want, 0) if relu else want
    g = rows(dout) * (want > 0) if relu else rows(dout)
    want_dx = gamma[:, None] * ref.standardise_rows_backward(g, rows(x), 1e-5)
    np.testing.assert_allclose(mean, rows(x).mean(axis=1), rtol=tol)
    np.testing.assert_allclose(var, rows(x).var(axis=1), rtol=tol)
    close = dict(rtol=tol, atol=tol)
    np.testing.assert_allclose(rows(out), want, **close)
    np.testing.assert_allclose(dbeta, g.sum(axis=1), **close)
    np.testing.assert_allclose(dgamma, (g * xhat).sum(axis=1), **close)
    np.testing.assert_allclose(rows(dx), want_dx, **close)
    if skip:
        np.testing.assert_array_equal(rows(masked), g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 3, 5, 7), (2, 4, 1, 3), (16, 2, 14, 14)])
@pytest.mark.parametrize("relu,skip", [(False, False), (True, False), (True, True)],
                         ids=["bn", "bn+relu", "bn+add+relu"])
def test_batchnorm_forward_channel_by_channel_is_the_two_passes_bitwise(dtype, shape, relu,
                                                                        skip, monkeypatch,
                                                                        norm_build):
    """Training's forward (bn_stats_normalize: a channel's statistics, then its
    normalisation, while it is in L2) gives bitwise the statistics, inv_std and output of
    bn_stats, numpy's 1 / sqrt(var + eps) and bn_normalize over the whole batch, for channels
    of variances from 1e-12 to 1e8, at any thread count."""
    if not kernels.HAVE_CYTHON:
        pytest.skip("kernels not built")
    rng = np.random.default_rng(11)
    c = shape[1]
    scale = np.exp(rng.uniform(-14, 9, c)).reshape(1, c, 1, 1)
    x = (rng.standard_normal(shape) * scale + rng.standard_normal((1, c, 1, 1))).astype(dtype)
    gamma, beta = (rng.standard_normal(c).astype(dtype) for _ in range(2))
    res = rng.standard_normal(shape).astype(dtype) if skip else None
    mean, var = (v.astype(dtype) for v in kernels.bn_stats(x))
    inv_std = 1 / np.sqrt(var + dtype(1e-5))
    want = (kernels.bn_normalize(x, mean, inv_std, gamma, beta, relu, skip=res), mean, var,
            inv_std)
    for threads in (1, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        got = kernels.bn_stats_normalize(x, gamma, beta, 1e-5, relu, skip=res)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("relu,skip", [(False, False), (True, False), (True, True)],
                         ids=["bn", "bn+relu", "bn+add+relu"])
def test_batchnorm_kernels_match_their_numpy_versions(dtype, tol, relu, skip, monkeypatch,
                                                      norm_build):
    """Spatial batchnorm (+ relu, + a residual join's skip before it) in the compiled kernels
    against the numpy code of the same formulas; every thread count gives bitwise the same
    numbers."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((5, 3, 6, 7)) * 3 + 1).astype(dtype)
    gamma, beta = (rng.standard_normal(3).astype(dtype) for _ in range(2))
    dout = rng.standard_normal(x.shape).astype(dtype)
    res = rng.standard_normal(x.shape).astype(dtype) if skip else None

    def run():
        mean, var = kernels.bn_stats(x)
        m, v = mean.astype(dtype), var.astype(dtype)
        inv_std = 1 / np.sqrt(v + dtype(1e-5))
        out = kernels.bn_normalize(x, m, inv_std, gamma, beta, relu, skip=res)
        masked = np.full(x.shape, np.nan, dtype) if skip else None
        grads = kernels.bn_backward(dout, x, m, gamma, inv_std, out if relu else None,
                                    masked=masked)
        return (mean, var, out, *grads) + ((masked,) if skip else ())

    fast = run()
    for threads in (1, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        for a, a0 in zip(run(), fast):
            np.testing.assert_array_equal(a, a0)
    # the numpy formulas live in ops/norm.py, which takes them when the kernels are missing
    from dagnet.ops.norm import batchnorm_backward, batchnorm_forward

    monkeypatch.setattr(kernels, "HAVE_CYTHON", False)
    out, cache = batchnorm_forward(x, gamma, beta, "train", None, 1e-5, 0.9, relu=relu,
                                   skip=res)
    masked = np.empty_like(x) if skip else None
    grads = batchnorm_backward(dout, cache, relu_out=out if relu else None, masked=masked)
    assert cache[1] is x  # backward recomputes xhat from x: no normalised copy is kept
    for a, b in zip(fast[2:], (out, *grads) + ((masked,) if skip else ())):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 10)
    if skip:  # the skip's gradient is the relu's: dout where the output is positive
        np.testing.assert_array_equal(fast[-1], dout * (fast[2] > 0))
        xhat = (x - fast[0].astype(dtype).reshape(1, -1, 1, 1)) / np.sqrt(
            fast[1].astype(dtype).reshape(1, -1, 1, 1) + dtype(1e-5))
        np.testing.assert_allclose(fast[2], np.maximum(
            gamma.reshape(1, -1, 1, 1) * xhat + beta.reshape(1, -1, 1, 1) + res, 0),
            rtol=tol, atol=tol * 10)
    mean, var = fast[:2]
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2, 3)), rtol=1e-5)
    if relu:
        assert (fast[2] >= 0).all()


@pytest.mark.skipif(not kernels.HAVE_CYTHON, reason="the compiled kernels are not built")
@pytest.mark.parametrize("hw", [(2, 2), (3, 5), (8, 8), (7, 9), (14, 14), (9, 17), (28, 28),
                                (6, 23)])
def test_maxpool_2x2_vector_loops_are_the_scalar_loops_bitwise(hw):
    """pool2x2.h's SSE2 loops (four windows a step, the row's last four again where the width
    is not a multiple of four) give the scalar loops' bits: maxima, argmax (ties to the first,
    -0.0 against +0.0 included), NaN planes redone, and every dx cell written (+0.0 where no
    window routes), and both agree with the numpy version."""
    from dagnet._kernels import pool as pool_ext

    rng = np.random.default_rng(hw[0] * 31 + hw[1])
    shape = (2, 3, *hw)
    out_size = (hw[0] // 2, hw[1] // 2)
    xs = [rng.standard_normal(shape).astype(np.float32),
          rng.integers(-1, 2, shape).astype(np.float32),                    # many ties
          (rng.integers(0, 2, shape) * 2 - 1).astype(np.float32) * np.float32(0.0)]  # +-0.0
    nan = rng.standard_normal(shape).astype(np.float32)
    nan[0, 1, rng.integers(hw[0]), rng.integers(hw[1])] = np.nan
    xs.append(nan)
    dout = rng.standard_normal((*shape[:2], *out_size)).astype(np.float32)
    dout[..., 0] = -0.0
    old = pool_ext.set_vector(True)
    try:
        for x in xs:
            got = []
            for on in (True, False):
                pool_ext.set_vector(on)
                out, arg = kernels.maxpool_forward(x, (2, 2), (2, 2), (0, 0), out_size)
                dx = np.full(shape, np.nan, np.float32)
                kernels.maxpool_backward(dout, arg, shape, (2, 2), (2, 2), (0, 0), dx=dx)
                got.append((out, arg, dx))
            for a, b in zip(*got):
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
            out_np, arg_np = kernels.maxpool_forward_numpy(x, (2, 2), (2, 2), (0, 0), out_size)
            np.testing.assert_array_equal(got[0][0], out_np)
            np.testing.assert_array_equal(got[0][1], arg_np)
            np.testing.assert_array_equal(got[0][2], kernels.maxpool_backward_numpy(
                dout, arg_np, shape, (2, 2), (2, 2), (0, 0)))
    finally:
        pool_ext.set_vector(old)
