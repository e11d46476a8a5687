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
