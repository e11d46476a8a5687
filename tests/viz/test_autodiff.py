"""The autodiff course's pictures (viz/autodiff.py): forward mode's tangents along the edges,
reverse mode's adjoints flowing back, checked against the closed form and dagnet.jacobian."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.errors import ArgumentError, GraphError
from dagnet.viz import render_autodiff
from dagnet.viz.autodiff import autodiff_values
from tests.compiler.test_any_rank import classic
from tests.compiler.test_forward_mode import closed_form

FEEDS = {"x1": 1.5, "x2": 0.5}


def test_forward_mode_carries_each_tangent_along_its_edges():
    values, tangents, edges = autodiff_values(classic(), FEEDS, "forward", wrt="x2")
    np.testing.assert_allclose([tangents["y1"], tangents["y2"]], closed_form(1.5, 0.5)[:, 1], rtol=1e-14)
    assert tangents["x2"] == 1 and tangents["x1"] == 0 and tangents["e"] == 0  # exp(x1)
    np.testing.assert_allclose(values["y1"], np.exp(1.5) * np.sin(0.5) + 0.75, rtol=1e-14)
    assert edges[("p", "y2", 0)] == tangents["p"] and edges[("s", "es", 1)] == tangents["s"]
    dot = render_autodiff(classic(), FEEDS, "forward", wrt="x2").source
    assert "forward mode" in dot and f"v = {values['y1']:.4g}" in dot and "s\u0307 = 0.8776" in dot  # s, combining dot


def test_reverse_mode_adjoints_sum_the_contributions_of_the_edges():
    values, adjoints, edges = autodiff_values(classic(), FEEDS, "reverse", of="y1")
    np.testing.assert_allclose([adjoints["x1"], adjoints["x2"]], closed_form(1.5, 0.5)[0], rtol=1e-14)
    assert adjoints["y2"] == 0  # not on a path to y1
    for node in ("x1", "x2", "p"):  # an adjoint is the sum of what flows back into it
        assert adjoints[node] == pytest.approx(sum(g for (s, _, _), g in edges.items() if s == node))
    assert not any(d == "y2" for _, d, _ in edges)
    dot = render_autodiff(classic(), FEEDS, "reverse", of="y1").source
    assert "dir=back" in dot and "reverse mode" in dot and "#BBBBBB" in dot  # p -> y2, faint


def test_reverse_mode_on_a_vector_equals_dagnets_jacobian():
    g = Graph("vec")
    x = g.input("x", (3,), batched=False)
    g.outputs = [g.sum(g.mul(g.exp(x, name="e"), x, name="m"), name="y")]
    x0 = np.array([0.1, -0.4, 0.7])
    _, adjoints, _ = autodiff_values(g, {"x": x0}, "reverse", of="y")
    J = dagnet.jacobian(g, {"x": x0}, of="y", wrt="x")["y"]["x"]
    np.testing.assert_allclose(adjoints["x"], J, rtol=1e-14)
    np.testing.assert_allclose(adjoints["x"], np.exp(x0) * (1 + x0), rtol=1e-14)
    assert "v\u0304 = 3 [1.22, 0.402, 3.42]" in render_autodiff(g, {"x": x0}, "reverse", of="y").source


def test_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(ArgumentError, match="mode must be one of"):
        autodiff_values(classic(), FEEDS, "sideways")
    with pytest.raises(ArgumentError, match=r"name the wrt= node \(one of x1, x2\)"):
        autodiff_values(classic(), FEEDS, "forward")
    with pytest.raises(GraphError, match="cannot differentiate the output 'y11'.*did you mean 'y1'"):
        autodiff_values(classic(), FEEDS, "reverse", of="y11")
    render_autodiff(classic(), FEEDS, "reverse", of="y2", path=tmp_path / "rev.svg")
    assert (tmp_path / "rev.svg").read_text().startswith("<?xml")
