"""Two strided convs of one input in one pass (runtime/pairs.py, direct.pyx forward_oc's
second conv): bitwise the two calls' values, in the kernel and in resnet_small's eval
program (chunked at batch 256 too), the pair made where its terms hold and refused where
the buffers disagree."""
import numpy as np
import pytest

from dagnet.ops import direct, direct_oc
from dagnet.runtime import chunks, pairs
from tests.compiler import nets

pytestmark = pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")

CASES = [  # per-example x, first conv's (w, stride, pad), second's (w, pad)
    ((16, 12, 12), (32, 16, 3, 3), (2, 2), (1, 1), (32, 16, 1, 1), (0, 0)),  # resnet_small's
    ((5, 9, 13), (20, 5, 3, 3), (2, 2), (1, 1), (12, 5, 1, 1), (0, 0)),  # 12 of 20: a part tile
    ((3, 11, 10), (7, 3, 5, 5), (2, 3), (2, 1), (7, 3, 3, 3), (1, 0)),  # 27 taps: grid kernel
    ((6, 8, 8), (16, 6, 2, 2), (2, 2), (0, 0), (16, 6, 2, 2), (0, 0)),  # no padded copy
]


def _data(x_shape, w_shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, *x_shape)).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("taps2", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_second_conv_in_the_pass_gives_its_own_calls_bits(case, taps2, dtype):
    x_shape, w1_shape, stride, pad1, w2_shape, pad2 = case
    x, w1, b1 = _data(x_shape, w1_shape, dtype, 0)
    _, w2, b2 = _data(x_shape, w2_shape, dtype, 1)
    x[1, 0, 2, 2] = np.nan
    g1 = direct_oc.oc_geometry_for(x_shape, w1_shape, stride, pad1, dtype)
    g2 = direct_oc.oc_geometry_for(x_shape, w2_shape, stride, pad2, dtype)
    assert (g1.ho, g1.wo) == (g2.ho, g2.wo) and g2.rows <= g1.rows
    wq1, bq1 = direct_oc.oc_packed(w1, b1, dtype)
    wq2, bq2 = direct_oc.oc_packed(w2, b2, dtype)
    res = np.random.default_rng(2).standard_normal((3, w1_shape[0], g1.ho, g1.wo)).astype(dtype)
    want1 = direct_oc.oc_forward(x, w1, b1, stride, pad1, res, True)
    want2 = direct_oc.oc_forward(x, w2, b2, stride, pad2, None, True)
    off2 = pairs.offsets_in(x_shape, w2_shape, pad2, pad1)
    for threads in (1, 2):
        out1, out2 = np.empty_like(want1), np.empty_like(want2)
        direct._ext.forward_oc(x, np.empty((threads, g1.size), dtype), g1.off, wq1, bq1, out1, g1.nb,
                               *stride, *pad1, direct.ISA, threads, res, True, taps2, off2,
                               wq2, bq2, out2, g2.nb, True)
        np.testing.assert_array_equal(out1, want1)
        np.testing.assert_array_equal(out2, want2)
    assert np.isnan(out2).any()


def test_offsets_in_the_first_convs_frame():
    # a 1x1 conv of pad 0 in a sample padded by 1: each channel's centre, one row and column in
    off = pairs.offsets_in((16, 28, 28), (32, 16, 1, 1), (0, 0), (1, 1))
    assert off.tolist() == [(c * 30 + 1) * 30 + 1 for c in range(16)]
    np.testing.assert_array_equal(  # in its own frame: its own geometry's offsets
        pairs.offsets_in((3, 9, 9), (4, 3, 3, 3), (1, 1), (1, 1)),
        direct_oc.oc_geometry((3, 9, 9), (4, 3, 3, 3), (2, 2), (1, 1), 8).off)


def test_bad_second_conv_refused():
    x, w1, b1 = _data((16, 12, 12), (32, 16, 3, 3), np.float32, 0)
    g1 = direct_oc.oc_geometry_for((16, 12, 12), w1.shape, (2, 2), (1, 1), np.float32)
    wq1, bq1 = direct_oc.oc_packed(w1, b1, np.float32)
    out1 = np.empty((3, 32, 6, 6), np.float32)
    off2 = pairs.offsets_in((16, 12, 12), (32, 16, 1, 1), (0, 0), (1, 1))
    wq2, bq2 = direct_oc.oc_packed(w1[:, :, :1, :1], b1, np.float32)
    args = (x, np.empty((1, g1.size), np.float32), g1.off, wq1, bq1, out1, g1.nb, 2, 2, 1, 1,
            direct.ISA, 1, None, True, True)
    with pytest.raises(ValueError, match="second conv"):  # output rows of another extent
        direct._ext.forward_oc(*args, off2, wq2, bq2, np.empty((3, 32, 6, 5), np.float32), 2)
    with pytest.raises(ValueError, match="reads past"):
        direct._ext.forward_oc(*args, off2 + 200, wq2, bq2, np.empty((3, 32, 6, 6), np.float32), 2)
    with pytest.raises(ValueError, match="needs off2"):
        direct._ext.forward_oc(*args, None, wq2, bq2, np.empty((3, 32, 6, 6), np.float32), 2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resnet_small_program_pairs_its_projection_bitwise(dtype, monkeypatch):
    """With AVX-512 (the 1x1 projection on direct_oc.h's kernels) the downsampling block's two
    convs run as one call; the scores are bitwise the two calls', after a refold too."""
    x, calls, plans, scores = nets.resnet_small_eval_both_ways(
        monkeypatch, dtype, (direct._ext, "forward_oc"), (pairs, "ENABLED"))
    paired = [a for a in calls if len(a) > 16 and a[16] is not None]
    assert len(paired) == (1 if direct.ISA >= direct.AVX512 else 0)
    np.testing.assert_array_equal(scores[True], scores[False])
    for p in plans.values():
        p.params["block3.skip.w"] *= -0.5
    again = {on: p.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
             for on, p in plans.items()}
    assert not np.allclose(again[True], scores[True])
    np.testing.assert_array_equal(again[True], again[False])


def test_chunked_batch_pairs_bitwise(monkeypatch):
    """At batch 256 (chunks of CHUNK samples on one-thread programs) the same scores."""
    monkeypatch.setattr(chunks, "CHUNK", 16)
    x = np.random.default_rng(5).standard_normal((40, 1, 28, 28)).astype(np.float32)
    got = {}
    for on in (True, False):
        monkeypatch.setattr(pairs, "ENABLED", on)
        plan = nets.resnet_small_eval("float32")
        got[on] = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    np.testing.assert_array_equal(got[True], got[False])
