"""The tensor-math ops (elementwise, unary, reductions, matmul, einsum): float64 gradient checks
on random shapes with broadcasting and size-1 axes, values with and without the batch axis,
values against numpy, and shape errors that name the shapes and the rule that failed."""
import numpy as np
import pytest

from dagnet import Graph
from dagnet.errors import AttrError, ShapeError
from dagnet.ops import get_op
from dagnet.special import erf_numpy as erf  # the numpy twin; test_activation checks the kernel
from tests.ops.harness import check_op


def rand(shape, seed=0, lo=None, hi=None):
    rng = np.random.default_rng(seed)
    if lo is not None:
        return rng.uniform(lo, hi, shape)
    return rng.standard_normal(shape)


# (shapes, which are batched): the batch axis is the first axis of a batched operand
BROADCASTS = [
    (((2, 3, 4), (4,)), (True, False)),
    (((3, 1, 4), (1, 5, 1)), (False, False)),
    (((2, 1, 3), (2, 4, 1)), (True, True)),
    (((2, 3), ()), (True, False)),
    (((1, 3, 1), (1, 1, 2)), (True, False)),
    (((4,), (2, 4)), (False, True)),
]
BINARY = {
    "sub": (np.subtract, None), "mul": (np.multiply, None), "div": (np.divide, "y>0"),
    "pow": (np.power, "x>0"), "maximum": (np.maximum, None), "minimum": (np.minimum, None),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes, batched", BROADCASTS)
def test_binary_gradients_broadcasting(name, shapes, batched):
    fn, domain = BINARY[name]
    x, y = rand(shapes[0], 1), rand(shapes[1], 2)
    if domain == "x>0":
        x = np.abs(x) + 0.5
    if domain == "y>0":
        y = np.sign(y) * (np.abs(y) + 0.5)
    check_op(name, [x, y], expected=fn(x, y), batched=batched)


@pytest.mark.parametrize("shapes, batched", BROADCASTS)
def test_where_routes_the_gradient_by_the_mask(shapes, batched):
    x, y = rand(shapes[0], 1), rand(shapes[1], 2)
    cond = (rand(np.broadcast_shapes(x.shape, y.shape), 3) > 0).astype(np.float64)
    out, grads = check_op("where", [cond, x, y], expected=np.where(cond != 0, x, y),
                          batched=(batched[0] or batched[1], *batched))
    assert grads[0] is None


@pytest.mark.parametrize("name, fn", [("equal", np.equal), ("less", np.less),
                                      ("less_equal", np.less_equal), ("greater", np.greater),
                                      ("greater_equal", np.greater_equal)])
def test_comparisons_give_float_masks_and_no_gradient(name, fn):
    x = np.round(rand((3, 4), 1))
    y = np.round(rand((4,), 2))
    op = get_op(name)
    for dtype in (np.float32, np.float64):
        out, cache = op.forward([x.astype(dtype), y.astype(dtype)], {})
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, fn(x, y).astype(dtype))
    assert op.backward(out, cache, {}) == (None, None)
    assert not op.needs_grad(0) and not op.needs_grad(1)


UNARY = {
    "exp": (np.exp, None), "log": (np.log, "pos"), "sqrt": (np.sqrt, "pos"),
    "reciprocal": (np.reciprocal, "nonzero"), "abs": (np.abs, "nonzero"), "neg": (np.negative, None),
    "sin": (np.sin, None), "cos": (np.cos, None), "erf": (erf, None), "sign": (np.sign, "nonzero"),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape, batched", [((2, 3, 4), True), ((), False), ((1, 5), False),
                                            ((3, 1), True)])
def test_unary_gradients(name, shape, batched):
    fn, domain = UNARY[name]
    x = rand(shape, 4)
    if domain == "pos":
        x = np.abs(x) + 0.2
    elif domain == "nonzero":
        x = np.sign(x) * (np.abs(x) + 0.2) + (x == 0) * 0.5
    check_op(name, [x], expected=fn(x), batched=(batched,))


@pytest.mark.parametrize("attrs", [{"min": -0.5, "max": 0.7}, {"min": 0.1}, {"max": -0.2}, {}])
def test_clip(attrs):
    x = rand((4, 5), 5)
    x = x + 0.05 * np.sign(x)  # away from the kinks the limits make
    lo, hi = attrs.get("min"), attrs.get("max")
    check_op("clip", [x], attrs, expected=np.clip(x, lo, hi) if attrs else x)


def test_clip_refuses_min_above_max():
    with pytest.raises(AttrError, match=r"clip: min 2 is above max 1"):
        get_op("clip").infer_shape([(3,)], {"min": 2.0, "max": 1.0})


def test_erf_matches_math_erf_to_float64_precision():
    import math

    x = np.concatenate([np.linspace(-8, 8, 4001), [0.0, 0.46875, -0.46875, 4.0, -4.0, 27.0, -30.0]])
    want = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(erf(x) - want)) < 4e-16
    assert erf(np.float32(0.5)).dtype == np.float32 and np.isnan(erf(np.array([np.nan])))[0]


REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod,
              "l2": lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("shape, axes, keepdims", [
    ((2, 3, 4), [2], False), ((2, 3, 4), [1, -1], True), ((2, 3, 4), [0], False),
    ((2, 3, 4), None, False), ((3, 1, 2), [1], False), ((2, 3, 4), [0, 2], True)])
def test_reductions(name, shape, axes, keepdims):
    x = rand(shape, 6)
    attrs = {"keepdims": keepdims} if axes is None else {"axes": axes, "keepdims": keepdims}
    axis = None if axes is None else tuple(axes)
    check_op(name, [x], attrs, expected=REDUCTIONS[name](x, axis=axis, keepdims=keepdims))


def test_reduction_over_the_batch_axis_gives_an_unbatched_value():
    g = Graph()
    x = g.input("x", (3, 4))
    for axes, keep, shape, batched in [([0], False, (3, 4), False), ([0], True, (1, 3, 4), False),
                                       ([1, 2], False, (), True), (None, False, (), False),
                                       ([-1], True, (3, 1), True)]:
        n = g.mean(x, axes=axes, keepdims=keep)
        assert (g.shape_of(n), g.batched(n)) == (shape, batched), (axes, keep)


def test_prod_gradient_is_exact_with_zeros():
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 4.0, 2.0]])
    out, grads = check_op("prod", [x], {"axes": [1]}, expected=np.prod(x, axis=1),
                          dout=np.ones(3))
    np.testing.assert_allclose(grads[0], [[0, 6, 0], [0, 0, 0], [8, 2, 4]])


def test_max_shares_the_gradient_among_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    op = get_op("max")
    y, cache = op.forward([x], {"axes": [1]})
    (dx,) = op.backward(np.array([1.0, 3.0]), cache, {"axes": [1]})
    np.testing.assert_allclose(dx, [[0, 0.5, 0.5], [1, 1, 1]])


def test_argmax_gives_int64_indices_and_takes_the_first_maximum():
    x = np.array([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]])
    op = get_op("argmax")
    y, _ = op.forward([x], {})
    assert y.dtype == np.int64 and y.tolist() == [1, 0]
    assert op.forward([x], {"axis": 0, "keepdims": True})[0].tolist() == [[1, 0, 1]]
    assert op.infer_shape([(None, 3)], {}) == (None,) and op.infer_shape([(None, 3)], {"axis": 0}) == (3,)
    assert op.backward(None, None, {}) == (None,)


@pytest.mark.parametrize("shapes, batched", [
    (((2, 3, 4), (4, 5)), (True, False)),
    (((2, 4), (4,)), (True, False)),
    (((4,), (2, 4, 3)), (False, True)),
    (((2, 1, 3, 4), (5, 4, 2)), (True, False)),
    (((2, 3, 4), (2, 4, 5)), (True, True)),
    (((3, 4), (4, 2)), (False, False)),
    (((4,), (4,)), (False, False)),
])
def test_matmul(shapes, batched):
    a, b = rand(shapes[0], 1), rand(shapes[1], 2)
    check_op("matmul", [a, b], expected=np.matmul(a, b), batched=batched)


@pytest.mark.parametrize("eq, shapes, batched", [
    ("ntd,dm->ntm", ((2, 3, 4), (4, 5)), (True, False)),
    ("nij,njk->nik", ((2, 3, 4), (2, 4, 2)), (True, True)),
    ("ij->i", ((3, 4),), (False,)),
    ("ni,ni->n", ((2, 3), (2, 3)), (True, True)),
    ("nhtd,nhsd->nhts", ((2, 2, 3, 4), (2, 2, 5, 4)), (True, True)),
    ("ij,j->", ((3, 4), (4,)), (False, False)),
    ("ni,ij,j->nj", ((2, 3), (3, 4), (4,)), (True, False, False)),
    ("ni->i", ((2, 3),), (True,)),
])
def test_einsum(eq, shapes, batched):
    xs = [rand(s, i) for i, s in enumerate(shapes)]
    check_op("einsum", xs, {"equation": eq}, expected=np.einsum(eq, *xs), batched=batched)


# -- shape errors: the node, the shapes and the rule ----------------------------------------------
def test_broadcast_errors_name_the_node_the_shapes_and_the_rule():
    g = Graph()
    x = g.input("x", (3, 4))
    with pytest.raises(ShapeError, match=r"^m \(mul, inputs x \(N, 3, 4\), m\.y \(5, 4\)\): mul: "
                                         r"cannot broadcast x \(N, 3, 4\), y \(5, 4\): axis -2 has "
                                         r"size 3 in x and 5 in y; numpy broadcasting needs equal "
                                         r"sizes or 1"):
        g.mul(x, np.ones((5, 4)), name="m")
    with pytest.raises(ShapeError, match=r"the batch axis N of x meets size 2 of y \(axis -3\); "
                                         r"against the batch axis an unbatched operand needs size 1"):
        g.sub(x, np.ones((2, 3, 4)), name="s")
    with pytest.raises(ShapeError, match=r"x1 has more axes than the batch x0, so the batch axis N "
                                         r"would not lead the result.*at most 3 axes"):
        g.add(x, np.ones((2, 1, 3, 4)), name="a")
    assert "m" not in g and "m.y" not in g and "a.x1" not in g  # failing calls leave nothing


def test_matmul_refuses_to_contract_the_batch_axis():
    g = Graph()
    x = g.input("x", (4,))
    w = g.constant(np.ones((3, 5)))
    with pytest.raises(ShapeError, match=r"mm \(matmul, .*a \(5, 4\) @ b \(N, 4\) would contract "
                                         r"b's first matrix axis, the batch axis N"):
        g.matmul(np.ones((5, 4)), x, name="mm")
    with pytest.raises(ShapeError, match=r"a's last axis \(4\) must equal b's second-to-last axis \(3\)"):
        g.matmul(x, w, name="mm")


def test_einsum_errors():
    g = Graph()
    x = g.input("x", (3, 4))
    with pytest.raises(AttrError, match=r"'\.\.\.' is not supported"):
        g.einsum(x, equation="...ij->...i")
    with pytest.raises(AttrError, match=r"'nii' names an axis twice"):
        g.einsum(x, equation="nii->n")
    with pytest.raises(ShapeError, match=r"axis 'j' has sizes 4 and 5"):
        g.einsum(x, np.ones((5, 2)), equation="nij,jk->nik")
    with pytest.raises(ShapeError, match=r"batch axis stays the leading one"):
        g.einsum(x, equation="nij->inj")


def test_reduction_axes_out_of_range():
    with pytest.raises(AttrError, match=r"sum: axes \[3\]: axis 3 is out of range for a value with "
                                        r"3 axes \(the batch axis counted as 0\)"):
        get_op("sum").infer_shape([(None, 3, 4)], {"axes": [3]})
    with pytest.raises(AttrError, match=r"name one axis twice"):
        get_op("sum").infer_shape([(None, 3, 4)], {"axes": [1, -2]})
