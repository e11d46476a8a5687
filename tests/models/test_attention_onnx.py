"""vit_tiny and mixer_tiny exported to ONNX: onnxruntime agrees with dagnet (1e-5, relative to
the largest output), and the file imports back to the same graph, params and plan, its biases
and position table trainable params again (not frozen constants)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from dagnet.gradcheck import norm_error  # noqa: E402
from dagnet.models import get_model  # noqa: E402
from dagnet.onnx import export  # noqa: E402
from tests.models.test_classics_onnx import (TOL, assert_imports_back, randomized,  # noqa: E402
                                            scores)

NAMES = ("vit_tiny", "mixer_tiny")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("opset", [17, 20])
def test_matches_onnxruntime(name, opset, tmp_path):
    """Opset 17 (the default) writes gelu as its erf formula, 20 as ONNX's Gelu."""
    plan = randomized(get_model(name))
    model = export(plan, tmp_path / "m.onnx", opset=opset)
    assert ("Gelu" in {n.op_type for n in model.graph.node}) == (opset >= 20)
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    got, want = scores(plan, tmp_path / "m.onnx", x)
    assert got.shape == want.shape == (3, 10)
    assert norm_error(got, want) < TOL


@pytest.mark.parametrize("name", NAMES)
def test_imports_back_to_the_same_plan(name, tmp_path):
    """At opset 20 (where gelu is one ONNX op) the import is the graph itself; every param,
    the added biases and vit's position table among them, comes back a param."""
    graph = get_model(name)
    plan = randomized(graph)
    export(plan, tmp_path / "m.onnx", opset=20)
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28)).astype(np.float32)
    back = assert_imports_back(graph, plan, tmp_path / "m.onnx", x)
    assert not [n.name for n in back.graph if n.op == "constant" and ".scores.y" not in n.name]
