import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError
from dagnet.ops import get_op
from tests.ops.harness import check_op

SHAPES = [(4, 5), (2, 3, 4, 4), (1, 7)]


def away_from_zero(shape, seed=0):
    """Values with |x| >= 0.1 so finite differences never straddle relu's kink."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,attrs", [
    ("relu", {}), ("leaky_relu", {"alpha": 0.1}), ("sigmoid", {}), ("tanh", {}),
    ("elu", {"alpha": 1.0}), ("elu", {"alpha": 0.5}),
])
def test_activation_gradients(name, attrs, shape):
    check_op(name, [away_from_zero(shape)], attrs)


def test_relu_values():
    x = np.array([[-1.0, 0.0, 2.0]])
    out, (dx,) = check_op("relu", [np.array([[-1.0, 0.5, 2.0]])], {})
    np.testing.assert_array_equal(out, [[0.0, 0.5, 2.0]])
    y, _ = get_op("relu").forward([x], {})
    np.testing.assert_array_equal(y, [[0.0, 0.0, 2.0]])


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise"):
        y, _ = get_op("sigmoid").forward([x], {})
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])


def test_inplace_out_writes_into_buffer():
    x = away_from_zero((3, 4))
    for name in ["relu", "leaky_relu", "sigmoid", "tanh", "elu"]:
        ref, _ = get_op(name).forward([x.copy()], {})
        buf = x.copy()
        y, _ = get_op(name).forward([buf], {}, out=buf)
        assert y is buf
        np.testing.assert_allclose(buf, ref)


def test_integer_input_is_rejected():
    with pytest.raises(DTypeError, match="relu.*float32"):
        get_op("relu").forward([np.arange(4).reshape(2, 2)], {})


def test_bad_alpha():
    with pytest.raises(AttrError, match="alpha"):
        get_op("elu").forward([np.ones((2, 2))], {"alpha": -1.0})


# -- prelu: a learnable slope per channel (or one shared) ------------------------------------
PRELU_CASES = [((4, 5), (5,)), ((2, 3, 4, 4), (3, 1, 1)), ((2, 3, 4, 4), (1,)), ((3, 2, 6), (2, 1)),
               ((1, 7), (1,))]


@pytest.mark.parametrize("x_shape,s_shape", PRELU_CASES)
def test_prelu_gradients_and_values(x_shape, s_shape):
    x = away_from_zero(x_shape)
    slope = np.random.default_rng(3).uniform(-0.5, 0.8, s_shape)
    expected = np.where(x > 0, x, slope * x)
    check_op("prelu", [x, slope], expected=expected)


def test_prelu_builder_makes_a_slope_per_channel_or_one_shared():
    from dagnet import Graph

    g = Graph()
    x = g.input("x", (3, 4, 4))
    g.prelu(x, name="p")
    g.prelu(x, shared=True, slope_init=0.1, name="q")
    assert g.node("p.slope").attrs == {"shape": [3, 1, 1], "init": "constant", "decay": False,
                                       "value": 0.25}
    assert g.node("q.slope").attrs["shape"] == [1] and g.node("q.slope").attrs["value"] == 0.1


def test_prelu_bad_slope_shape_and_attr():
    from dagnet import Graph
    from dagnet.errors import ShapeError

    g = Graph()
    x = g.input("x", (3, 4, 4))
    with pytest.raises(ShapeError, match=r"shared param 's' has shape \(5,\).*\(3, 1, 1\)"):
        g.prelu(x, slope=g.param("s", (5,)))
    with pytest.raises(ShapeError, match=r"r \(prelu.*slope of shape \(5,\).*\(3, 1, 1\)"):
        g.op("prelu", x, "s", name="r")  # a node listing its params: checked as it is
    with pytest.raises(AttrError, match="slope_init"):
        g.prelu(x, slope_init="big")


# -- gelu, selu, softplus, softsign, hardsigmoid, hardswish, mish ------------------------------
def _erf(x):
    import math
    return np.vectorize(math.erf)(x)


def _sp(x):
    return np.log1p(np.exp(x))


FORMULAS = {
    ("gelu", "none"): lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
    ("gelu", "tanh"): lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    ("selu", None): lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
    ("softplus", None): _sp,
    ("softsign", None): lambda x: x / (1 + np.abs(x)),
    ("hardsigmoid", None): lambda x: np.clip(x / 6 + 0.5, 0, 1),
    ("hardswish", None): lambda x: x * np.clip(x + 3, 0, 6) / 6,
    ("mish", None): lambda x: x * np.tanh(_sp(x)),
}
NEW = [(name, {"approximate": v} if v else {}) for name, v in FORMULAS]


def spread(shape, seed=0):
    """Values over [-6, 6] (both sides of hardsigmoid's and hardswish's kinks at +-3), kept
    0.05 from the kinks and from 0 so finite differences never straddle one."""
    x = np.random.default_rng(seed).uniform(-6, 6, size=shape)
    for kink in (-3.0, 0.0, 3.0):
        near = np.abs(x - kink) < 0.05
        x[near] = kink + 0.05 * np.sign(x[near] - kink + 1e-12)
    return x


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,attrs", NEW)
def test_new_activation_gradients_and_values(name, attrs, shape):
    # gelu's tails below -3 are ~1e-6 values left after 1 + erf cancels: finite differences
    # of them are rounding noise element by element (torch's parity, norm-wise, covers them)
    x = spread(shape) / (2 if name == "gelu" else 1)
    check_op(name, [x], attrs, expected=FORMULAS[name, attrs.get("approximate")](x))


@pytest.mark.parametrize("name,attrs", NEW + [("hardsigmoid", {"alpha": 0.2, "beta": 0.4}),
                                              ("selu", {"alpha": 1.0, "gamma": 2.0})])
def test_new_activations_are_finite_at_extremes_and_run_in_place(name, attrs):
    op = get_op(name)
    x = np.array([[-1e30, -1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4, 1e30]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = op.forward([x], attrs)
        (dx,) = op.backward(np.ones_like(x), cache, attrs)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    x32 = x.astype(np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y32, cache = op.forward([x32], attrs)
        (dx32,) = op.backward(np.ones_like(x32), cache, attrs)
    assert np.isfinite(y32).all() and np.isfinite(dx32).all()
    if "input" not in op.saves:  # the memory pass may run it in place
        buf = x.copy()
        z, cache = op.forward([buf], attrs, out=buf)
        assert z is buf
        np.testing.assert_array_equal(buf, y)
        np.testing.assert_array_equal(op.backward(np.ones_like(x), cache, attrs)[0], dx)


def test_hardsigmoid_attrs_and_gelu_choice_are_checked():
    with pytest.raises(AttrError, match="alpha"):
        get_op("hardsigmoid").forward([np.ones((2, 2))], {"alpha": 0.0})
    with pytest.raises(AttrError, match="approximate must be one of none, tanh, got 'erf'"):
        get_op("gelu").forward([np.ones((2, 2))], {"approximate": "erf"})


def test_erf_kernel_matches_the_reference():
    from dagnet import reference, special

    x = np.random.default_rng(0).standard_normal((3, 1001)) * 3
    for dtype, tol in ((np.float64, 1e-15), (np.float32, 2e-7)):
        got = special.erf(x.astype(dtype))
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_allclose(got, reference.erf(x.astype(dtype)), rtol=tol, atol=tol)
        np.testing.assert_allclose(special.erf_numpy(x.astype(dtype)), got, rtol=tol, atol=tol)
    out = np.empty((3, 1001))
    assert special.erf(x, out=out) is out
    big = np.linspace(-4, 4, 200_000)  # long enough for the threaded path
    np.testing.assert_allclose(special.erf(big)[::997], reference.erf(big[::997]), rtol=1e-15)
