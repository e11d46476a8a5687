"""The direct convolution (ops/direct.py, _kernels/direct.*) against the loop reference, in
float64 and float32, for every kernel variant this CPU runs; bitwise the same for any thread
count; the rule that picks it; the conv2d op's gradients and a planned model through it."""
import numpy as np
import pytest

import dagnet
from dagnet import kernels
from dagnet import reference as ref
from dagnet.gradcheck import norm_error
from dagnet.models import resnet_small
from dagnet.ops import direct
from dagnet.ops.pool import maxpool_forward
from tests.ops.harness import check_op

pytestmark = pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")

SHAPES = [  # (N, C, H, W), (F, C, kh, kw), stride, pad
    ((3, 16, 12, 12), (16, 16, 3, 3), (1, 1), (1, 1)),  # resnet_small's block, smaller
    ((2, 16, 12, 12), (32, 16, 3, 3), (2, 2), (1, 1)),  # its downsampling conv
    ((5, 1, 9, 7), (2, 1, 3, 2), (1, 2), (0, 1)),
    ((2, 2, 11, 10), (7, 2, 5, 5), (2, 3), (2, 1)),
    ((17, 4, 6, 6), (3, 4, 2, 2), (2, 2), (0, 0)),
    ((2, 3, 7, 7), (4, 3, 3, 3), (3, 3), (1, 1)),  # stride larger than the kernel's reach
    ((2, 5, 10, 12), (6, 5, 3, 3), (1, 1), (0, 0)),
    ((2, 3, 4, 6), (5, 3, 3, 3), (1, 1), (1, 1)),  # a grid of 32: the narrower last tiles
]
ISAS = list(range(direct.ISA + 1)) if direct._ext is not None else []


def run(x_shape, w_shape, stride, pad, dtype, seed=0, need_dx=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    out, cache = direct.direct_forward(x, w, b, stride, pad)
    dout = rng.standard_normal(out.shape).astype(dtype)
    return (x, w, b, dout), (out, *direct.direct_backward(dout, cache, need_dx))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES)
def test_matches_reference(x_shape, w_shape, stride, pad, dtype, tol, isa, monkeypatch):
    monkeypatch.setattr(direct, "ISA", isa)
    (x, w, b, dout), got = run(x_shape, w_shape, stride, pad, dtype)
    want = (ref.conv_forward(x, w, b, stride, pad), *ref.conv_backward(dout, x, w, stride, pad))
    for name, g, r in zip(("out", "dx", "dw", "db"), got, want):
        assert g.dtype == dtype and g.shape == r.shape, name
        assert norm_error(g, r) < tol, name


@pytest.mark.skipif(direct.ISA < 2, reason="no AVX-512 here")
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES)
def test_dw_wide_kernel_matches_reference(x_shape, w_shape, stride, pad, dtype, tol, monkeypatch):
    """dw on the AVX-512 kernel (tiles of 6 channels, then 3; grids ending in a half vector)
    for every shape, not only the grids of DW_WIDE_MIN_GRID positions; and DW_WIDE off (the
    AVX2 kernel) the same within rounding."""
    monkeypatch.setattr(direct, "DW_WIDE_MIN_GRID", 0)
    (x, w, b, dout), got = run(x_shape, w_shape, stride, pad, dtype)
    want = ref.conv_backward(dout, x, w, stride, pad)
    for name, g, r in zip(("dx", "dw", "db"), got[1:], want):
        assert norm_error(g, r) < tol, name
    monkeypatch.setattr(direct, "DW_WIDE", False)
    narrow = run(x_shape, w_shape, stride, pad, dtype)[1]
    assert norm_error(narrow[2], got[2]) < tol
    np.testing.assert_array_equal(narrow[1], got[1])  # dx: the same kernel


DWT_SHAPES = SHAPES + [
    ((2, 3, 9, 8), (80, 3, 3, 3), (1, 1), (1, 1)),  # AVX-512: a tile of 4 vectors, then 2
    ((3, 32, 6, 6), (64, 32, 3, 3), (2, 2), (1, 1)),  # resnet20's 32 -> 64 stride 2, smaller
    # dout's transpose (direct.h dc_transpose_f): 16 x 16 blocks, then 4 channels and 3
    # positions (7 x 5) past them
    ((2, 4, 7, 5), (20, 4, 3, 3), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", DWT_SHAPES)
def test_dw_by_channels_matches_reference(x_shape, w_shape, stride, pad, dtype, tol, isa,
                                          monkeypatch):
    """dw on dc_dwt (vectorised along the output channels) for every variant and shape, any
    number of filters (zeros past them to whole vectors); dx and db as the reference's."""
    monkeypatch.setattr(direct, "ISA", isa)
    monkeypatch.setattr(direct, "DWT_MIN_ISA", 0)
    monkeypatch.setattr(direct, "DWT_MIN_FILTERS", 0)
    monkeypatch.setattr(direct, "DWT_MIN_TAPS", 0)
    modes, backward = [], direct._ext.backward

    def spy(*args):
        modes.append(args[-1])
        return backward(*args)
    monkeypatch.setattr(direct._ext, "backward", spy)
    (x, w, b, dout), got = run(x_shape, w_shape, stride, pad, dtype)
    assert modes == [True]
    want = ref.conv_backward(dout, x, w, stride, pad)
    for name, g, r in zip(("dx", "dw", "db"), got[1:], want):
        assert g.dtype == dtype and g.shape == r.shape, name
        assert norm_error(g, r) < tol, name
    monkeypatch.setattr(direct, "DW_CHANNELS", False)
    other = run(x_shape, w_shape, stride, pad, dtype)[1]
    assert modes == [True, False]
    np.testing.assert_array_equal(other[3], got[3])  # db: the same sums in the same order
    assert norm_error(other[2], got[2]) < tol


def test_rule_picks_dw_by_channels_past_one_vector_of_filters_with_many_taps(monkeypatch):
    assert direct.uses_dwt((32, 32, 3, 3), direct.AVX512)
    assert direct.uses_dwt((17, 16, 3, 3), direct.AVX512)
    # 16 filters, one vector: a broadcast per multiply-add
    assert not direct.uses_dwt((16, 32, 3, 3), direct.AVX512)
    assert not direct.uses_dwt((64, 64, 3, 3), 1)  # AVX2
    # few taps a filter do not pay for dout's transpose: LeNet's conv1, 1 -> 32 3 x 3, 8 -> 64
    assert not any(direct.uses_dwt(s, direct.AVX512)
                   for s in ((20, 1, 5, 5), (32, 1, 3, 3), (64, 8, 3, 3)))
    monkeypatch.setattr(direct, "DW_WIDE", False)  # DW_WIDE off: AVX2's dw, as before
    assert not direct.uses_dwt((32, 32, 3, 3), direct.AVX512)


def test_no_dx_keeps_dw_db():
    _, (_, dx, dw, db) = run(*SHAPES[0], np.float64)
    _, (_, none, dw2, db2) = run(*SHAPES[0], np.float64, need_dx=False)
    assert dx is not None and none is None
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES[:2] + SHAPES[4:5])
def test_bitwise_same_for_any_thread_count(x_shape, w_shape, stride, pad, monkeypatch):
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        results.append(run(x_shape, w_shape, stride, pad, np.float32)[1])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(direct.ISA < 2, reason="this CPU runs no AVX-512")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx512_products_bitwise_avx2s(dtype, monkeypatch):
    """dc_gemm's AVX-512 tiles (the forward and dx's products) give bitwise the AVX2 tiles'
    values, for grids ending in every tail: 0-5 whole vectors after the 6-vector tiles, with
    and without the last half vector."""
    lanes = direct._ext.lanes(2, dtype == np.float64)  # AVX2's: the grid's rounding
    monkeypatch.setattr(direct, "DW_WIDE", False)  # dw's own AVX-512 tiles sum other lanes
    tails = set()
    for wd in range(1, 41):
        x_shape, w_shape = (2, 3, 3, wd), (5, 3, 3, 3)
        qr = direct.geometry(x_shape[1:], w_shape, (1, 1), (1, 1), lanes).qr // lanes
        tails.add((qr % 12 // 2, qr % 2))
        results = []
        for isa in (1, 2):
            monkeypatch.setattr(direct, "ISA", isa)
            results.append(run(x_shape, w_shape, (1, 1), (1, 1), dtype, seed=wd)[1])
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)
    assert tails == {(v, h) for v in range(6) for h in (0, 1)}


@pytest.mark.skipif(direct.ISA < 2, reason="this CPU runs no AVX-512")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES)
def test_avx512_products_bitwise_same_as_avx2(x_shape, w_shape, stride, pad, dtype, monkeypatch):
    # direct.h's AVX-512 dc_gemm (forward and input gradient) sums each output as the AVX2
    # one does, over twice the lanes and with a half-vector tail: the same bits
    monkeypatch.setattr(direct, "DW_WIDE", False)  # dw's own AVX-512 tiles sum other lanes
    results = []
    for isa in (1, 2):
        monkeypatch.setattr(direct, "ISA", isa)
        results.append(run(x_shape, w_shape, stride, pad, dtype)[1])
    for name, a, b in zip(("out", "dx", "dw", "db"), *results):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_rule_picks_few_channel_convs_with_little_waste(monkeypatch):
    assert direct.uses_direct((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1))
    assert direct.uses_direct((16, 28, 28), (32, 16, 3, 3), (2, 2), (1, 1))
    assert not direct.uses_direct((16, 28, 28), (32, 16, 1, 1), (2, 2), (0, 0))  # 1x1: a copy
    assert not direct.uses_direct((6, 12, 12), (16, 6, 5, 5), (1, 1), (0, 0))  # LeNet conv2
    monkeypatch.setattr(direct, "ENABLED", False)
    assert not direct.uses_direct((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1))


@pytest.mark.parametrize("filters", [4, 24])  # 24: dw by channels where the CPU has AVX-512
def test_conv2d_op_gradients_through_direct(filters):
    rng = np.random.default_rng(0)
    shape, w_shape = (2, 3, 12, 12), (filters, 3, 3, 3)
    assert direct.uses_direct(shape[1:], w_shape, (1, 1), (1, 1))
    check_op("conv2d", [rng.standard_normal(shape), rng.standard_normal(w_shape),
                        rng.standard_normal(filters)], {"pad": 1})


def test_planned_resnet_small_same_as_im2col(monkeypatch):
    """A compiled plan builds the planes in its planned workspace; its loss and gradients
    equal the im2col plan's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 28, 28))
    y = rng.integers(0, 10, 4)
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(direct, "ENABLED", enabled)
        plan = dagnet.compile(resnet_small(), seed=0, dtype=np.float64)
        results.append(plan.loss_and_grads(x, y))
    (loss, grads), (loss2, grads2) = results
    assert abs(loss - loss2) < 1e-12
    for k in grads:  # a conv bias before batchnorm has zero gradient: rounding noise alone
        np.testing.assert_allclose(grads[k], grads2[k], rtol=1e-10, atol=1e-13, err_msg=k)


def _forward(x, w, b, stride, pad, rows, threads, relu=False, res=None, pool=None):
    """direct._ext.forward with `rows` rows of planes (N: kept; fewer: one per thread)."""
    dtype = x.dtype
    geo = direct.geometry(x.shape[1:], w.shape, stride, pad, direct._ext.lanes(direct.ISA, dtype == np.float64))
    ho, wo = geo.ho, geo.wo
    if pool is not None:
        ho, wo = (ho - pool[0]) // pool[2] + 1, (wo - pool[1]) // pool[3] + 1
        pool = (geo.ho, geo.wo, *pool)
    out = np.full((x.shape[0], w.shape[0], ho, wo), np.nan, dtype)
    direct._ext.forward(x, np.full((rows, geo.size), np.nan, dtype), geo.slot, geo.off,
                        *direct.packed(w, b, dtype), np.empty((threads, w.shape[0] * geo.qr), dtype),
                        out, *stride, *pad, geo.hq, geo.wq, geo.qr, direct.ISA, threads, res, relu,
                        pool)
    return out


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES)
def test_planes_per_thread_same_as_kept(x_shape, w_shape, stride, pad, dtype, isa, monkeypatch):
    """Inference's planes, one row per thread reused, give bitwise the output of the batch's
    kept planes, with each epilogue (rows of any width: whole vectors, the last overlapping,
    or value by value), and match the loop reference."""
    monkeypatch.setattr(direct, "ISA", isa)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    want = ref.conv_forward(x, w, b, stride, pad)
    res = rng.standard_normal(want.shape).astype(dtype)
    n = x_shape[0]
    for relu, r in ((False, None), (True, None), (True, res), (False, res)):
        kept = _forward(x, w, b, stride, pad, n, 2, relu, r)
        z = want + (r if r is not None else 0)
        assert norm_error(kept, np.maximum(z, 0) if relu else z) < (1e-6 if dtype == np.float32 else 1e-13)
        for threads in (1, 2):
            np.testing.assert_array_equal(_forward(x, w, b, stride, pad, threads, threads, relu, r), kept)


def test_too_few_planes_rows_refused():
    x = np.zeros((5, 2, 6, 6), np.float32)
    w, b = np.zeros((3, 2, 3, 3), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="disagree"):
        _forward(x, w, b, (1, 1), (1, 1), 1, 2)  # fewer rows than samples and threads


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [(2, 2, 2, 2), (2, 3, 2, 3)])
def test_pooled_output_pass_matches_numpy(pool, dtype, isa, monkeypatch):
    """The pooled output pass (LeNet's conv + relu + 2x2 pool; 2-wide windows in vectors,
    even against odd values, the row's rest value by value) against numpy, NaN winning its
    window and kept by relu, for rows of several vectors and a tail."""
    monkeypatch.setattr(direct, "ISA", isa)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 40, 46)).astype(dtype)  # conv output 38 x 44: 22 windows a row
    x[1, 0, 7, 9] = np.nan
    w, b = rng.standard_normal((5, 2, 3, 3)).astype(dtype), rng.standard_normal(5).astype(dtype)
    res = rng.standard_normal((3, 5, 38, 44)).astype(dtype)
    kh, kw, sh, sw = pool
    for r in (None, res):
        got = _forward(x, w, b, (1, 1), (0, 0), 2, 2, True, r, pool)
        z = ref.conv_forward(x, w, b, (1, 1), (0, 0)) + (r if r is not None else 0)
        hp, wp = (38 - kh) // sh + 1, (44 - kw) // sw + 1
        win = np.stack([z[:, :, i:i + sh * hp:sh, j:j + sw * wp:sw] for i in range(kh) for j in range(kw)])
        want = np.maximum(win.max(axis=0), 0)  # np.max and np.maximum keep NaN
        assert got.shape == want.shape and np.isnan(want).any()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        assert norm_error(got[ok], want[ok]) < (1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.skipif(direct._ext is None or not direct._ext.pools_argmax(), reason="no argmax pool")
@pytest.mark.parametrize("x_shape,w_shape", [((3, 13, 13), (8, 3, 3, 3)),
                                             ((32, 14, 14), (32, 32, 3, 3))])  # direct_oc1.py's
def test_pool_option_is_the_pool_of_the_output(x_shape, w_shape):
    """direct_forward(pool=True) (ops/direct_pool.py's read-out): the 2 x 2 stride-2 maxima and
    argmax of direct_forward's output by pool.pyx, bit for bit, NaN included; on dc_gemm also
    for a conv that direct_oc1.py takes without the pool."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, *x_shape)).astype(np.float32)
    x[1, 0, 5, 6] = np.nan
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    want, cache = maxpool_forward(direct.direct_forward(x, w, b, (1, 1), (1, 1))[0], 2, 2, 0)
    got, _, argmax = direct.direct_forward(x, w, b, (1, 1), (1, 1), pool=True)
    assert np.isnan(want).any() and got.tobytes() == want.tobytes()
    np.testing.assert_array_equal(argmax, cache[0])
