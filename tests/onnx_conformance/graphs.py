"""Small ONNX models written with onnx.helper, for the importer's and the backend's tests."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def arr(*shape, seed=0):
    """float32 standard-normal data of `shape`, the same for the same seed."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def model(nodes, inputs, outputs, inits=None, opset=17):
    """A ModelProto of `nodes`; inputs/outputs {name: shape} as float tensors, inits
    {name: array} as initializers, at `opset` of the default domain."""
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(k, F, s) for k, s in inputs.items()],
                          [helper.make_tensor_value_info(k, F, s) for k, s in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 8)  # onnxruntime's newest
    return m
