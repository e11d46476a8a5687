import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError, FeedError, ShapeError
from dagnet.ops import get_op
from dagnet.ops.norm import batchnorm_backward, batchnorm_forward
from tests.ops.harness import check_op

BN = get_op("batchnorm")
# Not N = 2 over features: there xhat = +-1 whatever x, dx is ~eps-sized and the finite
# differences are all rounding.
SHAPES = [(4, 5), (3, 2), (7, 1), (2, 3, 4, 4), (1, 2, 3, 3), (3, 2, 1, 1), (2, 2, 3, 5)]


def bn_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = 3 * rng.standard_normal(shape) + 2
    return [x, rng.uniform(0.5, 2.0, c), rng.standard_normal(c)]


def fresh_state(c, dtype=np.float64):
    return BN.init_state([(c,)], {}, dtype)


def stats_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def per_channel(v, ndim):
    return v if ndim == 2 else v.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_train_gradients(shape):
    x, gamma, beta = bn_inputs(shape)
    axes = stats_axes(x)
    xhat = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
    expected = per_channel(gamma, x.ndim) * xhat + per_channel(beta, x.ndim)
    check_op("batchnorm", [x, gamma, beta], state=fresh_state(shape[1]), expected=expected)


@pytest.mark.parametrize("shape", SHAPES + [(1, 4)])
def test_batchnorm_eval_gradients(shape):
    x, gamma, beta = bn_inputs(shape)
    rng = np.random.default_rng(1)
    state = {"running_mean": rng.standard_normal(shape[1]), "running_var": rng.uniform(0.5, 3, shape[1])}
    nd = x.ndim
    expected = (per_channel(gamma, nd) * (x - per_channel(state["running_mean"], nd))
                / np.sqrt(per_channel(state["running_var"], nd) + 1e-3) + per_channel(beta, nd))
    check_op("batchnorm", [x, gamma, beta], {"eps": 1e-3}, mode="eval", state=state, expected=expected)


@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 3, 3)])
def test_running_stats_follow_documented_momentum(shape):
    x, gamma, beta = bn_inputs(shape)
    state = {"running_mean": np.full(shape[1], 0.5), "running_var": np.full(shape[1], 2.0)}
    BN.forward([x, gamma, beta], {"momentum": 0.8}, mode="train", state=state)
    axes = stats_axes(x)
    np.testing.assert_allclose(state["running_mean"], 0.8 * 0.5 + 0.2 * x.mean(axes), rtol=1e-12)
    # the running variance tracks the unbiased batch variance
    np.testing.assert_allclose(state["running_var"], 0.8 * 2.0 + 0.2 * x.var(axes, ddof=1), rtol=1e-12)


def test_state_is_updated_in_place_and_keeps_its_dtype():
    x, gamma, beta = (a.astype(np.float32) for a in bn_inputs((5, 4)))
    state = fresh_state(4, np.float32)
    rm, rv = state["running_mean"], state["running_var"]
    out, _ = BN.forward([x, gamma, beta], {}, mode="train", state=state)
    assert state["running_mean"] is rm and state["running_var"] is rv
    assert rm.dtype == rv.dtype == out.dtype == np.float32
    assert not np.all(rm == 0)


def test_eval_mode_does_not_touch_state():
    x, gamma, beta = bn_inputs((5, 4))
    state = fresh_state(4)
    BN.forward([x, gamma, beta], {}, mode="eval", state=state)
    np.testing.assert_array_equal(state["running_mean"], 0)
    np.testing.assert_array_equal(state["running_var"], 1)


@pytest.mark.parametrize("shape", [(200, 3), (50, 3, 4, 5)])
def test_train_output_has_mean_beta_and_std_gamma(shape):
    rng = np.random.default_rng(0)
    x = 50 + 10 * rng.standard_normal(shape)
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([11.0, 12.0, 13.0])
    out, _ = BN.forward([x, gamma, beta], {}, mode="train", state=fresh_state(3))
    axes = stats_axes(x)
    np.testing.assert_allclose(out.mean(axis=axes), beta, atol=1e-9)
    np.testing.assert_allclose(out.std(axis=axes), gamma, rtol=1e-6)


def test_eval_after_training_normalises_new_data():
    rng = np.random.default_rng(0)
    gamma, beta = np.ones(3), np.zeros(3)
    state = fresh_state(3)
    for _ in range(60):
        x = 5 + 3 * rng.standard_normal((100, 3))
        BN.forward([x, gamma, beta], {}, mode="train", state=state)
    out, _ = BN.forward([5 + 3 * rng.standard_normal((500, 3)), gamma, beta], {}, mode="eval", state=state)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=0.15)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=0.1)


def test_kernel_skips_dx_when_not_needed():
    x, gamma, beta = bn_inputs((2, 3, 4, 4))
    out, cache = batchnorm_forward(x, gamma, beta, "train", None, 1e-5, 0.9)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    none, dgamma2, dbeta2 = BN.backward(dout, cache, {}, needs=(False, True, True))
    assert none is None
    np.testing.assert_array_equal(dgamma, dgamma2)
    np.testing.assert_array_equal(dbeta, dbeta2)
    np.testing.assert_allclose(dx.sum(axis=(0, 2, 3)), 0, atol=1e-12)  # normalisation removes the mean


def test_train_without_state_uses_batch_statistics():
    x, gamma, beta = bn_inputs((4, 3))
    a, _ = BN.forward([x, gamma, beta], {}, mode="train", state=None)
    b, _ = BN.forward([x, gamma, beta], {}, mode="train", state=fresh_state(3))
    np.testing.assert_array_equal(a, b)


def test_eval_without_state_is_an_error():
    with pytest.raises(FeedError, match="batchnorm: eval mode needs the running statistics"):
        BN.forward(bn_inputs((4, 3)), {}, mode="eval", state=None)


def test_train_on_one_value_per_channel_is_an_error():
    with pytest.raises(ShapeError, match=r"batchnorm: train mode needs more than one value per channel.*\(1, 3\)"):
        BN.forward(bn_inputs((1, 3)), {}, mode="train", state=fresh_state(3))


@pytest.mark.parametrize("shapes,match", [
    ([(3, 4), (3,), (3,)], r"batchnorm: input 'x' must have 1 dim \(D\) or 3 dims \(C, H, W\) per example, got shape \(3, 4\)"),
    ([(3, 4, 4), (4,), (3,)], r"batchnorm: gamma has shape \(4,\) but the input has 3 channels \(x shape \(3, 4, 4\)\); give gamma shape \(3,\)"),
    ([(5,), (5,), (5, 1)], r"batchnorm: beta has shape \(5, 1\) but the input has 5 features"),
])
def test_bad_shapes(shapes, match):
    with pytest.raises(ShapeError, match=match):
        BN.infer_shape(shapes, {})


def test_bad_dtypes_and_attrs():
    x, gamma, beta = bn_inputs((4, 3))
    with pytest.raises(DTypeError, match="batchnorm: input 'x' must be a float32 or float64 array, got int64"):
        BN.forward([x.astype(np.int64), gamma, beta], {}, state=fresh_state(3))
    with pytest.raises(DTypeError, match="batchnorm: x, gamma, beta must share one dtype, got float32, float64"):
        BN.forward([x.astype(np.float32), gamma, beta], {}, state=fresh_state(3))
    with pytest.raises(AttrError, match=r"batchnorm: momentum must be a number in \[0, 1\], got 1.5 .*PyTorch's momentum 0.1 is 0.9 here"):
        BN.infer_shape([(3,), (3,), (3,)], {"momentum": 1.5})
    with pytest.raises(AttrError, match="batchnorm: eps must be a positive number, got 0"):
        BN.forward([x, gamma, beta], {"eps": 0}, state=fresh_state(3))
    with pytest.raises(AttrError, match="batchnorm: mode must be 'train' or 'eval'"):
        BN.forward([x, gamma, beta], {}, mode="test", state=fresh_state(3))


def test_init_state():
    state = BN.init_state([(4, 8, 8), (4,), (4,)], {}, np.float32)
    np.testing.assert_array_equal(state["running_mean"], np.zeros(4, np.float32))
    np.testing.assert_array_equal(state["running_var"], np.ones(4, np.float32))
    assert state["running_mean"].dtype == np.float32
