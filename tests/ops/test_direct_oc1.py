"""direct_oc1.h, direct_forward's stride-1 kernel vectorised along output channels
(ops/direct_oc1.py uses_oc1), against the loop reference and bitwise against dc_gemm's forward, for
every kernel variant this CPU runs: rows ending in every tail tile, blocks of taps of every
size, padding, wider kernels; the same for any thread count; its planes feed backward as
dc_gemm's do (float64 gradients); the rule."""
import numpy as np
import pytest

from dagnet import kernels
from dagnet import reference as ref
from dagnet.gradcheck import norm_error
from dagnet.ops import direct, direct_oc1
from tests.ops.harness import check_op

pytestmark = pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")

ISAS = list(range(direct.ISA + 1)) if direct._ext is not None else []
SHAPES = [  # (N, C, H, W), (F, C, kh, kw), pad
    ((3, 8, 8, 8), (32, 8, 3, 3), (1, 1)),  # resnet20's 8 x 8 rows, smaller
    ((2, 5, 4, 15), (20, 5, 3, 3), (1, 1)),  # rows of 15: a tile of 8, a tail of 7; F not whole tiles
    ((2, 3, 9, 11), (33, 3, 3, 3), (0, 0)),  # no padding, every tail (9 wide: 8 + 1)
    ((3, 4, 7, 6), (16, 4, 5, 5), (2, 2)),  # 5 x 5: rows of 6
    ((2, 6, 6, 5), (8, 6, 3, 1), (1, 0)),  # a 3 x 1 kernel, rows of 5
]


def forward(x, w, b, pad, oc1=True, keep=True):
    """direct_forward's output and cache with its products on direct_oc1.h (any shape, every
    variant) or on dc_gemm."""
    mp = pytest.MonkeyPatch()
    mp.setattr(direct_oc1, "uses_oc1", lambda *a: oc1)
    try:
        return direct.direct_forward(x, w, b, (1, 1), pad, keep=keep)
    finally:
        mp.undo()


def data(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("block", [1, 100, 1 << 20])  # weights' bytes a block of taps: 1 tap, some, all
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("x_shape,w_shape,pad", SHAPES)
def test_matches_reference_and_dc_gemm_bitwise(x_shape, w_shape, pad, dtype, tol, block, isa,
                                               monkeypatch):
    monkeypatch.setattr(direct, "ISA", isa)
    monkeypatch.setattr(direct_oc1, "BLOCK_BYTES", block)
    x, w, b = data(x_shape, w_shape, dtype)
    out, cache = forward(x, w, b, pad)
    want = ref.conv_forward(x, w, b, (1, 1), pad)
    assert out.dtype == dtype and out.shape == want.shape
    assert norm_error(out, want) < tol
    # each output the same sum in the same order as dc_gemm's: the same bits, the same planes
    out2, cache2 = forward(x, w, b, pad, oc1=False)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(cache.planes, cache2.planes)


@pytest.mark.parametrize("x_shape,w_shape,pad", SHAPES[:2])
def test_bitwise_same_for_any_thread_count(x_shape, w_shape, pad, monkeypatch):
    x, w, b = data(x_shape, w_shape, np.float32)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        results.append(forward(x, w, b, pad)[0])
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


@pytest.mark.parametrize("oc1", [True, False])
def test_planes_per_thread_same_as_kept(oc1, monkeypatch):
    """keep=False (an input gradient as a forward: no backward) builds each sample's planes in
    its thread's row: the same outputs as the batch's planes, for any thread count."""
    x, w, b = data(*SHAPES[1][:2], np.float32)
    want, cache = forward(x, w, b, SHAPES[1][2], oc1)
    for threads in (1, 2, 3):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        got, none = forward(x, w, b, SHAPES[1][2], oc1, keep=False)
        assert none is None and cache is not None
        np.testing.assert_array_equal(got, want)


def test_conv2d_op_gradients_through_oc1(monkeypatch):
    """The conv2d op with its forward on direct_oc1.h: backward's dw and dx read the planes it
    wrote (float64 gradient check)."""
    monkeypatch.setattr(direct_oc1, "uses_oc1", lambda *a: True)
    rng = np.random.default_rng(0)
    shape, w_shape = (2, 3, 12, 12), (8, 3, 3, 3)  # rows of 12: a tile of 8, a tail of 4
    assert direct.uses_direct(shape[1:], w_shape, (1, 1), (1, 1))
    check_op("conv2d", [rng.standard_normal(shape), rng.standard_normal(w_shape),
                        rng.standard_normal(8)], {"pad": 1})


def test_rule(monkeypatch):
    avx512 = direct.AVX512
    assert direct_oc1.uses_oc1((32, 16, 16), (32, 32, 3, 3), (1, 1), (1, 1), avx512)  # resnet20's
    assert direct_oc1.uses_oc1((64, 8, 8), (64, 64, 3, 3), (1, 1), (1, 1), avx512)
    assert direct_oc1.uses_oc1((64, 7, 7), (64, 64, 3, 3), (1, 1), (1, 1), avx512)  # resnet_small's
    assert not direct_oc1.uses_oc1((64, 8, 8), (64, 64, 3, 3), (1, 1), (1, 1), avx512 - 1)
    assert not direct_oc1.uses_oc1((16, 32, 32), (16, 16, 3, 3), (1, 1), (1, 1), avx512)  # 16 filters
    assert not direct_oc1.uses_oc1((32, 28, 28), (32, 32, 3, 3), (1, 1), (1, 1), avx512)  # 784 outputs
    assert not direct_oc1.uses_oc1((1, 16, 16), (32, 1, 3, 3), (1, 1), (1, 1), avx512)  # 1 channel
    assert not direct_oc1.uses_oc1((32, 16, 16), (64, 32, 3, 3), (2, 2), (1, 1), avx512)  # stride 2
    assert not direct_oc1.uses_oc1((32, 16, 16), (48, 32, 3, 3), (1, 1), (1, 1), avx512)  # 1.5 tiles
    monkeypatch.setattr(direct_oc1, "ENABLED", False)
    assert not direct_oc1.uses_oc1((64, 8, 8), (64, 64, 3, 3), (1, 1), (1, 1), avx512)
