"""Values of any rank, with or without the batch axis: unbatched inputs, constants, graph math
through the whole pipeline (shapes, memory, autodiff, runtime feeds) against the reference
interpreter and finite differences, and in both spec forms."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.errors import AttrError, FeedError, GraphError, ShapeError
from dagnet.gradcheck import numerical_gradient
from dagnet.infer import constant_array
from dagnet.interpreter import interpret, interpret_backward


def classic(dtype="float64"):
    """The autodiff course's exercise: y = (exp(x1) * sin(x2) + x1 * x2, sigmoid(x1 * x2)),
    a vector function of two scalars, every value unbatched."""
    g = Graph("classic")
    x1 = g.input("x1", (), batched=False)
    x2 = g.input("x2", (), batched=False)
    p = g.mul(x1, x2, name="p")
    y1 = g.add(g.mul(g.exp(x1, name="e"), g.sin(x2, name="s"), name="es"), p, name="y1")
    y2 = g.sigmoid(p, name="y2")
    g.outputs = [y1, y2]
    return g


def test_the_classic_exercise_runs_forward_and_backward_unbatched():
    g = classic()
    assert all(not g.batched(n) for n in g)
    plan = dagnet.compile(g, dtype="float64", wrt=["x1", "x2"])
    feeds = {"x1": np.array(1.5), "x2": np.array(0.5)}
    out = plan.forward(feeds)
    a, b = 1.5, 0.5
    np.testing.assert_allclose(out["y1"], np.exp(a) * np.sin(b) + a * b)
    np.testing.assert_allclose(out["y2"], 1 / (1 + np.exp(-a * b)))
    # reverse mode: one row of the Jacobian per seeded output
    grads = plan.backward({"y1": np.array(1.0)})
    np.testing.assert_allclose([grads["x1"], grads["x2"]],
                               [np.exp(a) * np.sin(b) + b, np.exp(a) * np.cos(b) + a])
    plan.forward(feeds)
    grads = plan.backward({"y2": np.array(1.0)})
    s = 1 / (1 + np.exp(-a * b))
    np.testing.assert_allclose([grads["x1"], grads["x2"]], [s * (1 - s) * b, s * (1 - s) * a])
    assert plan.graph.meta["memory"]["activations"]["peak"] == 0  # nothing scales with a batch
    assert plan.graph.meta["memory"]["fixed_bytes"] > 0


def mixed():
    """Batched data meeting unbatched inputs, params and constants: broadcasting, a reduction
    over the batch axis (an unbatched result), matmul and a loss."""
    g = Graph("mixed")
    x = g.input("x", (3, 4))
    t = g.input("t", (4,), batched=False)
    y = g.input("y", (), dtype="int64")
    w = g.param("w", (4, 5), init="xavier", fan_in=4, fan_out=5)
    h = g.matmul(g.mul(x, t, name="xt"), w, name="h")                    # (N, 3, 5)
    h = g.tanh(g.add(h, np.linspace(-1, 1, 5), name="hb"), name="ht")
    center = g.mean(h, axes=[0], keepdims=True, name="center")           # (1, 3, 5), unbatched
    z = g.sub(h, center, name="z")
    scores = g.sum(g.mul(z, 2.0, name="z2"), axes=[1], name="scores")    # (N, 5)
    g.softmax_cross_entropy(scores, y)
    return g


def test_mixed_graph_matches_the_interpreter_and_finite_differences():
    g = mixed()
    assert (g.shape_of("center"), g.batched("center")) == ((1, 3, 5), False)
    assert (g.shape_of("scores"), g.batched("scores")) == ((5,), True)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, 3, 4)), "t": rng.standard_normal(4),
             "y": rng.integers(0, 5, 4)}
    for fuse in (True, False):
        plan = dagnet.compile(g, dtype="float64", wrt=["t"], fuse=fuse)
        loss, grads = plan.loss_and_grads(feeds)
        values, caches = interpret(g, feeds, plan.params)
        assert loss == pytest.approx(float(values["loss"]), rel=1e-12)
        ref = interpret_backward(g, caches, {"loss": np.asarray(1.0)})
        np.testing.assert_allclose(grads["w"], ref["w"], rtol=1e-10)
        plan.forward(feeds)
        np.testing.assert_allclose(plan.backward()["t"], ref["t"], rtol=1e-10)

        def f():
            return dagnet.compile(g, dtype="float64", params=plan.params).forward(feeds)["loss"]
        num = numerical_gradient(f, feeds["t"])
        np.testing.assert_allclose(ref["t"], num, rtol=1e-6, atol=1e-9)


def test_unbatched_values_live_in_fixed_bytes_not_in_the_buffers():
    plan = dagnet.compile(mixed(), mode="eval", outputs=["scores", "center"])
    center = plan.graph.node("center")
    assert center.meta["buffer"] == -1 and not center.meta["batched"]
    assert plan.graph.meta["memory"]["fixed_bytes"] >= 15 * 4
    step = next(s for s in plan.steps if s.name == "center")
    assert not step.batched and "unbatched" in plan.describe()
    out = plan.forward({"x": np.ones((2, 3, 4), np.float32), "t": np.ones(4, np.float32)})
    assert out["scores"].shape == (2, 5) and out["center"].shape == (1, 3, 5)


def test_feeds_of_unbatched_inputs_are_checked_against_their_full_shape():
    plan = dagnet.compile(mixed(), mode="eval", outputs=["scores"])
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(FeedError, match=r"feed 't': expected shape \(4,\) \(an unbatched input: "
                                        r"no batch axis\), got \(2, 4\)"):
        plan.forward({"x": x, "t": np.ones((2, 4), np.float32)})
    with pytest.raises(FeedError, match=r"feed 'x': expected shape \(N, 3, 4\), got \(3, 4\)"):
        plan.forward({"x": x[0], "t": np.ones(4, np.float32)})
    # an unbatched feed takes no part in the batch size
    assert plan.forward({"x": x[:1], "t": np.ones(4, np.float32)})["scores"].shape == (1, 5)


def test_constants():
    g = Graph()
    c = g.constant([[1, 2], [3, 4]], name="c")
    f = g.constant(0.5, shape=[2, 3], name="f")
    i = g.constant([0, 2], dtype="int64", name="i")
    assert (g.shape_of(c), g.shape_of(f), g.shape_of(i)) == ((2, 2), (2, 3), (2,))
    assert c.attrs == {"value": [[1, 2], [3, 4]]}  # the default dtype is not written
    g.outputs = [g.matmul(c, f, name="m").name]
    plan = dagnet.compile(g, dtype="float64")
    np.testing.assert_allclose(plan.forward({})["m"], [[1.5] * 3, [3.5] * 3])
    assert plan.constants["c"].dtype == np.float64 and "i" not in plan.constants  # pruned
    assert constant_array(i.attrs, np.float32).dtype == np.int64
    with pytest.raises(ValueError):
        plan.constants["c"][0, 0] = 9  # shared by every run: read-only
    assert not plan.params


@pytest.mark.parametrize("kwargs, error, match", [
    ({"value": [[1, 2], [3]]}, AttrError, r"value must be a number or nested lists of numbers of "
                                          r"one rectangular shape"),
    ({"value": float("nan")}, AttrError, r"value must be a number or nested lists"),
    ({"value": [1.0, 2.0], "shape": [2]}, AttrError, r"shape \[2\] is for a single number to fill"),
    ({"value": 0.5, "dtype": "int64"}, AttrError, r"dtype int64 needs whole numbers"),
    ({"value": True}, AttrError, r"value must be a number"),
])
def test_constant_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Graph().constant(name="k", **kwargs)


def test_numbers_become_constants_only_where_a_port_takes_unbatched_values():
    g = Graph()
    x = g.input("x", (3,))
    m = g.mul(x, 2.0, name="m")
    assert g.node("m.y").op == "constant" and m.inputs == ["x", "m.y"]
    a = g.add(x, 1, [1.0, 2.0, 3.0], name="a")
    assert a.inputs == ["x", "a.x1", "a.x2"] and g.shape_of(a) == (3,)
    with pytest.raises(GraphError, match=r"c: conv2d's input 'x' takes a batched value, not the "
                                         r"number or array 2.0"):
        g.conv2d(2.0, 3, 3, name="c")


def test_spec_round_trip_and_both_forms():
    g = mixed()
    assert Graph.from_spec(g.to_spec()) == g
    seq = Graph.from_spec({
        "name": "seq", "input": {"shape": [3], "batched": False}, "loss": "none",
        "layers": [{"type": "mul", "y": 0.5}, {"type": "add", "x1": [1, 2, 3]}, {"type": "exp"},
                   {"type": "sum", "axes": 0}]})
    assert [n.op for n in seq] == ["input", "constant", "mul", "constant", "add", "exp", "sum"]
    out = dagnet.compile(seq, dtype="float64").forward({"x": np.array([0.0, 2.0, 4.0])})
    assert out["sum1"] == pytest.approx(np.exp([1, 3, 5]).sum())
    general = Graph.from_spec("""
nodes:
  - {name: a, op: input, shape: [2, 2], batched: false}
  - {name: two, op: constant, value: 2.0}
  - {name: sq, op: pow, inputs: [a, two]}
  - {name: total, op: sum, inputs: [sq], axes: [0, 1]}
""")
    out = dagnet.compile(general).forward({"a": np.array([[1, 2], [3, 4]], np.float32)})
    assert out["total"] == 30


def test_interpreter_gives_constants_the_feeds_dtype():
    g = Graph()
    x = g.input("x", (2,))
    g.outputs = [g.mul(x, 0.5, name="h").name]
    values, _ = interpret(g, {"x": np.ones((3, 2), np.float32)}, {})
    assert values["h"].dtype == np.float32


def test_validate_refuses_a_batch_axis_that_would_not_lead():
    g = Graph()
    x = g.input("x", (3,))
    g.add_node("matmul", [g.constant(np.ones((2, 1, 1))).name, "x"], name="bad")
    with pytest.raises(ShapeError, match=r"bad \(matmul, inputs const1 \(2, 1, 1\), x \(N, 3\)\)"):
        dagnet.compile(g, outputs=["bad"])
