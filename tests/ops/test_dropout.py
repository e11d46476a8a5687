import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError, FeedError
from dagnet.ops import get_op
from tests.ops.harness import check_op

DROPOUT = get_op("dropout")


@pytest.mark.parametrize("shape", [(4, 5), (1, 7), (2, 3, 4, 4)])
@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9])
def test_dropout_train_gradients(shape, p):
    x = np.random.default_rng(0).standard_normal(shape)
    out, (dx,) = check_op("dropout", [x], {"p": p}, seed=3)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p))


@pytest.mark.parametrize("shape", [(4, 5), (1, 7), (2, 3, 4, 4)])
def test_dropout_eval_gradients(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    check_op("dropout", [x], {"p": 0.5}, mode="eval", expected=x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_the_mean_and_drops_a_fraction_p(p):
    x = 10 + np.random.default_rng(0).standard_normal((500, 500))
    out, _ = DROPOUT.forward([x], {"p": p}, mode="train", rng=np.random.default_rng(1))
    assert abs(out.mean() / x.mean() - 1) < 0.01
    assert abs(np.mean(out == 0) - p) < 0.01


def test_eval_and_p0_return_the_input_itself():
    x = np.ones((3, 4), np.float32)
    assert DROPOUT.forward([x], {"p": 0.5}, mode="eval")[0] is x
    assert DROPOUT.forward([x], {"p": 0.0}, mode="train", rng=np.random.default_rng(0))[0] is x
    assert DROPOUT.may_alias


def test_same_seed_same_mask_in_any_dtype():
    x = np.random.default_rng(0).standard_normal((6, 10)) + 5
    masks = [DROPOUT.forward([x.astype(dt)], {"p": 0.5}, rng=np.random.default_rng(7))[0] != 0
             for dt in (np.float64, np.float64, np.float32)]
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])
    other = DROPOUT.forward([x], {"p": 0.5}, rng=np.random.default_rng(8))[0] != 0
    assert not np.array_equal(masks[0], other)


def test_backward_uses_the_forward_mask():
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    out, cache = DROPOUT.forward([x], {"p": 0.4}, rng=np.random.default_rng(0))
    (dx,) = DROPOUT.backward(np.ones_like(out), cache, {"p": 0.4})
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx != 0, out != 0)
    np.testing.assert_allclose(dx[dx != 0], 1 / 0.6, rtol=1e-6)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_bad_p(p):
    with pytest.raises(AttrError, match=rf"dropout: p must be a number in \[0, 1\), got {p}"):
        DROPOUT.forward([np.ones((2, 2))], {"p": p}, rng=np.random.default_rng(0))


def test_train_needs_an_rng_and_float_input():
    with pytest.raises(FeedError, match="dropout: train mode needs an explicit rng"):
        DROPOUT.forward([np.ones((2, 2))], {"p": 0.5}, mode="train")
    with pytest.raises(DTypeError, match="dropout: input 'x' must be a float32 or float64 array, got int64"):
        DROPOUT.forward([np.ones((2, 2), np.int64)], {"p": 0.5}, rng=np.random.default_rng(0))
