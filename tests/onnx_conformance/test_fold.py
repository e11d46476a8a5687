"""What the classic architectures' exporters write, imported (issue 17 item 1): constant subgraphs
folded (torch's x.view(x.size(0), -1) chain, weights computed by nodes dagnet has no op for),
Caffe2's opset-6 models converted by onnx.version_converter with their fixed batch of 1 read
as the batch (and said so in a note), n-ary Sum, Softmax on (N, C, 1, 1) and before opset 13 on
(N, C, H, W); each compared with onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, version_converter

import dagnet
from dagnet.onnx import OnnxError, UnsupportedOnnxError, load
from dagnet.onnx.common import NotConstantError
from tests.onnx_conformance.graphs import arr, model

ort = pytest.importorskip("onnxruntime")
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def session(m):
    """onnxruntime on m (at opset 7 at least: it has no BatchNormalization-6 kernel)."""
    if m.opset_import[0].version < 7:
        m = version_converter.convert_version(m, 7)
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def run_both(m, feeds):
    """(dagnet's outputs, onnxruntime's, the OnnxModel) of m on feeds."""
    got = load(m)
    plan = dagnet.compile(got.graph, mode="eval", params=got.params, state=got.state)
    out = plan.forward(feeds, mode="eval")
    return [out[n] for n in got.graph.outputs], session(m).run(None, feeds), got


def assert_matches(m, feeds):
    got, want, imported = run_both(m, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    return imported


def torch_flatten(opset):
    """x.view(x.size(0), -1) as torch exports it, then a Gemm: Shape -> Gather -> Unsqueeze ->
    Concat -> Reshape (Unsqueeze's axes an attribute before opset 13, an input from 13)."""
    unsq = (helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]) if opset >= 13 else
            helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]))
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0))),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0), unsq,
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "b"], ["y"], transB=1)]
    inits = {"minus1": np.array([-1]), "zero1": np.array([0]), "W": arr(5, 24, seed=1),
             "b": arr(5, seed=2)}
    return model(nodes, {"x": ["N", 2, 3, 4]}, {"y": ["N", 5]}, inits, opset)


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_the_shape_chain_of_a_torch_flatten_folds_into_the_reshape(opset):
    m = torch_flatten(opset)
    imported = assert_matches(m, {"x": arr(3, 2, 3, 4, seed=3)})
    assert sorted(n.op for n in imported.graph) == ["affine", "input", "param", "param"]
    # the folded target keeps the batch symbolic: another batch size runs the same graph
    assert_matches(m, {"x": arr(7, 2, 3, 4, seed=4)})


def test_weights_computed_by_constant_nodes_fold_whatever_their_op():
    """torch's bias-free Linear (Transpose of W into MatMul), a scale computed by Mul and Sqrt
    (ops dagnet has no import for) and a bias from ConstantOfShape: all constants at import."""
    nodes = [helper.make_node("Transpose", ["W"], ["Wt"], perm=[1, 0]),
             helper.make_node("Mul", ["Wt", "two"], ["W2"]),
             helper.make_node("Sqrt", ["four"], ["root"]),
             helper.make_node("Div", ["W2", "root"], ["Wk"]),
             helper.make_node("MatMul", ["x", "Wk"], ["h"]),
             helper.make_node("ConstantOfShape", ["len"], ["c"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Gemm", ["h", "V", "c"], ["y"])]
    inits = {"W": arr(3, 4, seed=1), "two": np.float32(2), "four": np.float32(4),
             "V": arr(3, 2, seed=2), "len": np.array([2])}
    m = model(nodes, {"x": ["N", 4]}, {"y": ["N", 2]}, inits)
    assert_matches(m, {"x": arr(5, 4, seed=3)})


def caffe2_squeezenet_tail(opset=6):
    """A Caffe2-style tail at opset 6 with a fixed batch of 1: Conv, n-ary Sum of three branches,
    a BatchNormalization with is_test, GlobalAveragePool, Softmax over axis 1 of (1, C, 1, 1),
    then Reshape to [1, -1] (a constant target)."""
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["x", "W2", "B"], ["c2"], kernel_shape=[1, 1]),
             helper.make_node("Sum", ["c", "r", "c2"], ["s"]),
             helper.make_node("BatchNormalization", ["s", "g", "B", "B", "v"], ["bn"],
                              is_test=1, epsilon=1e-5),
             helper.make_node("GlobalAveragePool", ["bn"], ["p"]),
             helper.make_node("Softmax", ["p"], ["prob"], axis=1),
             helper.make_node("Reshape", ["prob", "shape"], ["y"])]
    inits = {"W": arr(4, 3, 1, 1, seed=1), "W2": arr(4, 3, 1, 1, seed=5), "B": arr(4, seed=2),
             "g": arr(4, seed=3), "v": np.abs(arr(4, seed=4)) + 0.5, "shape": np.array([1, -1])}
    return model(nodes, {"x": [1, 3, 5, 5]}, {"y": [1, 4]}, inits, opset)


def test_a_caffe2_opset_6_model_converts_and_its_fixed_batch_of_1_is_the_batch():
    m = caffe2_squeezenet_tail()
    imported = assert_matches(m, {"x": arr(1, 3, 5, 5, seed=6)})
    notes = "\n".join(imported.notes)
    assert "converted from opset 6 to 7 by onnx.version_converter" in notes
    assert "Reshape node 'y': the leading 1 of its target shape [1, -1] is read as the batch" in notes
    # read as the batch, so a batch of 3 gives each example's batch-of-1 result
    x = arr(3, 3, 5, 5, seed=7)
    plan = dagnet.compile(imported.graph, mode="eval", params=imported.params, state=imported.state)
    got = plan.forward({"x": x}, mode="eval")[imported.graph.outputs[0]]
    sess = session(m)
    want = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_leading_1_is_no_batch_when_the_inputs_have_another():
    m = model([helper.make_node("Reshape", ["x", "shape"], ["y"])], {"x": ["N", 2, 3]},
              {"y": [1, 6]}, {"shape": np.array([1, -1])})
    with pytest.raises(OnnxError, match=r"target shape \[1, -1\] must keep the batch"):
        load(m)


@pytest.mark.parametrize("opset, shape", [(9, (4, 3, 2)), (13, (4, 1, 1)), (17, (4,))])
def test_softmax_over_axis_1_of_a_rank_4_value(opset, shape):
    """Before opset 13 Softmax flattens from its axis on; from 13 it is the same when the
    dimensions after the axis are 1 (a classifier's (N, C, 1, 1))."""
    m = model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {"x": ["N", *shape]},
              {"y": ["N", *shape]}, opset=opset)
    assert_matches(m, {"x": arr(2, *shape, seed=1)})


def test_a_shape_entry_computed_from_the_batch_other_than_the_batch_is_refused():
    """Reshape(x, [N * 2, -1]) mixes the batch into the examples: named, not guessed."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
             helper.make_node("Mul", ["s", "two"], ["n2"]),
             helper.make_node("Concat", ["n2", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    m = model(nodes, {"x": ["N", 2, 3]}, {"y": None},
              {"two": np.array([2]), "minus1": np.array([-1])})
    with pytest.raises(NotConstantError, match=r"Reshape node 'y': entry 0 of the shape 'target' "
                                               r"is computed from the batch size"):
        load(m)


def test_a_batch_dependent_value_is_no_data():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["z"]),
             helper.make_node("Add", ["x", "z"], ["y"])]
    m = model(nodes, {"x": ["N", 3]}, {"y": ["N", 3]})
    with pytest.raises(OnnxError, match=r"Add node 'y': 'z' is computed from the batch size"):
        load(m)


def test_random_nodes_never_fold():
    nodes = [helper.make_node("RandomNormal", [], ["noise"], shape=[1, 3]),
             helper.make_node("Add", ["x", "noise"], ["y"])]
    m = model(nodes, {"x": ["N", 3]}, {"y": ["N", 3]})
    with pytest.raises(UnsupportedOnnxError, match=r"RandomNormal \(node 'noise'\)"):
        load(m)


def test_a_constant_node_that_cannot_be_evaluated_names_itself():
    m = model([helper.make_node("Reshape", ["k", "shape"], ["w"]),
               helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": ["N", 2]}, {"y": ["N", 3]},
              {"k": arr(6), "shape": np.array([4, -1, 5])})
    with pytest.raises(OnnxError, match=r"Reshape node 'w': its inputs are constants, but "
                                        r"evaluating it to fold it failed"):
        load(m)


def test_dagnet_import_prints_the_notes(tmp_path, capsys, monkeypatch):
    import onnx

    from dagnet.cli.main import main

    monkeypatch.chdir(tmp_path)
    onnx.save(caffe2_squeezenet_tail(), "tail.onnx")
    assert main(["import", "tail.onnx"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "note: converted from opset 6 to 7 by onnx.version_converter" in err
    assert any(line.startswith("note: Reshape node 'y': the leading 1") for line in err)


def test_a_bias_constant_placed_after_its_matmul_still_joins_the_affine():
    """Constant subgraphs fold before any node imports: MatMul sees the Add's bias as one."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),
             helper.make_node("Constant", [], ["bias"], value=numpy_helper.from_array(arr(3))),
             helper.make_node("Add", ["h", "bias"], ["y"])]
    m = model(nodes, {"x": ["N", 2]}, {"y": ["N", 3]}, {"W": arr(2, 3, seed=1)})
    imported = assert_matches(m, {"x": arr(4, 2, seed=2)})
    assert [n.op for n in imported.graph if n.op not in ("input", "param")] == ["affine"]
