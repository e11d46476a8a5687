"""The importer fixes conformance showed (each with existing dagnet ops): batchnorm on (N, C, L)
and (N, C, D, H, W), Gemm adding a computed C (torch's addmm), Dropout in training mode refused
rather than run as the identity, and clear errors where the import used to crash."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import dagnet
from dagnet.onnx import OnnxError, load
from tests.onnx_conformance.graphs import arr, model

ort = pytest.importorskip("onnxruntime")
F = TensorProto.FLOAT


def same_as_onnxruntime(m, feeds):
    got = load(m)
    plan = dagnet.compile(got.graph, mode="eval", params=got.params, state=got.state)
    out = plan.forward(feeds, mode="eval")
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for name, w in zip(got.graph.outputs, want):
        np.testing.assert_allclose(out[name], w, rtol=1e-5, atol=1e-5)
    return got


@pytest.mark.parametrize("shape", [(3, 4, 7), (2, 4, 3, 5, 6)], ids=["BatchNorm1d", "BatchNorm3d"])
def test_batchnorm_of_rank_3_and_5_normalises_per_channel(shape):
    c = shape[1]
    stats = {"s": arr(c, seed=1), "b": arr(c, seed=2), "m": arr(c, seed=3),
             "v": np.abs(arr(c, seed=4)) + 0.5}
    m = model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
               helper.make_node("Relu", ["y"], ["z"])],
              {"x": ["N", *shape[1:]]}, {"z": ["N", *shape[1:]]}, stats)
    got = same_as_onnxruntime(m, {"x": arr(*shape)})
    assert [n.op for n in got.graph if n.op not in ("input", "param")] == \
        ["reshape", "batchnorm", "reshape", "relu"]


def test_gemm_adds_a_computed_c_like_torch_addmm():
    m = model([helper.make_node("Gemm", ["x", "w1"], ["h"]),
               helper.make_node("Gemm", ["x", "w2", "h"], ["y"], transB=1, alpha=0.5)],
              {"x": ["N", 3]}, {"y": ["N", 4]}, {"w1": arr(3, 4, seed=1), "w2": arr(4, 3, seed=2)})
    got = same_as_onnxruntime(m, {"x": arr(5, 3)})
    assert [n.op for n in got.graph if n.op not in ("input", "param")] == ["affine", "affine", "add"]


def test_gemm_refuses_to_scale_a_computed_c():
    m = model([helper.make_node("Relu", ["x"], ["h"]),
               helper.make_node("Gemm", ["x", "w", "h"], ["y"], beta=0.5)],
              {"x": ["N", 3]}, {"y": ["N", 3]}, {"w": arr(3, 3)})
    with pytest.raises(OnnxError, match=r"Gemm node 'y': beta=0.5 scales the computed C 'h'"):
        load(m)


def test_dropout_in_training_mode_is_refused_unless_its_ratio_is_zero():
    def dropout(ratio):
        return model([helper.make_node("Dropout", ["x", "r", "t"], ["y"])], {"x": ["N", 3]},
                     {"y": ["N", 3]}, {"r": np.float32(ratio), "t": np.bool_(True)})
    with pytest.raises(OnnxError, match=r"Dropout node 'y': training_mode=1 \(input 't'\)"):
        load(dropout(0.3))
    same_as_onnxruntime(dropout(0.0), {"x": arr(2, 3)})


def test_a_constant_read_as_data_names_the_node():
    m = model([helper.make_node("Concat", ["x", "k"], ["y"], axis=1)], {"x": ["N", 3]},
              {"y": ["N", 6]}, {"k": arr(1, 3)})
    with pytest.raises(OnnxError, match=r"Concat node 'y': 'k' is a constant"):
        load(m)


def test_a_sequence_input_is_refused():
    seq = helper.make_tensor_sequence_value_info("s", F, [2, 3])
    g = helper.make_graph([helper.make_node("Identity", ["s"], ["y"])], "m", [seq],
                          [helper.make_tensor_sequence_value_info("y", F, [2, 3])])
    with pytest.raises(OnnxError, match=r"graph input 's' is a sequence; dagnet imports tensor "
                                        r"inputs only"):
        load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_an_opset_3_model_is_converted_concat_axis_defaulted_reshape_shape_an_input():
    """version_converter gives Concat its default axis 1 and moves Reshape's shape to an input."""
    m = model([helper.make_node("Concat", ["x", "x"], ["c"]),
               helper.make_node("Reshape", ["c"], ["y"], shape=[0, 2, -1])],
              {"x": ["N", 2, 3]}, {"y": ["N", 2, 6]}, opset=3)
    onnx.checker.check_model(m)
    got = load(m)
    assert got.notes == ["converted from opset 3 to 7 by onnx.version_converter"]
    x = arr(3, 2, 3)
    plan = dagnet.compile(got.graph, mode="eval", params=got.params, state=got.state)
    np.testing.assert_array_equal(plan.forward({"x": x}, mode="eval")["y"],
                                  np.concatenate([x, x], axis=1).reshape(3, 2, 6))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(1, 1), (11, 1), (11, 2), (11, -2), (13, 1), (13, 2)])
def test_softmax_axis_before_opset_13_flattens_the_trailing_block(op, opset, axis):
    """Before opset 13 `axis` coerces the input to 2-D at axis and normalises the trailing block
    (every axis from `axis` on); from 13 it is one axis. Checked against numpy and onnxruntime."""
    x = arr(3, 4, 5, 2) * 3
    m = model([helper.make_node(op, ["x"], ["y"], axis=axis)], {"x": ["N", 4, 5, 2]},
              {"y": ["N", 4, 5, 2]}, opset=opset)
    keep = tuple(range(axis % 4, 4)) if opset < 13 else (axis % 4,)
    z = x - x.max(axis=keep, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=keep, keepdims=True))
    got = same_as_onnxruntime(m, {"x": x})
    plan = dagnet.compile(got.graph, mode="eval", params=got.params, state=got.state)
    out = plan.forward({"x": x}, mode="eval")[got.graph.outputs[0]]
    np.testing.assert_allclose(out, logp if op == "LogSoftmax" else np.exp(logp), atol=1e-5)


@pytest.mark.parametrize("case", ["test_softmax_axis_1", "test_logsoftmax_axis_1"])
def test_older_opset_variants_expect_what_onnxruntime_computes_at_that_opset(case):
    """onnx.version_converter keeps Softmax's axis=1 when it moves an opset-13 case to opset 11,
    where axis=1 means the flattened trailing block: the case's opset-13 outputs are then wrong
    for the converted model (onnx.reference computes one axis at every opset). Each older
    variant's expected outputs are onnxruntime's for the converted model, so dagnet's import of
    the older semantics is what is tested."""
    from tests.onnx_conformance import harness

    op = "LogSoftmax" if "log" in case else "Softmax"
    variants = harness.older_opsets(harness.node_cases(op)[case], op)
    assert {f"{case}@1", f"{case}@11"} <= set(variants)
    for name, v in variants.items():
        assert harness.outcome(v) == (None, ""), name
