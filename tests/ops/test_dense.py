import numpy as np
import pytest

from dagnet.errors import DTypeError, ShapeError
from dagnet.ops import get_op
from dagnet.ops.dense import affine_backward, affine_forward
from tests.ops.harness import check_op


def affine_inputs(x_shape, m, seed=0):
    rng = np.random.default_rng(seed)
    d = int(np.prod(x_shape[1:]))
    return [rng.standard_normal(x_shape), rng.standard_normal((d, m)), rng.standard_normal(m)]


@pytest.mark.parametrize("x_shape,m", [
    ((4, 5), 3), ((1, 6), 2), ((2, 3, 4), 5), ((3, 2, 3, 2), 4), ((1, 2, 2, 2, 2), 3),
])
def test_affine_gradients(x_shape, m):
    x, w, b = affine_inputs(x_shape, m)
    expected = x.reshape(x.shape[0], -1) @ w + b
    out, (dx, dw, db) = check_op("affine", [x, w, b], expected=expected)
    assert out.shape == (x_shape[0], m)
    assert dx.shape == x_shape


def test_affine_published_values():
    # The classic affine check: x = linspace(-0.1, 0.5) (2, 4, 5, 6), w = linspace(-0.2, 0.3) (120, 3).
    x = np.linspace(-0.1, 0.5, num=240).reshape(2, 4, 5, 6)
    w = np.linspace(-0.2, 0.3, num=360).reshape(120, 3)
    b = np.linspace(-0.3, 0.1, num=3)
    out, _ = get_op("affine").forward([x, w, b], {})
    np.testing.assert_allclose(out, [[1.49834967, 1.70660132, 1.91485297],
                                     [3.25553199, 3.5141327, 3.77273342]], rtol=1e-7)


def test_affine_skips_dx_when_not_needed():
    x, w, b = affine_inputs((3, 2, 2), 4)
    op = get_op("affine")
    out, cache = op.forward([x, w, b], {})
    dout = np.ones_like(out)
    dx, dw, db = op.backward(dout, cache, {}, needs=(False, True, True))
    assert dx is None
    _, dw_all, db_all = affine_backward(dout, affine_forward(x, w, b)[1])
    np.testing.assert_array_equal(dw, dw_all)
    np.testing.assert_array_equal(db, db_all)


def test_affine_shape_mismatch_names_shapes_and_fix():
    op = get_op("affine")
    with pytest.raises(ShapeError, match=r"affine: input has 320 features \(shape \(20, 4, 4\)\) "
                                         r"but weight expects 500 \(w shape \(500, 10\)\); give w shape \(320, 10\)"):
        op.infer_shape([(20, 4, 4), (500, 10), (10,)], {})


@pytest.mark.parametrize("shapes,match", [
    ([(6,), (6,), (3,)], r"affine: weight 'w' must have 2 dims \(D, M\), got shape \(6,\)"),
    ([(6,), (6, 3), (3, 1)], r"affine: bias 'b' has shape \(3, 1\) but w shape \(6, 3\) has 3 outputs"),
    ([(6,), (6, 3), (4,)], r"affine: bias 'b' has shape \(4,\).*give b shape \(3,\)"),
])
def test_affine_bad_param_shapes(shapes, match):
    with pytest.raises(ShapeError, match=match):
        get_op("affine").infer_shape(shapes, {})


def test_affine_forward_checks_shapes():
    x, w, b = affine_inputs((2, 3, 4), 5)
    with pytest.raises(ShapeError, match=r"affine: input has 12 features \(shape \(3, 4\)\) but weight expects 11"):
        get_op("affine").forward([x, w[:11], b], {})


def test_affine_dtypes():
    x, w, b = affine_inputs((2, 3), 4)
    with pytest.raises(DTypeError, match="affine: input 'x' must be a float32 or float64 array, got int64"):
        get_op("affine").forward([x.astype(np.int64), w, b], {})
    with pytest.raises(DTypeError, match="affine: x, w, b must share one dtype, got float32, float64, float64"):
        get_op("affine").forward([x.astype(np.float32), w, b], {})
