"""Ops that write their param gradients where they are told (Op.writes_grads): bitwise the
gradients they return otherwise, in the arrays given."""
import numpy as np
import pytest

from dagnet.ops import get_op


@pytest.mark.parametrize("op_name", ["affine", "affine+relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_written_into_given_arrays_are_the_same(op_name, dtype):
    op = get_op(op_name)
    assert op.writes_grads
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 4)).astype(dtype)
    w = rng.standard_normal((12, 5)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    attrs = {"units": 5}
    y, cache = op.forward([x, w, b], attrs)
    dout = rng.standard_normal(y.shape).astype(dtype)
    plain = op.backward(dout, cache, attrs)
    into = {1: np.full(w.shape, np.nan, dtype), 2: np.full(b.shape, np.nan, dtype)}
    written = op.backward(dout, cache, attrs, grads=into)
    assert written[1] is into[1] and written[2] is into[2]
    for a, g in zip(plain, written):
        assert np.array_equal(a, g)
