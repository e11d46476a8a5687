import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError, ShapeError
from dagnet.ops import get_op
from dagnet.ops.pool import maxpool_backward, maxpool_forward
from tests.ops.harness import check_op

maxpool, avgpool, gap = get_op("max_pool2d"), get_op("avg_pool2d"), get_op("global_avg_pool")

POOL_CASES = [  # (input shape, attrs)
    ((2, 3, 6, 6), {"size": 2}),
    ((2, 3, 7, 7), {"size": 3, "stride": 2, "pad": 1}),
    ((2, 3, 6, 6), {"size": 3, "stride": 1}),
    ((1, 2, 6, 5), {"size": (2, 3), "stride": (2, 1), "pad": (1, 0)}),
    ((2, 3, 7, 7), {"size": 2, "stride": 2, "floor": True}),
]


def distinct(shape, seed=0):
    """Values at least 0.01 apart: no ties, and a 1e-5 nudge never changes a window's max."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.01 - 1.0).reshape(shape)


@pytest.mark.parametrize("shape,attrs", POOL_CASES)
def test_max_pool_gradients(shape, attrs):
    check_op("max_pool2d", [distinct(shape)], attrs)


@pytest.mark.parametrize("shape,attrs", POOL_CASES)
def test_avg_pool_gradients(shape, attrs):
    check_op("avg_pool2d", [np.random.default_rng(0).standard_normal(shape)], attrs)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 5, 3, 7)])
def test_global_avg_pool_gradients(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    out, _ = check_op("global_avg_pool", [x], {})
    np.testing.assert_allclose(out, x.mean(axis=(2, 3)))


def test_max_pool_published_values():
    x = np.linspace(-0.3, 0.4, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out, _ = check_op("max_pool2d", [x], {"size": 2, "stride": 2})
    np.testing.assert_allclose(out[0, 0], [[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
                               rtol=1e-7)


def test_avg_pool_counts_zero_padding():
    out, _ = avgpool.forward([np.ones((1, 1, 2, 2))], {"size": 2, "stride": 1, "pad": 1})
    np.testing.assert_allclose(out[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


def test_max_pool_pads_with_minus_infinity():
    x = -np.ones((1, 1, 2, 2))
    out, _ = maxpool.forward([x], {"size": 3, "stride": 1, "pad": 1})
    np.testing.assert_array_equal(out, -np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("attrs", [{"size": 2}, {"size": 3, "stride": 1}, {"size": 2, "stride": 1}])
def test_ties_send_the_gradient_to_the_first_max(attrs):
    x = np.zeros((1, 1, 4, 4))
    out, cache = maxpool.forward([x], attrs)
    (dx,) = maxpool.backward(np.ones_like(out), cache, attrs)
    stride = attrs.get("stride", attrs["size"])
    want = np.zeros_like(x)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            want[0, 0, i * stride, j * stride] += 1  # each window's top-left cell
    np.testing.assert_array_equal(dx, want)


def test_nan_propagates():
    x = distinct((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    out, _ = maxpool.forward([x], {"size": 2})
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1:, :]).any()


@pytest.mark.parametrize("op", [maxpool, avgpool, gap])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(op, dtype):
    attrs = {} if op is gap else {"size": 2}
    x = distinct((2, 3, 6, 6)).astype(dtype)
    out, cache = op.forward([x], attrs)
    (dx,) = op.backward(np.ones_like(out), cache, attrs)
    assert out.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape


def test_max_pool_cache_keeps_only_the_argmax():
    """The fused ops run relu in place on the pool's output; backward must not read it."""
    assert maxpool.saves == frozenset()
    assert maxpool.workspace([(3, 6, 6)], (3, 3, 3), {"size": 2}).saved == 27  # the argmax
    x = distinct((2, 3, 6, 6))
    out, cache = maxpool_forward(x, 2, 2, 0)
    want = maxpool_backward(np.ones_like(out), cache)
    out[...] = 0
    x[...] = 0
    np.testing.assert_array_equal(maxpool_backward(np.ones_like(out), cache), want)


def test_infer_shape():
    assert maxpool.infer_shape([(32, 32, 32)], {"size": 2}) == (32, 16, 16)
    assert maxpool.infer_shape([(3, 7, 7)], {"size": 3, "stride": 2, "pad": 1}) == (3, 4, 4)
    assert avgpool.infer_shape([(3, 5, 5)], {"size": 2, "floor": True}) == (3, 2, 2)
    assert gap.infer_shape([(64, 7, 7)], {}) == (64,)
    assert maxpool.workspace([(32, 32, 32)], (32, 16, 16), {"size": 2}).elements == 32 * 16 * 16


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("op", [maxpool, avgpool])
def test_stride_that_does_not_tile(op):
    want = (rf"{op.name}: stride 2 does not tile the input height: "
            r"1 \+ \(H - F \+ 2P\)/S = 1 \+ \(5 - 2 \+ 2\*0\)/2 = 2.5.*floor=True")
    with pytest.raises(ShapeError, match=want):
        op.infer_shape([(3, 5, 5)], {"size": 2})


@pytest.mark.parametrize("attrs,error,match", [
    ({"size": 0}, AttrError, r"max_pool2d: size must be a positive integer or a pair of them, up to 65535, got 0"),
    ({"size": 2, "stride": 0}, AttrError, r"max_pool2d: stride must be a positive integer or a pair"),
    ({"size": 2, "pad": 2}, AttrError, r"max_pool2d: pad \(2, 2\) must be at most half the window"),
    ({"size": 9}, ShapeError, r"max_pool2d: kernel 9x9 is larger than the padded input 6x6"),
])
def test_bad_attrs(attrs, error, match):
    with pytest.raises(error, match=match):
        maxpool.infer_shape([(3, 6, 6)], attrs)


@pytest.mark.parametrize("op", [maxpool, avgpool, gap])
def test_wrong_rank_and_dtype(op):
    attrs = {} if op is gap else {"size": 2}
    rank = rf"{op.name}: input 'x' must have 3 dims \(C, H, W\).*\(6, 6\)"
    with pytest.raises(ShapeError, match=rank):
        op.infer_shape([(6, 6)], attrs)
    with pytest.raises(ShapeError, match=rf"{op.name}: input 'x' must be \(N, C, H, W\), got "):
        op.forward([np.ones((3, 6, 6))], attrs)
    with pytest.raises(DTypeError, match=rf"{op.name}: input 'x' must be a float32 or float64 .*int32"):
        op.forward([np.ones((1, 3, 6, 6), dtype=np.int32)], attrs)
