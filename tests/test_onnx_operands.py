"""ONNX round trips of params read as data and of token-wise layers: a bias added after a
matmul or a learned table added to the tokens is an initializer like any constant; dagnet's
export lists its params in the model's metadata so that they load back as params (trainable),
not as constants (frozen); and a reshape to (T, D) tokens before a MatMul stays a reshape."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import dagnet  # noqa: E402
from dagnet import Graph  # noqa: E402
from dagnet.onnx import export, load  # noqa: E402
from dagnet.onnx.common import PARAMS_KEY  # noqa: E402


def tokens_graph() -> Graph:
    """x (N, 12) -> reshape (3, 4) -> @ w + b + table, times a constant 0.5."""
    g = Graph("tokens")
    x = g.input("x", (12,))
    h = g.reshape(x, (3, 4), name="tokens")
    h = g.matmul(h, g.param("w", (4, 5), init="he", fan_in=4, fan_out=5), name="proj")
    h = g.add(h, g.param("b", (5,), init="zeros"), name="bias")
    h = g.add(h, g.param("table", (3, 5), init="gaussian"), name="pos")
    g.mul(h, 0.5, name="half")
    return g


def test_params_read_as_data_load_back_as_params(tmp_path):
    g = tokens_graph()
    plan = dagnet.compile(g, mode="eval", seed=1)
    model = export(plan, tmp_path / "m.onnx")
    listed = {p.key: p.value for p in model.metadata_props}[PARAMS_KEY]
    assert sorted(listed.split(",")) == ["b", "table", "w"]
    back = load(tmp_path / "m.onnx")
    assert [(n.name, n.op, n.inputs) for n in back.graph] == \
        [(n.name, n.op, n.inputs) for n in g]
    assert {p.name for p in back.graph.params} == {"w", "b", "table"}
    assert back.graph.node("half.y").op == "constant"  # a constant stays one
    assert not back.graph.node("b").attrs["decay"] and back.graph.node("table").attrs["decay"]
    again = dagnet.compile(back.graph, params=back.params)
    x = np.random.default_rng(0).standard_normal((2, 12)).astype(np.float32)
    np.testing.assert_allclose(again.forward({"x": x}, mode="eval")["half"],
                               plan.forward({"x": x}, mode="eval")["half"], rtol=1e-6)


def test_without_the_list_initializers_read_as_data_are_constants(tmp_path):
    """A model from elsewhere (no dagnet metadata): ONNX cannot tell a param added from a
    constant, so both load as constants; MatMul's weight is a param whoever wrote it."""
    model = export(dagnet.compile(tokens_graph(), mode="eval"), tmp_path / "m.onnx")
    del model.metadata_props[:]
    back = load(model)
    assert {p.name for p in back.graph.params} == {"w"}
    assert back.graph.node("b").op == back.graph.node("table").op == "constant"
