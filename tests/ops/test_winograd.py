"""Winograd F(2x2, 3x3) and F(4x4, 3x3) inference convs (ops/winograd.py, _kernels/
winograd.h, winograd4.h) against the loop reference computed in float64, in float32 and
float64, for every kernel variant this CPU runs: tile grids ending in blocks of 3, 2 and 1
vectors, odd sizes (a last tile part outside), pads 0 to 2 and unequal, channel counts that
fill no whole tile or vector; with the epilogue (+ skip, relu keeping NaN); bitwise the same
for any thread count and batch split; torch's conv2d at float32 tolerances; and
resnet_small's eval program running them.

The tolerance: Winograd's sum is not the direct conv's, so its error is bounded not by
|w| * |x| but by the same transforms on magnitudes: with |.| elementwise,
    bound = |A^T| [sum_c |G| |g| |G^T| * |B^T| |d| |B|] |A| + |b| + |skip|
(each output's float64 sum of the absolute values of every intermediate term), and a sum of
C products after transforms of a few additions each rounds at most (C + 16) times, so
    |got - reference| <= (C + 16) * eps * bound,   eps = 2**-24 (float32) or 2**-53,
the same rule for both tile sizes (F(4x4)'s bound is larger: its transforms' coefficients
reach 8, and G's 1/6 and 1/24 round; test_f4_error_against_f2_and_direct measures it).
"""
import numpy as np
import pytest

from dagnet import reference as ref
from dagnet.ops import direct, winograd
from tests.compiler import nets

pytestmark = pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")

ISAS = list(range(direct.ISA + 1)) if direct._ext is not None else []
SHAPES = [  # (N, C, H, W), F, pad
    ((3, 16, 12, 12), 16, (1, 1)),  # resnet_small's block, smaller
    ((2, 32, 14, 14), 32, (1, 1)),  # resnet_small's 32-channel block: blocks of 3 + 1 vectors
    # (8-wide), one of 4 (16-wide)
    ((1, 8, 20, 20), 8, (1, 1)),  # F(2x2)'s 16-wide grid of 7 vectors: blocks of 4, 2 and 1
    ((2, 8, 28, 28), 16, (1, 1)),  # 28 x 28: 9 whole blocks (AVX2 float)
    ((2, 9, 7, 9), 5, (1, 1)),  # odd sizes: the last tile row and column half outside
    ((2, 8, 6, 5), 7, (0, 0)),  # no padding
    ((1, 10, 3, 3), 3, (0, 0)),  # one output
    ((2, 12, 5, 11), 9, (2, 2)),  # pad 2
    ((2, 8, 9, 10), 6, (1, 0)),  # unequal pads
    ((1, 8, 4, 17), 4, (1, 1)),  # rows of 17: whole vectors, then one value
    ((2, 8, 5, 15), 4, (1, 1)),  # rows of 15: a phase plane of 8 whose last odd value lies
    ((1, 8, 3, 7), 3, (1, 1)),  # past the row at 8 (or 4) lanes: split value by value
    ((1, 3, 9, 250), 2, (1, 1)),  # a channel past winograd.h's padded buffer (WG_PAD): split
    # from the input's rows
    ((1, 8, 27, 27), 6, (0, 0)),  # grids 8 wide (float, AVX-512: wg_grid_out / wg4_grid_out,
    ((2, 9, 26, 28), 5, (1, 1)),  # the read-out in the blocks): F(4x4)'s rows of 25 and 28,
    ((2, 8, 13, 14), 6, (1, 1)),  # F(2x2)'s of 14 and 13, a tile row half outside, filters
    ((1, 8, 15, 15), 5, (0, 0)),  # that fill no tile of 4
]


def data(x_shape, f, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype),
            rng.standard_normal((f, x_shape[1], 3, 3)).astype(dtype),
            rng.standard_normal(f).astype(dtype))


#: (B^T, A^T, G) of F(2x2, 3x3) and F(4x4, 3x3) (winograd.h, winograd4.h)
TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float), winograd.G),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], float), winograd.G4),
}


def winograd_loops(x, w, b, pad, m, absolute=False):
    """F(m x m, 3x3) of x (N, C, H, W) in float64 by the matrices, tile by tile: the conv
    (exact arithmetic: the reference's numbers), or with |.| of every matrix and operand the
    sum of the absolute values of every term of each output (the rounding's scale)."""
    bt, at, g = (np.abs(a) if absolute else a for a in TRANSFORMS[m])
    f = np.abs if absolute else np.asarray
    n, c, h, wd = x.shape
    ho, wo = h + 2 * pad[0] - 2, wd + 2 * pad[1] - 2
    th, tw = -(-ho // m), -(-wo // m)
    xp = np.zeros((n, c, m * th + 2, m * tw + 2))
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = f(x.astype(float))
    d = np.lib.stride_tricks.sliding_window_view(xp, (m + 2, m + 2), axis=(2, 3))[:, :, ::m, ::m]
    v = np.einsum("ik,nctukl,jl->nctuij", bt, d, bt)
    u = np.einsum("ai,fcij,bj->fcab", g, f(w.astype(float)), g)
    p = np.einsum("fcij,nctuij->nftuij", u, v)
    y = np.einsum("ai,nftuij,bj->nftaub", at, p, at).reshape(n, -1, m * th, m * tw)
    return y[:, :, :ho, :wo] + f(b.astype(float))[:, None, None]


def bound(x, w, b, pad, res=None, m=2):
    """The float64 sum of the absolute values of every term of each output's Winograd sum."""
    return winograd_loops(x, w, b, pad, m, absolute=True) + \
        (0 if res is None else np.abs(res.astype(float)))


def assert_within_bound(got, want, x, w, b, pad, res=None, m=2):
    eps = 2.0 ** -24 if got.dtype == np.float32 else 2.0 ** -53
    err = np.abs(got.astype(float) - want)
    tol = (x.shape[1] + 16) * eps * bound(x, w, b, pad, res, m)
    assert (err <= tol).all(), f"worst error / bound {float((err / tol).max()):.3g}"


def test_the_matrices_are_the_conv():
    """The loop form of both tile sizes (the matrices the kernels and bounds use) is the conv."""
    x, w, b = data((2, 3, 9, 7), 4, np.float64)
    want = ref.conv_forward(x, w, b, 1, (1, 1))
    for m in (2, 4):
        np.testing.assert_allclose(winograd_loops(x, w, b, (1, 1), m), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape,f,pad", SHAPES)
def test_matches_reference(x_shape, f, pad, dtype, isa, m):
    x, w, b = data(x_shape, f, dtype)
    want = ref.conv_forward(x.astype(float), w.astype(float), b.astype(float), 1, pad)
    res = np.random.default_rng(1).standard_normal(want.shape).astype(dtype)
    for relu, r in ((False, None), (True, None), (True, res), (False, res)):
        got = winograd.forward(x, w, b, pad, r, relu, isa=isa, m=m)
        z = want + (r if r is not None else 0)
        assert got.dtype == dtype and got.shape == want.shape
        # |max(a, 0) - max(z, 0)| <= |a - z|: relu keeps the bound of the sum under it
        assert_within_bound(got, np.maximum(z, 0) if relu else z, x, w, b, pad, r, m)


@pytest.mark.parametrize("m,x_shape,f,pad", [(4, (2, 16, 28, 28), 16, (1, 1)),
                                             (4, (1, 8, 27, 27), 6, (0, 0)),
                                             (2, (2, 32, 14, 14), 32, (1, 1)),
                                             (2, (1, 8, 15, 15), 5, (0, 0))])
def test_fused_read_out_and_its_own_pass_agree(m, x_shape, f, pad):
    """The read-out fused into the grid's blocks (wg_grid_out, wg4_grid_out, where
    wg_fuses) and as a pass of its own (fused=False) both within the bound, with the skip and
    relu: the same sums; their bits may differ (the compiler schedules each block's
    arithmetic on its own, -ffast-math: measured 1-2 ulps of the sums)."""
    x, w, b = data(x_shape, f, np.float32)
    want = ref.conv_forward(x.astype(float), w.astype(float), b.astype(float), 1, pad)
    res = np.random.default_rng(1).standard_normal(want.shape).astype(np.float32)
    geo = winograd.geometry(x.shape[1:], w.shape, pad, direct.ISA, False, m)
    u, bp = winograd.packed(w, b, np.float32, m)
    assert geo.wq == 8  # the fused grids' width
    for fused in (True, False):
        out = np.full(want.shape, np.nan, np.float32)
        scratch = np.empty((1, geo.scratch), np.float32)
        winograd.kernel(geo)(x, scratch, u, bp, out, *pad, geo.hq, geo.wq, geo.qr, geo.size,
                             direct.ISA, 1, res, True, fused=fused)
        assert_within_bound(out, np.maximum(want + res, 0), x, w, b, pad, res, m)


@pytest.mark.parametrize("m", [2, 4])
def test_the_bound_is_tight_enough_to_fail(m):
    """A wrong result (one filter tap off by 2**-10 of its size; F(4x4)'s bound, ~5x looser,
    by 2**-8) breaks it."""
    x, w, b = data((2, 16, 12, 12), 16, np.float32)
    want = ref.conv_forward(x.astype(float), w.astype(float), b.astype(float), 1, (1, 1))
    w2 = w.copy()
    w2[3, 5, 1, 1] *= 1 + 2.0 ** -(10 if m == 2 else 8)
    got = winograd.forward(x, w2, b, (1, 1), m=m)
    with pytest.raises(AssertionError, match="worst error"):
        assert_within_bound(got, want, x, w, b, (1, 1), m=m)


def test_f4_error_against_f2_and_direct():
    """F(4x4)'s float32 error on resnet_small's 16-channel conv, against the float64 loop
    reference: larger than F(2x2)'s and the direct kernel's (its transforms' coefficients;
    measured: max 3.3e-6 of the outputs' scale against 2.5e-7 and 4.5e-7, median 8e-8
    against 2.5e-8), and its bound ~8x F(2x2)'s (median over the outputs; up to ~50x at a
    tile's last row and column, A^T's 8)."""
    x, w, b = data((2, 16, 28, 28), 16, np.float32)
    want = ref.conv_forward(x.astype(float), w.astype(float), b.astype(float), 1, (1, 1))
    err = {m: np.abs(winograd.forward(x, w, b, (1, 1), m=m) - want).max() for m in (2, 4)}
    err["direct"] = np.abs(direct.direct_forward(x, w, b, (1, 1), (1, 1))[0] - want).max()
    scale = np.abs(want).max()
    assert err["direct"] < 1e-6 * scale and err[2] < 1e-6 * scale
    assert max(err[2], err["direct"]) < err[4] < 1e-5 * scale
    ratio = bound(x, w, b, (1, 1), m=4) / bound(x, w, b, (1, 1), m=2)
    assert 4 < np.median(ratio) < 12 and ratio.max() < 100


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("x_shape,f,pad", SHAPES[:4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_same_for_any_thread_count_and_batch_split(x_shape, f, pad, dtype, m):
    x, w, b = data((5, *x_shape[1:]), f, dtype)
    one = winograd.forward(x, w, b, pad, None, True, threads=1, m=m)
    for threads in (2, 3):
        np.testing.assert_array_equal(winograd.forward(x, w, b, pad, None, True,
                                                       threads=threads, m=m), one)
    parts = [winograd.forward(x[i:j], w, b, pad, None, True, threads=2, m=m)
             for i, j in ((0, 1), (1, 3), (3, 5))]
    np.testing.assert_array_equal(np.concatenate(parts), one)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_f4_nan_reaches_its_tiles(isa, dtype):
    """F(4x4): a NaN input makes NaN every output whose window holds it, and no output of a
    tile whose 6 x 6 input does not hold it (in between: the tiles that read it, winograd4.h);
    relu keeps it; the other outputs are the conv's."""
    x, w, b = data((2, 8, 13, 11), 5, dtype)
    x[1, 2, 5, 6] = np.nan
    got = winograd.forward(x, w, b, (1, 1), None, True, isa=isa, m=4)
    want = np.maximum(ref.conv_forward(x.astype(float), w.astype(float), b.astype(float), 1,
                                       (1, 1)), 0)
    window = np.isnan(want)
    assert window.sum() == 5 * 9 and np.isnan(got[window]).all()
    # padded (row, col) (6, 7) lies in the 6 x 6 inputs of tiles whose rows 4t..4t+5 hold 6
    # (t = 1) and columns 4u..4u+5 hold 7 (u = 1): outputs rows 4..7, columns 4..7
    reach = np.zeros_like(window)
    reach[1, :, 4:8, 4:8] = True
    assert np.isnan(got[~reach]).sum() == 0
    np.testing.assert_allclose(got[~reach], want[~reach], rtol=1e-4, atol=1e-4)
    assert np.isnan(winograd.forward(x[:1], w, b, (1, 1), None, True, isa=isa, m=4)).sum() == 0


@pytest.mark.parametrize("isa", ISAS)
def test_relu_keeps_nan_and_skip_adds(isa):
    x, w, b = data((2, 8, 6, 6), 5, np.float32)
    x[1, 2, 3, 3] = np.nan
    res = np.full((2, 5, 6, 6), -1e3, np.float32)
    got = winograd.forward(x, w, b, (1, 1), res, True, isa=isa, m=2)
    # F(2x2): the transforms add and subtract, never multiply by a zero coefficient: a NaN reaches
    # exactly the outputs whose 3 x 3 window holds it, as in the direct conv
    want = np.maximum(ref.conv_forward(x, w, b, (1, 1), (1, 1)) + res, 0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).sum() == 5 * 9
    assert (got[~np.isnan(got)] == 0).all()


@pytest.mark.parametrize("m", [2, 4])
def test_torch_parity(m):
    torch = pytest.importorskip("torch")
    x, w, b = data((4, 16, 28, 28), 16, np.float32)
    got = winograd.forward(x, w, b, (1, 1), m=m)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                      torch.from_numpy(b), padding=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_geometry_and_packing():
    geo = winograd.geometry((16, 28, 28), (16, 16, 3, 3), (1, 1), 1, False, 2)
    assert (geo.m, geo.ho, geo.wo, geo.hq, geo.wq, geo.qr) == (2, 28, 28, 15, 15, 216)
    assert geo.size == 63 * 225 + 16 + 216  # the last plane, the last tile's reach, the grid
    geo = winograd.geometry((32, 14, 14), (32, 32, 3, 3), (1, 1), 0, True)
    assert (geo.m, geo.hq, geo.wq, geo.qr) == (2, 8, 8, 56)
    # F(4x4): 7 x 7 tiles of 28 x 28, a row and a column of planes more; 16 planes a channel
    geo = winograd.geometry((16, 28, 28), (16, 16, 3, 3), (1, 1), 1, False)
    assert (geo.m, geo.hq, geo.wq, geo.qr) == (4, 8, 8, 56)
    assert geo.size == 255 * 64 + 9 + 56
    u4, _ = winograd.packed(np.ones((4, 1, 3, 3)), np.zeros(4), np.float64, 4)
    assert u4.shape == (36 * 4,)
    assert np.allclose(u4.reshape(6, 6, 4)[..., 0], winograd.G4 @ np.ones((3, 3)) @ winograd.G4.T)
    w = np.random.default_rng(0).standard_normal((5, 2, 3, 3))
    u, bp = winograd.packed(w, np.arange(5.0), np.float64)
    u = u.reshape(16, 2, 2, 4)  # (xi, tile of 4 filters, c, filter in the tile)
    want = winograd.G @ w @ winograd.G.T  # (5, 2, 4, 4)
    assert np.allclose(u[:, 0, :, :].transpose(2, 1, 0).reshape(4, 2, 4, 4), want[:4])
    assert np.allclose(u[:, 1, :, 0].T.reshape(2, 4, 4), want[4])
    assert (u[:, 1, :, 1:] == 0).all() and bp.tolist() == [0, 1, 2, 3, 4, 0, 0, 0]


def test_rule(monkeypatch):
    assert winograd.uses_wino((32, 14, 14), (32, 32, 3, 3), (1, 1), (1, 1))
    assert winograd.tile((32, 14, 14), (1, 1)) == 2  # F(4x4) products 0.80 of F(2x2)'s
    assert winograd.uses_wino((64, 7, 7), (128, 64, 3, 3), (1, 1), (0, 0))
    assert winograd.uses_wino((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1))  # on F(4x4)
    assert winograd.tile((16, 28, 28), (1, 1)) == 4 and winograd.tile((64, 56, 56), (1, 1)) == 4
    assert winograd.tile((8, 28, 28), (1, 1)) == 2  # too few channels
    # too narrow: resnet20's 32-channel 16 x 16 and 64-channel 8 x 8 convs stay on F(2x2)
    assert winograd.tile((32, 16, 16), (1, 1)) == 2 and winograd.tile((64, 8, 8), (1, 1)) == 2
    assert winograd.tile((16, 32, 32), (1, 1)) == 4 and winograd.tile((16, 26, 26), (1, 1)) == 2
    assert not winograd.uses_wino((8, 28, 28), (8, 8, 3, 3), (1, 1), (1, 1))
    assert not winograd.uses_wino((16, 14, 14), (16, 16, 3, 3), (1, 1), (1, 1))  # F(2x2) only
    assert not winograd.uses_wino((1, 28, 28), (16, 1, 3, 3), (1, 1), (1, 1))  # the stem
    assert not winograd.uses_wino((32, 28, 28), (32, 32, 3, 3), (2, 2), (1, 1))  # strided
    assert not winograd.uses_wino((32, 28, 28), (32, 32, 1, 1), (1, 1), (0, 0))  # 1x1
    assert not winograd.uses_wino((32, 28, 28), (32, 32, 5, 5), (1, 1), (2, 2))
    monkeypatch.setattr(winograd, "F4_ENABLED", False)
    assert winograd.tile((16, 28, 28), (1, 1)) == 2
    assert not winograd.uses_wino((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1))
    monkeypatch.setattr(winograd, "F4_ENABLED", True)
    monkeypatch.setattr(winograd, "ENABLED", False)
    assert not winograd.uses_wino((32, 14, 14), (32, 32, 3, 3), (1, 1), (1, 1))
    assert not winograd.uses_wino((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1))


@pytest.mark.parametrize("m", [2, 4])
def test_bad_buffers_refused(m):
    x, w, b = data((2, 8, 6, 6), 5, np.float32)
    isa = direct.ISA
    geo = winograd.geometry((8, 6, 6), w.shape, (1, 1), isa, False, m)
    u, bp = winograd.packed(w, b, np.float32, m)
    out = np.empty((2, 5, 6, 6), np.float32)
    fn = winograd.kernel(geo)

    def run(scratch=None, qr=geo.qr, size=geo.size, res=None, o=out, hq=geo.hq):
        scratch = np.empty((2, geo.scratch), np.float32) if scratch is None else scratch
        fn(x, scratch, u, bp, o, 1, 1, hq, geo.wq, qr, size, isa, 2, res)
    run()
    with pytest.raises(ValueError, match="disagree"):  # one scratch row for two threads
        run(np.empty((1, geo.scratch), np.float32))
    with pytest.raises(ValueError, match="disagree"):  # a row too short
        run(np.empty((2, geo.scratch - 1), np.float32))
    with pytest.raises(ValueError, match="disagree"):  # planes too short for the last reads
        run(size=geo.size - 1)
    with pytest.raises(ValueError, match="disagree"):  # a grid of part vectors
        run(qr=geo.qr + 1)
    with pytest.raises(ValueError, match="disagree"):  # not a 3x3 pad-1 conv's output
        run(o=np.empty((2, 5, 6, 5), np.float32))
    with pytest.raises(ValueError, match="disagree"):  # planes of the other tile size
        run(hq=geo.hq + 1)
    with pytest.raises(ValueError, match="disagree"):  # the other tile size's filters
        fn(x, np.empty((2, geo.scratch), np.float32), winograd.packed(w, b, np.float32, 6 - m)[0]
           if m == 4 else u[:16 * 2 * 8 * 4 - 1], bp, out, 1, 1, geo.hq, geo.wq, geo.qr,
           geo.size, isa, 2)
    with pytest.raises(ValueError, match="residual"):
        run(res=np.empty((2, 5, 6, 5), np.float32))


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-13)])
def test_eval_program_runs_32_channel_convs_here(dtype, tol, monkeypatch):
    """resnet_small's eval program at a batch of a sample a thread or more: its three 3x3
    stride-1 convs of 32 channels on Winograd (with their skip and relu), the scores those
    of the direct kernels within float rounding, and following its weights changed in place
    (refolded, transformed again); at batch 1 (filters split among threads) the direct
    kernels run."""
    monkeypatch.setattr(winograd, "F4_ENABLED", False)  # the 16-channel convs: direct.h
    x, calls, plans, scores = nets.resnet_small_eval_both_ways(
        monkeypatch, dtype, (direct._ext, "forward_wino"), (winograd, "ENABLED"))
    assert [a[0].shape[1:] + a[4].shape[1:] for a in calls] == [(32, 14, 14, 32, 14, 14)] * 3
    assert sum(a[-1] for a in calls) == 3 and sum(a[-2] is not None for a in calls) == 2
    scale = np.abs(scores[False]).max()
    assert 0 < np.abs(scores[True] - scores[False]).max() < tol * scale
    for p in plans.values():
        p.params["block4.conv2.w"] *= 1.5
    again = {on: p.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
             for on, p in plans.items()}
    assert len(calls) == 6 and not np.allclose(again[True], scores[True])
    assert np.abs(again[True] - again[False]).max() < tol * scale
    monkeypatch.setattr(winograd, "ENABLED", True)
    one = plans[True].forward({"x": x[:1]}, mode="eval", outputs=["scores"])["scores"]
    assert len(calls) == 6 and np.abs(one - again[False][:1]).max() < tol * scale


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("float64", 1e-13)])
def test_eval_program_runs_16_channel_convs_on_f4(dtype, tol, monkeypatch):
    """resnet_small's eval program: its four 3x3 stride-1 convs of 16 channels at 28 x 28 on
    F(4x4) (two with their skip, all with relu), the 32-channel ones on F(2x2), the scores
    those of F(2x2) and the direct kernels within float rounding; F4_ENABLED off keeps them
    off F(4x4)."""
    x, calls, plans, scores = nets.resnet_small_eval_both_ways(
        monkeypatch, dtype, (direct._ext, "forward_wino4"), (winograd, "F4_ENABLED"))
    assert [a[0].shape[1:] + a[4].shape[1:] for a in calls] == [(16, 28, 28, 16, 28, 28)] * 4
    assert sum(a[-1] for a in calls) == 4 and sum(a[-2] is not None for a in calls) == 2
    scale = np.abs(scores[False]).max()
    assert 0 < np.abs(scores[True] - scores[False]).max() < tol * scale
    monkeypatch.setattr(winograd, "ENABLED", False)
    monkeypatch.setattr(winograd, "F4_ENABLED", True)
    plain = nets.resnet_small_eval(dtype).forward({"x": x}, mode="eval",
                                                   outputs=["scores"])["scores"]
    assert len(calls) == 4 and np.abs(scores[True] - plain).max() < tol * scale


# -- training's input gradients (uses_dx, input_grad; ops/conv.py conv_backward) --
DX_SHAPES = [  # (N, C, H, W), F, pad: the gradient conv has F input channels, pad 2 - p
    ((2, 5, 12, 12), 32, (1, 1)),  # F(2x2) (32 channels of dout)
    ((2, 3, 14, 13), 16, (1, 1)),  # F(4x4) (16 channels, a tile row and column half outside)
    ((2, 4, 9, 11), 32, (0, 0)),  # the gradient conv padded by 2
    ((2, 6, 8, 8), 32, (2, 2)),  # by 0
    ((1, 7, 10, 9), 33, (1, 0)),  # unequal pads; filters filling no whole tile
]


def dx_data(x_shape, f, pad, dtype):
    x, w, _ = data(x_shape, f, dtype)
    ho, wo = x_shape[2] + 2 * pad[0] - 2, x_shape[3] + 2 * pad[1] - 2
    dout = np.random.default_rng(2).standard_normal((x_shape[0], f, ho, wo)).astype(dtype)
    return x, w, dout


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape,f,pad", DX_SHAPES)
def test_input_grad_matches_reference(x_shape, f, pad, dtype, isa, monkeypatch):
    """The input gradient against the loop reference's (dagnet/reference.py conv_backward),
    within the bound of the gradient conv it runs (dout, the flipped and swapped filters)."""
    monkeypatch.setattr(direct, "ISA", isa)
    x, w, dout = dx_data(x_shape, f, pad, dtype)
    want = ref.conv_backward(dout.astype(float), x.astype(float), w.astype(float), 1, pad)[0]
    got = winograd.input_grad(dout, w, pad)
    assert got.dtype == dtype and got.shape == x.shape
    wt = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    back = (2 - pad[0], 2 - pad[1])
    assert_within_bound(got, want, dout, wt, np.zeros(x_shape[1], dtype), back,
                        m=winograd.tile(dout.shape[1:], back))


@pytest.mark.parametrize("f,c", [(16, 16), (64, 64), (5, 7), (33, 6)])
def test_packed_dx_is_packed_of_the_flipped_filters(f, c):
    """packed_dx (the input gradient's filters transformed from w itself) against packed of the
    flipped and swapped copy: bitwise for float32 weights, as its docstring argues; float64's
    differ at most by their sums' order."""
    for dtype in (np.float32, np.float64):
        w = np.random.default_rng(f * c).standard_normal((f, c, 3, 3)).astype(dtype)
        wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        want = winograd.packed(wt, np.zeros(c, dtype), dtype)[0]
        got = winograd.packed_dx(w, dtype)
        assert got.dtype == dtype and got.shape == want.shape
        if dtype == np.float32:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)


def test_uses_dx_rule(monkeypatch):
    assert winograd.uses_dx((16, 32, 32), (16, 16, 3, 3), (1, 1), (1, 1))  # F(4x4)
    assert winograd.uses_dx((32, 16, 16), (32, 32, 3, 3), (1, 1), (1, 1))  # F(2x2)
    assert winograd.uses_dx((3, 16, 16), (32, 3, 3, 3), (1, 1), (1, 1))  # dout's channels count
    assert not winograd.uses_dx((32, 16, 16), (8, 32, 3, 3), (1, 1), (1, 1))  # ... too few
    assert not winograd.uses_dx((16, 32, 32), (32, 16, 3, 3), (2, 2), (1, 1))  # strided
    assert not winograd.uses_dx((32, 16, 16), (32, 32, 5, 5), (1, 1), (2, 2))
    assert not winograd.uses_dx((32, 16, 16), (32, 32, 3, 3), (1, 1), (3, 3))  # pad past 2
    monkeypatch.setattr(winograd, "DX_ENABLED", False)
    assert not winograd.uses_dx((32, 16, 16), (32, 32, 3, 3), (1, 1), (1, 1))
    monkeypatch.setattr(winograd, "DX_ENABLED", True)
    monkeypatch.setattr(winograd, "ENABLED", False)
    assert not winograd.uses_dx((32, 16, 16), (32, 32, 3, 3), (1, 1), (1, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_backward_takes_it(dtype, monkeypatch):
    """A conv on the direct kernels takes its input gradient from input_grad (bitwise), its dw
    and db from direct_backward (bitwise); DX_ENABLED off gives the direct kernels' dx, both
    the reference's within rounding (F(4x4)'s, here: ~4x the direct kernels' norm-wise; its
    bound is test_input_grad_matches_reference's); bitwise the same for any thread count."""
    from dagnet import kernels
    from dagnet.gradcheck import norm_error
    from dagnet.ops.conv import conv_backward, conv_forward
    x, w, dout = dx_data((2, 16, 28, 28), 16, (1, 1), dtype)
    b = np.zeros(16, dtype)
    _, cache = conv_forward(x, w, b, 1, 1)
    assert isinstance(cache, direct.DirectCache)
    got = conv_backward(dout, cache)
    np.testing.assert_array_equal(got[0], winograd.input_grad(dout, w, (1, 1)))
    for a, z in zip(got[1:], direct.direct_backward(dout, cache, False)[1:]):
        np.testing.assert_array_equal(a, z)
    monkeypatch.setattr(winograd, "DX_ENABLED", False)
    plain = conv_backward(dout, cache)[0]
    want = ref.conv_backward(dout.astype(float), x.astype(float), w.astype(float), 1, 1)[0]
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert norm_error(got[0], want) < 10 * tol and norm_error(plain, want) < tol
    assert not np.array_equal(got[0], plain)
    monkeypatch.setattr(winograd, "DX_ENABLED", True)
    for threads in (1, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        np.testing.assert_array_equal(conv_backward(dout, cache)[0], got[0])


def test_conv2d_op_gradients_through_winograd_dx():
    """float64 gradient check of conv2d where its forward runs on the direct kernels and its
    input gradient on Winograd (32 filters: dout's 32 channels take F(2x2))."""
    from dagnet.ops.conv import takes_direct
    from tests.ops.harness import check_op
    rng = np.random.default_rng(0)
    shape, w_shape = (2, 4, 12, 12), (32, 4, 3, 3)
    assert takes_direct(shape[1:], w_shape, 1, 1)
    assert winograd.uses_dx(shape[1:], w_shape, (1, 1), (1, 1))
    check_op("conv2d", [rng.standard_normal(shape), rng.standard_normal(w_shape),
                        rng.standard_normal(32)], {"pad": 1})
