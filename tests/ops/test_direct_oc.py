"""The inference conv vectorised along output channels (ops/direct_oc.py, _kernels/
direct_oc.h) against the loop reference, in float64 and float32, for every kernel variant
this CPU runs: rows of every tail width for both tile shapes, strides, pads, channel counts
that fill no whole tile; with its epilogue (+ skip, relu keeping NaN); bitwise the same for
any thread count and as the planes kernel (direct.h: the same sums in the same order)."""
import numpy as np
import pytest

from dagnet import reference as ref
from dagnet.gradcheck import norm_error
from dagnet.ops import direct, direct_oc
from tests.compiler import nets

pytestmark = pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")

ISAS = list(range(direct.ISA + 1)) if direct._ext is not None else []
SHAPES = [  # (N, C, H, W), (F, C, kh, kw), stride, pad
    ((3, 16, 12, 12), (16, 16, 3, 3), (1, 1), (1, 1)),  # resnet_small's block, smaller
    ((2, 16, 12, 12), (32, 16, 3, 3), (2, 2), (1, 1)),  # its downsampling conv
    ((2, 16, 12, 12), (32, 16, 1, 1), (2, 2), (0, 0)),  # its 1x1 projection: no padded copy
    ((2, 3, 9, 17), (5, 3, 3, 3), (1, 1), (1, 1)),  # rows of 17: two tiles of 6, a tail of 5
    ((2, 5, 7, 7), (33, 5, 3, 2), (1, 2), (0, 1)),  # 33 filters: a partial tile
    ((3, 4, 11, 10), (7, 4, 5, 5), (2, 3), (2, 1)),
    ((2, 7, 6, 6), (9, 7, 2, 2), (2, 2), (0, 0)),
    ((2, 3, 7, 7), (4, 3, 3, 3), (3, 3), (1, 1)),  # stride larger than the kernel's reach
    ((1, 2, 4, 5), (17, 2, 3, 3), (1, 1), (1, 1)),  # rows of 1 .. 5 positions
    ((2, 3, 3, 1), (8, 3, 3, 1), (1, 1), (1, 0)),  # one position a row
    # stride 1, at most 16 taps: the few-tap kernel with AVX-512 (uses_taps)
    ((3, 1, 9, 37), (16, 1, 3, 3), (1, 1), (1, 1)),  # the stem's: rows of two vectors + 5
    ((2, 2, 5, 6), (20, 2, 2, 2), (1, 1), (0, 0)),  # 20 filters: a partial pass of 8
    ((2, 1, 6, 16), (3, 1, 4, 4), (1, 1), (2, 1)),  # 16 taps, rows of one whole vector
    # column stride 2, at most 16 taps: direct_oc.h's oc_taps2 with AVX-512
    ((2, 5, 9, 37), (20, 5, 1, 1), (2, 2), (0, 0)),  # rows of 19: a vector + 3; 20 filters
    ((2, 3, 7, 11), (9, 3, 2, 2), (3, 2), (1, 1)),  # 12 taps, padded, row stride 3
    ((1, 16, 5, 33), (8, 16, 1, 1), (1, 2), (0, 0)),  # rows of 17: the last reads column 32
]
#: the shapes on direct_oc.h's oc_taps2 (AVX-512)
TAPS2 = [s for s in SHAPES if s[2][1] == 2 and s[0][1] * s[1][2] * s[1][3] <= 16]


def data(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES)
def test_matches_reference(x_shape, w_shape, stride, pad, dtype, tol, isa):
    x, w, b = data(x_shape, w_shape, dtype)
    want = ref.conv_forward(x, w, b, stride, pad)
    res = np.random.default_rng(1).standard_normal(want.shape).astype(dtype)
    for relu, r in ((False, None), (True, None), (True, res), (False, res)):
        got = direct_oc.oc_forward(x, w, b, stride, pad, r, relu, isa=isa)
        z = want + (r if r is not None else 0)
        assert got.dtype == dtype and got.shape == want.shape
        assert norm_error(got, np.maximum(z, 0) if relu else z) < tol


@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES[:3] + SHAPES[4:5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_same_for_any_thread_count(x_shape, w_shape, stride, pad, dtype):
    x, w, b = data(x_shape, w_shape, dtype)
    one = direct_oc.oc_forward(x, w, b, stride, pad, None, True, threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(direct_oc.oc_forward(x, w, b, stride, pad, None, True,
                                                        threads=threads), one)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES)
def test_bitwise_same_as_planes_kernel(x_shape, w_shape, stride, pad, isa, monkeypatch):
    """Each output is bias + the taps' products in k order on both kernels: switching an
    inference conv between them changes no bit."""
    monkeypatch.setattr(direct, "ISA", isa)
    x, w, b = data(x_shape, w_shape, np.float32, seed=2)
    planes, _ = direct.direct_forward(x, w, b, stride, pad)
    np.testing.assert_array_equal(direct_oc.oc_forward(x, w, b, stride, pad, isa=isa), planes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", TAPS2 + [SHAPES[1], SHAPES[5]])
def test_taps2_changes_no_bit(x_shape, w_shape, stride, pad, dtype, monkeypatch):
    """direct_oc.h's oc_taps2 (column stride 2, few taps) gives the grid kernel's values bit
    for bit, with the epilogue, NaN and infinities included."""
    x, w, b = data(x_shape, w_shape, dtype, seed=3)
    x.flat[::7] = 0.0
    x.flat[2] = np.nan  # row 0, column 2: read at every stride and pad here
    x.flat[11] = -np.inf
    res = np.random.default_rng(4).standard_normal(
        direct_oc.oc_forward(x, w, b, stride, pad).shape).astype(dtype)
    got = {}
    for on in (False, True):
        monkeypatch.setattr(direct_oc, "TAPS2_ENABLED", on)
        got[on] = [direct_oc.oc_forward(x, w, b, stride, pad, r, relu)
                   for r, relu in ((None, False), (res, True), (None, True))]
    for a, z in zip(got[False], got[True]):
        np.testing.assert_array_equal(a, z)
    assert np.isnan(got[True][0]).any()


@pytest.mark.parametrize("isa", ISAS)
def test_relu_keeps_nan_and_skip_adds(isa):
    x, w, b = data((2, 3, 6, 6), (5, 3, 3, 3), np.float32)
    x[1, 2, 3, 3] = np.nan
    res = np.full((2, 5, 6, 6), -1e3, np.float32)
    got = direct_oc.oc_forward(x, w, b, (1, 1), (1, 1), res, True, isa=isa)
    want = np.maximum(ref.conv_forward(x, w, b, (1, 1), (1, 1)) + res, 0)  # keeps NaN
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).sum() == 5 * 9 and (got[~np.isnan(got)] == 0).all()


def test_geometry_and_packing():
    geo = direct_oc.oc_geometry((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1), 8)
    assert (geo.ho, geo.wo, geo.nb, geo.rows) == (28, 28, 2, 16)
    assert geo.off[:4].tolist() == [0, 1, 2, 30] and geo.off[9] == 30 * 30
    assert geo.size == 16 * 30 * 30 + 28 * 28 * 16
    geo = direct_oc.oc_geometry((16, 28, 28), (32, 16, 1, 1), (2, 2), (0, 0), 8)
    assert (geo.ho, geo.wo, geo.nb, geo.size) == (14, 14, 4, 14 * 14 * 32)  # no padded copy
    w = np.arange(3 * 2 * 1 * 1, dtype=np.float64).reshape(3, 2, 1, 1)
    wq, bq = direct_oc.oc_packed(w, np.array([1.0, 2.0, 3.0]), np.float64, 0)  # 2 lanes: nb 2
    assert wq.reshape(2, 4).tolist() == [[0, 2, 4, 0], [1, 3, 5, 0]]  # k-major, zeros past F
    assert bq.tolist() == [1, 2, 3, 0]


def test_rule(monkeypatch):
    assert direct_oc.uses_oc((16, 28, 28), (32, 16, 3, 3), (2, 2), (1, 1))
    # 1x1: no waste to remove; with AVX-512's 16-wide tiles it runs there all the same
    for isa in (direct.AVX512 - 1, direct.AVX512):
        monkeypatch.setattr(direct, "ISA", isa)
        assert direct_oc.uses_oc((16, 28, 28), (32, 16, 1, 1), (2, 2), (0, 0)) == (isa == direct.AVX512)
    assert not direct_oc.uses_oc((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1))  # stride 1: planes
    assert not direct_oc.uses_oc((1, 28, 28), (16, 1, 3, 3), (2, 2), (1, 1))  # 9 taps
    monkeypatch.setattr(direct_oc, "OC_ENABLED", False)
    assert not direct_oc.uses_oc((16, 28, 28), (32, 16, 3, 3), (2, 2), (1, 1))


def test_taps_rule(monkeypatch):
    """Stride-1 convs of at most 16 taps wider than 1x1 run on the few-tap kernel, with
    AVX-512 alone (forward_oc picks it by the same terms)."""
    for isa in range(direct.AVX512 + 1):
        monkeypatch.setattr(direct, "ISA", isa)
        on = isa == direct.AVX512
        assert direct_oc.uses_taps((1, 28, 28), (16, 1, 3, 3), (1, 1)) == on  # the stem
        assert direct_oc.uses_oc((1, 28, 28), (16, 1, 3, 3), (1, 1), (1, 1)) == on
        assert direct_oc.uses_taps((4, 8, 8), (8, 4, 2, 2), (1, 1)) == on  # 16 taps
        assert not direct_oc.uses_taps((2, 8, 8), (8, 2, 3, 3), (1, 1))  # 18
        assert not direct_oc.uses_taps((16, 8, 8), (8, 16, 1, 1), (1, 1))  # 1x1
        assert not direct_oc.uses_taps((1, 28, 28), (16, 1, 3, 3), (2, 2))
    monkeypatch.setattr(direct_oc, "TAPS_ENABLED", False)
    assert not direct_oc.uses_oc((1, 28, 28), (16, 1, 3, 3), (1, 1), (1, 1))


def test_bad_buffers_refused():
    x, w, b = data((2, 3, 6, 6), (5, 3, 3, 3), np.float32)
    geo = direct_oc.oc_geometry_for((3, 6, 6), w.shape, (1, 1), (1, 1), np.float32)
    wq, bq = direct_oc.oc_packed(w, b, np.float32)
    out = np.empty((2, 5, 6, 6), np.float32)
    args = (wq, bq, out, geo.nb, 1, 1, 1, 1, direct.ISA, 2)
    with pytest.raises(ValueError, match="disagree"):  # one scratch row for two threads
        direct._ext.forward_oc(x, np.empty((1, geo.size), np.float32), geo.off, *args)
    with pytest.raises(ValueError, match="disagree"):  # a row too short
        direct._ext.forward_oc(x, np.empty((2, geo.size - 1), np.float32), geo.off, *args)
    with pytest.raises(ValueError, match="reads past"):
        direct._ext.forward_oc(x, np.empty((2, geo.size), np.float32), geo.off + 40, *args)
    with pytest.raises(ValueError, match="residual"):
        direct._ext.forward_oc(x, np.empty((2, geo.size), np.float32), geo.off, *args,
                               np.empty((2, 5, 6, 5), np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eval_program_runs_strided_convs_here_bitwise_as_the_planes_kernel(dtype, monkeypatch):
    """resnet_small's eval program at a batch of a sample a thread or more: its 3x3 stride-2
    conv on these kernels (and with AVX-512 its 1x1 projection, in the same call as the
    second conv of runtime/pairs.py, and its 1-channel stem, on the few-tap kernel), the
    scores bitwise those of the planes kernel, and following its weights changed in place
    (refolded, repacked)."""
    x, calls, plans, scores = nets.resnet_small_eval_both_ways(
        monkeypatch, dtype, (direct._ext, "forward_oc"), (direct_oc, "OC_ENABLED"))
    want = [(16, 28, 28, 32, 14, 14)]
    if direct.ISA >= direct.AVX512:
        want = [(1, 28, 28, 16, 28, 28), (16, 28, 28, 32, 14, 14, 32, 14, 14)]
    assert [a[0].shape[1:] + a[5].shape[1:] + (a[19].shape[1:] if len(a) > 19 else ())
            for a in calls] == want
    np.testing.assert_array_equal(scores[True], scores[False])
    for p in plans.values():
        p.params["block3.conv1.w"] *= 1.5
        p.params["block3.skip.w"] *= -1
        p.params["stem.conv.w"] *= 0.5
    again = {on: p.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
             for on, p in plans.items()}
    assert len(calls) == 2 * len(want) and not np.allclose(again[True], scores[True])
    np.testing.assert_array_equal(again[True], again[False])
    np.testing.assert_array_equal(again[True], again[False])
