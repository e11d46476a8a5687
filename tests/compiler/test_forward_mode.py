"""Forward-mode autodiff: the pass that plans the JVP sweep, dagnet.jvp, and dagnet.jacobian by
forward and by reverse mode, against each other, the closed form and finite differences."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.compiler import PASSES, run_passes
from dagnet.errors import AttrError, FeedError, GraphError
from tests.compiler.test_any_rank import classic, mixed


def closed_form(a, b):
    """The classic exercise's Jacobian: rows y1, y2; columns x1, x2."""
    s = 1 / (1 + np.exp(-a * b))
    return np.array([[np.exp(a) * np.sin(b) + b, np.exp(a) * np.cos(b) + a],
                     [s * (1 - s) * b, s * (1 - s) * a]])


def finite_jacobian(g, feeds, of, wrt, params=None, h=1e-6):
    """{of: {wrt: J}} by centered differences of a float64 eval plan."""
    plan = dagnet.compile(g, outputs=of, mode="eval", dtype="float64", params=params)
    J = {o: {} for o in of}
    for w in wrt:
        x = np.asarray(feeds[w], dtype=np.float64)
        cols = {o: [] for o in of}
        for k in range(x.size):
            moved = []
            for sign in (1, -1):
                xs = x.copy()
                xs.flat[k] += sign * h
                moved.append(plan.forward({**feeds, w: xs}))
            for o in of:
                cols[o].append((moved[0][o] - moved[1][o]) / (2 * h))
        for o in of:
            J[o][w] = np.stack(cols[o], axis=-1).reshape(np.shape(moved[0][o]) + x.shape)
    return J


def test_the_pass_marks_what_depends_on_the_inputs_given(monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("dagnet.compiler.fuse"), "ELEMENTWISE", True)
    g = run_passes(classic(), mode="eval", fuse=False, jvp=["x1"])
    assert g.meta["jvp"] == {"wrt": ["x1"], "order": ["p", "e", "es", "y1", "y2"]}
    g = run_passes(classic(), mode="eval", fuse=False, jvp=["x2"])
    assert g.meta["jvp"]["order"] == ["p", "s", "es", "y1", "y2"]  # exp(x1) carries none
    assert "forward_mode" in [p.name for p in PASSES]
    assert "jvp" not in run_passes(classic(), mode="eval").meta  # only when asked
    with pytest.raises(GraphError, match=r"e\+es\+y1: a fused step \(elementwise\(exp\+mul\+add\)\) "
                                         r"carries a tangent of x1; .*compile with fuse=False"):
        run_passes(classic(), mode="eval", jvp=["x1"])


def test_jvp_of_the_classic_exercise_is_a_column_of_its_jacobian():
    a, b = 1.5, 0.5
    values, tangents = dagnet.jvp(classic(), {"x1": a, "x2": b}, {"x1": 1.0})
    np.testing.assert_allclose(values["y1"], np.exp(a) * np.sin(b) + a * b, rtol=1e-14)
    np.testing.assert_allclose([tangents["y1"], tangents["y2"]], closed_form(a, b)[:, 0],
                               rtol=1e-14)
    assert np.shape(tangents["y1"]) == ()  # a scalar's tangent is a scalar
    _, tangents = dagnet.jvp(classic(), {"x1": a, "x2": b}, {"x1": 0.3, "x2": -2.0})
    np.testing.assert_allclose([tangents["y1"], tangents["y2"]],
                               closed_form(a, b) @ [0.3, -2.0], rtol=1e-13)


@pytest.mark.parametrize("strategy", ["forward", "reverse"])
def test_jacobian_of_the_classic_exercise(strategy):
    a, b = 0.7, -1.2
    feeds = {"x1": np.array(a), "x2": np.array(b)}
    J = dagnet.jacobian(classic(), feeds, of=["y1", "y2"], wrt=["x1", "x2"], strategy=strategy)
    got = np.array([[J[o][w] for w in ("x1", "x2")] for o in ("y1", "y2")])
    np.testing.assert_allclose(got, closed_form(a, b), rtol=1e-13)
    num = finite_jacobian(classic(), feeds, ["y1", "y2"], ["x1", "x2"])
    np.testing.assert_allclose(got, [[num[o][w] for w in ("x1", "x2")] for o in ("y1", "y2")],
                               rtol=1e-8)


def test_forward_and_reverse_agree_on_a_batched_graph_with_params_and_broadcasting():
    rng = np.random.default_rng(3)
    g = mixed()
    feeds = {"x": rng.standard_normal((2, 3, 4)), "t": rng.standard_normal(4)}
    params = dagnet.compile(g, dtype="float64").params
    kw = dict(of=["scores", "center"], wrt=["x", "t"], params=params)
    fwd = dagnet.jacobian(g, feeds, strategy="forward", **kw)
    rev = dagnet.jacobian(g, feeds, strategy="reverse", **kw)
    num = finite_jacobian(g, feeds, kw["of"], kw["wrt"], params)
    for o in kw["of"]:
        for w in kw["wrt"]:
            assert fwd[o][w].shape == np.shape(num[o][w])
            np.testing.assert_allclose(fwd[o][w], rev[o][w], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(fwd[o][w], num[o][w], rtol=1e-6, atol=1e-9)
    assert fwd["scores"]["x"].shape == (2, 5, 2, 3, 4)


def test_jvp_through_an_mlp_matches_the_directional_difference():
    g = Graph("mlp")
    x = g.input("x", (6,))
    h = g.tanh(g.affine(x, units=5, name="fc1"), name="h")
    y = g.sigmoid(g.affine(h, units=3, name="fc2"), name="y")
    g.outputs = [y]
    plan = dagnet.compile(g, mode="eval", dtype="float64")
    rng = np.random.default_rng(0)
    x0, t = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    _, tangents = dagnet.jvp(g, {"x": x0}, {"x": t}, params=plan.params)
    num = (plan.forward({"x": x0 + 1e-6 * t})["y"] - plan.forward({"x": x0 - 1e-6 * t})["y"]) / 2e-6
    np.testing.assert_allclose(tangents["y"], num, rtol=1e-7, atol=1e-10)


def test_an_output_that_does_not_depend_on_the_tangents_gets_zero():
    g = Graph()
    a = g.input("a", (), batched=False)
    b = g.input("b", (), batched=False)
    g.outputs = [g.exp(a, name="ea"), g.sin(b, name="sb")]
    _, tangents = dagnet.jvp(g, {"a": 1.0, "b": 2.0}, {"a": 1.0})
    assert tangents["sb"] == 0 and tangents["ea"] == pytest.approx(np.e)


def test_forward_mode_errors_name_the_node_the_input_and_the_fix():
    g = Graph()
    x = g.input("x", (3,))
    g.softmax(g.exp(x, name="e"), name="s")
    feeds = {"x": np.ones((2, 3))}
    with pytest.raises(GraphError, match=r"s: op 'softmax' has no forward-mode rule \(jvp\) and "
                                         r"its value depends on x; .*strategy='reverse'"):
        dagnet.jvp(g, feeds, {"x": np.ones((2, 3))})
    J = dagnet.jacobian(g, {"x": np.ones((1, 3))}, of="s", wrt="x")  # reverse mode works
    assert J["s"]["x"].shape == (1, 3, 1, 3)
    with pytest.raises(FeedError, match=r"tangent 'x': expected the shape of its feed \(2, 3\), "
                                        r"got \(3,\)"):
        dagnet.jvp(g, feeds, {"x": np.ones(3)}, outputs=["e"])
    with pytest.raises(GraphError, match="tangent given for 'e', which is not an input"):
        dagnet.jvp(g, feeds, {"e": np.ones((2, 3))}, outputs=["e"])
    with pytest.raises(AttrError, match=r"jacobian: strategy must be one of \('forward', "
                                        r"'reverse'\), got 'fwd'"):
        dagnet.jacobian(g, feeds, of="e", wrt="x", strategy="fwd")
