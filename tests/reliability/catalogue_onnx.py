"""Catalogue cases of ONNX models imported by dagnet.onnx.load and run through
dagnet.onnx.backend (folding, computed weights, the batch axis); catalogue.py runs them and
writes docs/errors.md."""
from __future__ import annotations

import numpy as np

from dagnet.onnx.common import NoBatchAxisError, NotConstantError, OnnxError
from tests.reliability.cases import case


# -- ONNX models run through dagnet.onnx.backend ---------------------------------------------------
P = "ONNX models run through dagnet.onnx.backend"


def _onnx_model(op, inputs, inits=None, **attrs):
    """A one-node ONNX model: op reads `inputs` {name: shape} (then the initializers) into 'y',
    declared with the first input's shape."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    node = helper.make_node(op, [*inputs, *(inits or {})], ["y"], **attrs)
    g = helper.make_graph([node], "m", [helper.make_tensor_value_info(k, f, s) for k, s in inputs.items()],
                          [helper.make_tensor_value_info("y", f, next(iter(inputs.values())))],
                          [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@case("onnx-backend-leading-dims", P, NoBatchAxisError, "the data inputs of a model run by "
      "dagnet.onnx.backend differ in their first dimension (broadcasting across it)",
      "give every data input the same first dimension: the backend feeds it as the batch",
      "'b' (1, 3)")
def _(tmp):
    import dagnet.onnx.backend as backend

    backend.run_model(_onnx_model("Add", {"a": [2, 3], "b": [1, 3]}),
                      [np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32)])


@case("onnx-backend-rank1-data", P, NoBatchAxisError, "a value of rank 1 is data (not a weight) "
      "in a model run by dagnet.onnx.backend", "give it a leading batch dimension, e.g. x[None]",
      "input 'x'")
def _(tmp):
    import dagnet.onnx.backend as backend

    backend.run_model(_onnx_model("Concat", {"x": [3]}, axis=0), [np.zeros(3, np.float32)])


@case("onnx-computed-weight", P, NotConstantError, "an ONNX model's weight, bias or shape is a "
      "graph input or computed by nodes (dagnet.onnx.load)", "make it an initializer, or run "
      "the model with dagnet.onnx.backend, which freezes inputs to the values given",
      "Conv node 'y'")
def _(tmp):
    from dagnet.onnx import load

    load(_onnx_model("Conv", {"x": ["N", 1, 4, 4], "w": [1, 1, 3, 3]}))


def _onnx_nodes(nodes, inits):
    """An ONNX model of `nodes` reading x of shape (N, 2, 3) and the initializers into 'y'."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", f, ["N", 2, 3])],
                          [helper.make_tensor_value_info("y", f, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@case("onnx-batch-dependent-shape", P, NotConstantError, "an ONNX model computes a shape from "
      "its batch size other than as the batch itself (Reshape to [N * 2, -1]; dagnet.onnx.load "
      "folds Shape chains with the batch symbolic)", "re-export with the batch as the first entry "
      "of the target (x.view(x.size(0), -1)) or a fixed shape", "computed from the batch size")
def _(tmp):
    from onnx import helper

    from dagnet.onnx import load

    load(_onnx_nodes([helper.make_node("Shape", ["x"], ["n"], start=0, end=1),
                      helper.make_node("Mul", ["n", "two"], ["n2"]),
                      helper.make_node("Concat", ["n2", "minus1"], ["target"], axis=0),
                      helper.make_node("Reshape", ["x", "target"], ["y"])],
                     {"two": np.array([2]), "minus1": np.array([-1])}))


@case("onnx-fold-failed", P, OnnxError, "a node of an ONNX model whose inputs are all constants "
      "cannot be evaluated (dagnet.onnx.load folds such nodes with onnx.reference)",
      "fix the model: the message gives ONNX's reason", "evaluating it to fold it failed")
def _(tmp):
    from onnx import helper

    from dagnet.onnx import load

    load(_onnx_nodes([helper.make_node("Reshape", ["k", "shape"], ["w"]),
                      helper.make_node("MatMul", ["x", "w"], ["y"])],
                     {"k": np.zeros(6, np.float32), "shape": np.array([4, -1, 5])}))
