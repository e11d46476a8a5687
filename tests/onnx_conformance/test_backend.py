"""dagnet.onnx.backend: the onnx.backend.base.Backend interface (prepare, run_model, run_node,
supports_device), its input forms, plan reuse, frozen inputs, refusals, and ONNX's own test
runner driving it."""
import io
import unittest

import numpy as np
import pytest
from onnx import TensorProto, helper

import dagnet.onnx.backend as backend
from dagnet.onnx import OnnxError, UnsupportedOnnxError
from tests.onnx_conformance import harness
from tests.onnx_conformance.graphs import arr, model

ort = pytest.importorskip("onnxruntime")
F = TensorProto.FLOAT


def conv_relu(w_as_input=False):
    """Conv(x, W, B) -> Relu; W an initializer, or a second graph input."""
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    inputs = {"x": ["N", 2, 5, 5], **({"W": [3, 2, 3, 3]} if w_as_input else {})}
    inits = {"B": arr(3, seed=2), **({} if w_as_input else {"W": arr(3, 2, 3, 3, seed=1)})}
    return model(nodes, inputs, {"y": ["N", 3, 5, 5]}, inits)


def ort_run(m, feeds):
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_prepare_run_matches_onnxruntime_in_every_input_form():
    m, x = conv_relu(), arr(4, 2, 5, 5)
    want = ort_run(m, {"x": x})[0]
    rep = backend.prepare(m)
    for inputs in ([x], (x,), {"x": x}, x):
        out = rep.run(inputs)
        np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-6)
        assert out["y"] is out[0] and out.y is out[0]  # answers to the output's name too


def test_plan_is_kept_for_the_same_signature_and_rebuilt_for_another_batch():
    rep = backend.prepare(conv_relu())
    rep.run([arr(4, 2, 5, 5)])
    plan = rep._built[2]
    rep.run([arr(4, 2, 5, 5, seed=3)])
    assert rep._built[2] is plan
    x = arr(7, 2, 5, 5)
    np.testing.assert_allclose(rep.run([x])[0], ort_run(conv_relu(), {"x": x})[0], rtol=1e-5,
                               atol=1e-6)


def test_an_input_read_as_a_weight_is_frozen_and_refrozen_when_it_changes():
    m = conv_relu(w_as_input=True)
    rep = backend.prepare(m)
    x = arr(2, 2, 5, 5)
    for seed in (1, 2):
        w = arr(3, 2, 3, 3, seed=seed)
        np.testing.assert_allclose(rep.run([x, w])[0], ort_run(m, {"x": x, "W": w})[0],
                                   rtol=1e-5, atol=1e-6)


def test_run_model_and_run_node():
    x = arr(3, 4)
    np.testing.assert_array_equal(backend.run_model(model([helper.make_node("Relu", ["x"], ["y"])],
                                                          {"x": [3, 4]}, {"y": [3, 4]}), [x])[0],
                                  np.maximum(x, 0))
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.5)
    a, b, c = arr(3, 5), arr(4, 5, seed=1), arr(4, seed=2)
    y, = backend.run_node(node, [a, b, c])
    np.testing.assert_allclose(y, 0.5 * a @ b.T + c, rtol=1e-5, atol=1e-6)


def test_devices():
    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")
    with pytest.raises(OnnxError, match="'CUDA'.*runs on CPU"):
        backend.prepare(conv_relu(), "CUDA")


def test_unsupported_ops_are_refused_at_prepare():
    m = model([helper.make_node("Det", ["x"], ["y"])], {"x": [2, 3, 3]}, {"y": [2]})
    assert not backend.is_compatible(m) and backend.is_compatible(conv_relu())
    with pytest.raises(UnsupportedOnnxError, match="Det"):
        backend.prepare(m)


def test_inputs_that_differ_in_their_leading_dimension_are_read_unbatched():
    """No shared batch: the backend imports every input with its full shape (tensor-shape)."""
    m = model([helper.make_node("Add", ["a", "b"], ["y"])], {"a": [2, 3], "b": [1, 3]}, {"y": [2, 3]})
    a, b = arr(2, 3), arr(1, 3)
    np.testing.assert_array_equal(backend.run_model(m, [a, b])[0], a + b)


def test_rank_1_data_runs_as_a_constant_or_as_an_unbatched_input():
    relu = model([helper.make_node("Relu", ["x"], ["y"])], {"x": [3]}, {"y": [3]})
    x = arr(3)
    np.testing.assert_array_equal(backend.run_model(relu, [x])[0], np.maximum(x, 0))
    concat = model([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], {"x": [3]}, {"y": [6]})
    np.testing.assert_array_equal(backend.run_model(concat, [x])[0], np.concatenate([x, x]))


def test_wrong_input_count_and_missing_names():
    rep = backend.prepare(conv_relu())
    with pytest.raises(OnnxError, match=r"got 2 input\(s\), the model takes 1: \['x'\]"):
        rep.run([arr(1, 2, 5, 5), arr(1)])
    with pytest.raises(OnnxError, match=r"inputs \['x'\] are missing"):
        rep.run({"z": arr(1, 2, 5, 5)})


def test_onnx_own_runner_drives_the_backend(monkeypatch):
    """onnx.backend.test.BackendTest (the runner onnxruntime's conformance uses) runs node and
    model cases through dagnet.onnx.backend; its node cases are limited to two cheap ops."""
    import onnx.backend.test.runner as runner

    real = runner.load_model_tests

    def few_node_cases(*args, kind=None, **kwargs):
        if kind == "node":
            return [*harness.node_cases("Relu").values(), *harness.node_cases("Conv").values()]
        return real(*args, kind=kind, **kwargs)

    monkeypatch.setattr(runner, "load_model_tests", few_node_cases)
    bt = runner.Runner(backend, __name__)
    bt.include(r"^test_(relu|conv_with_strides_padding|Conv2d|ELU|Linear|operator_mm)_cpu$")
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(c)
                               for c in bt.test_cases.values())
    result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
    assert not result.failures and not result.errors, result.failures + result.errors
    assert result.testsRun - len(result.skipped) == 6
