"""The initializers of param nodes (dagnet.init): their distributions, PyTorch's default, the
checks of their attrs, and that the builder and both spec forms reach them."""
import numpy as np
import pytest

from dagnet import Graph
from dagnet.errors import GraphError, SpecError
from dagnet.init import init_param

SHAPE = (200, 300)  # fan_in 200, fan_out 300: 60,000 draws per test


def draw(init, shape=SHAPE, seed=0, **attrs):
    return init_param("p", {"shape": list(shape), "init": init, **attrs},
                      np.random.default_rng(seed), np.float64)


@pytest.mark.parametrize("init,bound", [
    ("uniform", 0.05), ("he_uniform", np.sqrt(6 / 200)), ("xavier_uniform", np.sqrt(6 / 500)),
    ("torch", 1 / np.sqrt(200))])
def test_uniform_family_fills_its_interval(init, bound):
    w = draw(init)
    assert w.min() >= -bound and w.max() <= bound
    assert w.min() < -0.99 * bound and w.max() > 0.99 * bound  # the whole interval is used
    assert abs(w.mean()) < 0.02 * bound and abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound


def test_uniform_bounds_and_scale():
    w = draw("uniform", low=2.0, high=3.0)
    assert 2.0 <= w.min() < 2.01 and 2.99 < w.max() <= 3.0
    w = draw("uniform", scale=0.5)
    assert -0.5 <= w.min() < -0.49 and 0.49 < w.max() <= 0.5
    w = draw("he_uniform", scale=0.1)  # scale replaces the computed bound
    assert w.max() <= 0.1 and w.max() > 0.099


def test_gaussian_family_is_unchanged_by_the_new_initializers():
    """The same seed gives the same gaussian numbers as before uniforms existed."""
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(draw("he", seed=3), np.sqrt(2 / 200) * rng.standard_normal(SHAPE))


def test_torch_default_matches_pytorch_layers():
    """init='torch' draws weights and biases as torch.nn.Linear and Conv2d do."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    g = Graph()
    x = g.input("x", (3, 16, 16))
    fc = g.affine(g.conv2d(x, 64, 5, init="torch", name="c"), 50, init="torch", name="fc")
    assert fc.name == "fc"
    from dagnet.compiler import init_params

    ours = init_params(g, seed=0, dtype="float64")
    layers = {"c": torch.nn.Conv2d(3, 64, 5), "fc": torch.nn.Linear(64 * 12 * 12, 50)}
    for name, layer in layers.items():
        for port, theirs in (("w", layer.weight), ("b", layer.bias)):
            t = theirs.detach().double().numpy()
            o = ours[f"{name}.{port}"]
            bound = float(np.abs(t).max())  # near torch's bound: many draws
            assert np.abs(o).max() <= bound * 1.01 and np.abs(o).max() > 0.95 * bound, (name, port)
            assert abs(o.std() - t.std()) < 0.1 * t.std(), (name, port)
    assert g.node("fc.b").attrs == {"shape": [50], "init": "uniform", "decay": False,
                                    "scale": pytest.approx(1 / np.sqrt(64 * 12 * 12))}


def test_param_attr_checks():
    g = Graph()
    with pytest.raises(GraphError, match="u: give both low and high"):
        g.param("u", (3,), init="uniform", low=0.0)
    with pytest.raises(GraphError, match="u: low must be below high"):
        g.param("u", (3,), init="uniform", low=1.0, high=1.0)
    with pytest.raises(GraphError, match="u: low and high are the bounds of init uniform, not of he"):
        g.param("u", (3,), init="he", low=0.0, high=1.0)
    with pytest.raises(GraphError, match="u: give the uniform's bounds .* not both"):
        g.param("u", (3,), init="uniform", low=0.0, high=1.0, scale=0.5)


def test_both_spec_forms_and_to_spec_carry_uniform_inits():
    g = Graph.from_spec({"input": {"shape": [6]}, "init": "xavier_uniform",
                         "layers": [{"type": "fc", "units": 4}, {"type": "fc", "units": 3,
                                                                 "init": "torch"}]})
    assert g.node("fc1.w").attrs["init"] == "xavier_uniform"
    assert g.node("scores.b").attrs["init"] == "uniform"
    spec = {"nodes": [{"name": "u", "op": "param", "shape": [3], "init": "uniform", "low": -1,
                       "high": 2}]}
    g2 = Graph.from_spec(spec)
    assert g2.node("u").attrs == {"shape": [3], "init": "uniform", "decay": True, "low": -1.0,
                                  "high": 2.0}
    assert Graph.from_spec(g2.to_spec()).node("u").attrs == g2.node("u").attrs
    spec["nodes"][0]["high"] = -2
    with pytest.raises(SpecError, match=r"nodes\[0\].*low must be below high"):
        Graph.from_spec(spec)


def test_every_initializer_is_documented_and_draws():
    from dagnet.init import INIT_DOCS
    from dagnet.ops.declare import INITIALIZERS

    assert list(INIT_DOCS) == list(INITIALIZERS)
    for init in INITIALIZERS:
        w = draw(init, shape=(4, 3), fan_in=4, fan_out=3)
        assert w.shape == (4, 3) and np.isfinite(w).all()
