import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError, GraphError, ShapeError
from dagnet.ops import get_op
from tests.ops.harness import check_op

ADD, CONCAT = get_op("add"), get_op("concat")


def randn(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("shape", [(4, 5), (1, 3), (2, 3, 4, 4)])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_add(shape, n):
    xs = randn(*[shape] * n)
    check_op("add", xs, expected=sum(xs))


def test_add_in_place_and_needs():
    a, b, c = randn((2, 3), (2, 3), (2, 3))
    want = a + b + c
    y, cache = ADD.forward([a, b, c], {}, out=a)
    assert y is a
    np.testing.assert_array_equal(y, want)
    dout = np.ones((2, 3))
    grads = ADD.backward(dout, cache, {}, needs=(True, False, True))
    assert grads[0] is dout and grads[1] is None and grads[2] is dout


@pytest.mark.parametrize("shapes, batched", [
    ([(2, 3, 4), (4,)], [True, False]),
    ([(2, 3, 1), (1, 5), (2, 1, 5)], [True, False, True]),
    ([(3, 1), (1, 4)], [False, False]),
    ([(2, 1), (2, 6), ()], [True, True, False]),
])
def test_add_broadcasts(shapes, batched):
    xs = randn(*shapes)
    check_op("add", xs, expected=sum(xs), batched=batched)


def test_add_shape_errors_list_every_input_and_the_rule():
    with pytest.raises(ShapeError, match=r"add: cannot broadcast x0 \(N, 3, 4\), x1 \(N, 3, 4\), "
                                         r"x2 \(N, 3, 2\): axis -1 has size 4 in x0 and 2 in x2; "
                                         r"numpy broadcasting needs equal sizes or 1"):
        ADD.infer_shape([(None, 3, 4), (None, 3, 4), (None, 3, 2)], {})
    a, b = randn((2, 3), (5, 3))  # batch sizes differ: caught at run time
    with pytest.raises(ShapeError, match=r"add: cannot broadcast x0 \(2, 3\), x1 \(5, 3\)"):
        ADD.forward([a, b], {})


@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3, 4, 4), (2, 5, 4, 4)], 1),
    ([(1, 2, 3, 3), (1, 1, 3, 3), (1, 4, 3, 3)], 1),
    ([(3, 4), (3, 2)], 1),
    ([(2, 3, 4, 2), (2, 3, 4, 5)], 3),
    ([(2, 3, 4, 2), (2, 3, 4, 5)], -1),
    ([(2, 3, 2, 4), (2, 3, 1, 4)], 2),
])
def test_concat(shapes, axis):
    xs = randn(*shapes)
    out, grads = check_op("concat", xs, {"axis": axis}, expected=np.concatenate(xs, axis=axis))
    for x, g in zip(xs, grads):
        assert g.shape == x.shape


def test_concat_default_axis_is_channels():
    xs = randn((2, 3, 4, 4), (2, 5, 4, 4))
    assert CONCAT.infer_shape([(None, 3, 4, 4), (None, 5, 4, 4)], {}) == (None, 8, 4, 4)
    y, cache = CONCAT.forward(xs, {})
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=1))
    grads = CONCAT.backward(y, cache, {}, needs=(False, True))
    assert grads[0] is None
    np.testing.assert_array_equal(grads[1], xs[1])


def test_concat_shape_errors_name_input_and_axis():
    with pytest.raises(ShapeError, match=r"concat: input x2 has shape \(N, 4, 8, 7\) but x0 has \(N, 3, 8, 8\): "
                                         r"they differ on axis 3, and only the concat axis 1 may differ"):
        CONCAT.infer_shape([(None, 3, 8, 8), (None, 2, 8, 8), (None, 4, 8, 7)], {"axis": 1})
    with pytest.raises(ShapeError, match=r"concat: input x1 has shape \(N, 2, 8\) but x0 has \(N, 3, 8, 8\): all inputs need the same number of dims"):
        CONCAT.infer_shape([(None, 3, 8, 8), (None, 2, 8)], {})
    with pytest.raises(ShapeError, match=r"concat: input x1 \(3, 8\) and x0 \(N, 8\): one has the batch axis N and the other not"):
        CONCAT.infer_shape([(None, 8), (3, 8)], {"axis": 1})
    a, b = randn((2, 3, 4), (5, 3, 4))
    with pytest.raises(ShapeError, match=r"concat: input x1 has shape \(5, 3, 4\) but x0 has \(2, 3, 4\): they differ on axis 0"):
        CONCAT.forward([a, b], {})


@pytest.mark.parametrize("axis,match", [
    (0, r"concat: axis 0 is the batch axis of \(N, 3, 4, 4\)"),
    (-4, "concat: axis -4 is the batch axis"),
    (4, r"concat: axis 4 is out of range for inputs \(N, 3, 4, 4\) of 4 axes; use -4..3"),
])
def test_concat_bad_axis(axis, match):
    with pytest.raises(AttrError, match=match):
        CONCAT.infer_shape([(None, 3, 4, 4), (None, 3, 4, 4)], {"axis": axis})


@pytest.mark.parametrize("op", [ADD, CONCAT])
def test_merge_dtypes_and_arity(op):
    a, b = randn((2, 3), (2, 3))
    with pytest.raises(DTypeError, match=f"{op.name}: x0, x1 must share one dtype, got float64, float32"):
        op.forward([a, b.astype(np.float32)], {})
    with pytest.raises(DTypeError, match=f"{op.name}: input 'x1' must be a float32 or float64 array, got int64"):
        op.forward([a, b.astype(np.int64)], {})
    with pytest.raises(GraphError, match=f"op '{op.name}' takes 2 to any number of inputs"):
        op.check_arity(1, "m")
    assert 7 in op.batched_inputs
