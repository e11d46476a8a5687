"""Each classic zoo model exported to ONNX: onnxruntime agrees with dagnet (1e-5, relative to
the largest output), and the file imports back to the same graph and weights; at test sizes
(tests/models/classic_sizes.py), batch 2."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import dagnet  # noqa: E402
from dagnet.gradcheck import norm_error  # noqa: E402
from dagnet.models import get_model  # noqa: E402
from dagnet.onnx import export, load  # noqa: E402
from tests.models.classic_sizes import SMALL, small  # noqa: E402

TOL = 1e-5


def randomized(graph, seed=0):
    """An eval plan with non-trivial params, biases and batchnorm statistics."""
    plan = dagnet.compile(graph, mode="eval", seed=seed)
    rng = np.random.default_rng(seed)
    for p in plan.params.values():
        p += (0.05 * rng.standard_normal(p.shape)).astype(p.dtype)
    for st in plan.state.values():
        st["running_mean"][...] = 0.1 * rng.standard_normal(st["running_mean"].shape)
        st["running_var"][...] = rng.uniform(0.5, 2.0, st["running_var"].shape)
    return plan


def structure(graph):
    """The op nodes (name, op, inputs, attrs) without the loss and labels, and param shapes."""
    nodes = [(n.name, n.op, list(n.inputs), n.attrs) for n in graph
             if n.op != "param" and n.kind != "loss" and n.name != "y"]
    return nodes, {n.name: tuple(n.attrs["shape"]) for n in graph.params}


def scores(plan, path, x):
    """(onnxruntime's scores of the file at path, the eval plan's) on x."""
    want = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    return got, want


def assert_imports_back(graph, plan, path, x):
    """The file at path loads as `graph` with plan's params, and compiles to the same eval
    steps, whose scores on x equal plan's; returns the loaded model."""
    back = load(path)
    assert structure(back.graph) == structure(graph)
    assert set(back.params) == set(plan.params)
    for k, v in plan.params.items():
        np.testing.assert_array_equal(back.params[k], v)
    again = dagnet.compile(back.graph, mode="eval", params=back.params, state=back.state)
    assert [(s.name, s.op_name) for s in again.steps] == \
        [(s.name, s.op_name) for s in dagnet.compile(graph, mode="eval").steps
         if s.op.kind != "loss"]
    want = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    out = again.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    assert norm_error(out, want) < TOL
    return back


@pytest.mark.parametrize("name", list(SMALL))
def test_classic_matches_onnxruntime_and_imports_back(name, tmp_path):
    graph = get_model(name, **small(name))
    plan = randomized(graph)
    path = tmp_path / f"{name}.onnx"
    export(plan, path)
    x = np.random.default_rng(1).standard_normal((2, *graph.shape_of("x"))).astype(np.float32)
    got, want = scores(plan, path, x)
    assert got.shape == want.shape == (2, graph.shape_of("scores")[0])
    assert norm_error(got, want) < TOL
    assert_imports_back(graph, plan, path, x)
