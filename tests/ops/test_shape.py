import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError, ShapeError
from dagnet.ops import get_op
from tests.ops.harness import check_op


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 5), (3, 2, 3), (1, 2, 1, 3, 2)])
def test_flatten(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    out, (dx,) = check_op("flatten", [x], expected=x.reshape(shape[0], -1))
    assert dx.shape == shape


@pytest.mark.parametrize("shape,target,want", [
    ((2, 12), (3, 4), (3, 4)),
    ((1, 3, 4, 4), (-1,), (48,)),
    ((2, 48), [3, -1, 4], (3, 4, 4)),
    ((3, 2, 6), (4, 3), (4, 3)),
])
def test_reshape(shape, target, want):
    x = np.random.default_rng(0).standard_normal(shape)
    out, _ = check_op("reshape", [x], {"shape": target}, expected=x.reshape((shape[0],) + want))
    assert out.shape == (shape[0],) + want


def test_shape_ops_return_views_and_declare_it():
    x = np.zeros((2, 3, 4))
    for name, attrs in (("flatten", {}), ("reshape", {"shape": (4, 3)})):
        op = get_op(name)
        y, cache = op.forward([x], attrs)
        assert np.shares_memory(y, x)
        (dx,) = op.backward(y, cache, attrs)
        assert np.shares_memory(dx, y) and dx.shape == x.shape
        assert op.may_alias and op.saves == frozenset()


@pytest.mark.parametrize("target,err,match", [
    ((5, -1), ShapeError, r"reshape: cannot reshape per-example shape \(3, 4, 4\) \(48 values\) to \(5, -1\); the target must hold 48 values"),
    ((7, 7), ShapeError, r"reshape: cannot reshape per-example shape \(3, 4, 4\) \(48 values\) to \(7, 7\)"),
    ((-1, -1), AttrError, r"reshape: shape must be a list of non-negative integers with at most one -1, got \(-1, -1\)"),
    ((-2, 24), AttrError, r"reshape: shape must be .*, got \(-2, 24\)"),
])
def test_reshape_bad_targets(target, err, match):
    with pytest.raises(err, match=match):
        get_op("reshape").infer_shape([(None, 3, 4, 4)], {"shape": target})


def test_reshape_needs_a_shape_and_float_input():
    with pytest.raises(AttrError, match="reshape: attr 'shape' is required"):
        get_op("reshape").infer_shape([(None, 3, 4)], {})
    with pytest.raises(DTypeError, match="flatten: input 'x' must be a float32 or float64 array, got int64"):
        get_op("flatten").forward([np.zeros((2, 3), np.int64)], {})
