"""vit_tiny and mixer_tiny exported to ONNX: onnxruntime agrees with dagnet (1e-5, relative to
the largest output), and the file imports back to the same graph, params and plan, its biases
and position table trainable params again (not frozen constants)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import dagnet  # noqa: E402
from dagnet.gradcheck import norm_error  # noqa: E402
from dagnet.models import get_model  # noqa: E402
from dagnet.onnx import export, load  # noqa: E402
from tests.models.test_classics_onnx import TOL, randomized, structure  # noqa: E402

NAMES = ("vit_tiny", "mixer_tiny")


def run_both(plan, path, x):
    want = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x})
    return got, want


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("opset", [17, 20])
def test_matches_onnxruntime(name, opset, tmp_path):
    """Opset 17 (the default) writes gelu as its erf formula, 20 as ONNX's Gelu."""
    plan = randomized(get_model(name))
    model = export(plan, tmp_path / "m.onnx", opset=opset)
    assert ("Gelu" in {n.op_type for n in model.graph.node}) == (opset >= 20)
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    got, want = run_both(plan, tmp_path / "m.onnx", x)
    assert got.shape == want.shape == (3, 10)
    assert norm_error(got, want) < TOL


@pytest.mark.parametrize("name", NAMES)
def test_imports_back_to_the_same_plan(name, tmp_path):
    """At opset 20 (where gelu is one ONNX op) the import is the graph itself; every param,
    the added biases and vit's position table among them, comes back a param."""
    graph = get_model(name)
    plan = randomized(graph)
    export(plan, tmp_path / "m.onnx", opset=20)
    back = load(tmp_path / "m.onnx")
    assert structure(back.graph) == structure(graph)
    assert not [n.name for n in back.graph if n.op == "constant" and ".scores.y" not in n.name]
    assert set(back.params) == set(plan.params)
    for k, v in plan.params.items():
        np.testing.assert_array_equal(back.params[k], v)
    again = dagnet.compile(back.graph, mode="eval", params=back.params, state=back.state)
    assert [(s.name, s.op_name) for s in again.steps] == \
        [(s.name, s.op_name) for s in dagnet.compile(graph, mode="eval").steps
         if s.op.kind != "loss"]
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28)).astype(np.float32)
    want = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    out = again.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    assert norm_error(out, want) < TOL
