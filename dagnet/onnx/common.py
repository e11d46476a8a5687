"""What export, import and the op mapping share: the errors, the optional onnx module, and
small conversions between ONNX attributes and dagnet's."""
from __future__ import annotations

import numpy as np

from dagnet.errors import DagnetError

#: the oldest opset export writes: Softmax's axis semantics and Dropout's ratio input need 13
MIN_OPSET = 13
#: the metadata key under which export lists the inputs without a batch axis (comma-separated)
UNBATCHED_KEY = "dagnet.unbatched_inputs"
#: the metadata key under which export lists the initializers that are trainable params: ONNX
#: does not tell a param from a constant, and one read as data (a bias added, a position table)
#: would load back as a constant, frozen
PARAMS_KEY = "dagnet.params"


class OnnxError(DagnetError):
    """An ONNX model cannot be written or read; the message names the nodes and the fix."""


class UnsupportedOnnxError(OnnxError):
    """The model uses ONNX ops dagnet cannot import; the message lists each with its node."""


class NotConstantError(OnnxError):
    """A weight, shape or ratio the importer must read as a constant is computed or is a graph
    input; `.value` names it (the backend freezes such an input to the value it is given)."""

    def __init__(self, message: str, value: str):
        super().__init__(message)
        self.value = value


class NoBatchAxisError(OnnxError):
    """The dagnet backend cannot feed a model batch by batch: its data inputs differ in their
    leading dimension, or a value of rank < 2 is used as data."""


class ConstantAsDataError(OnnxError):
    """A constant (an initializer, a Constant) is used where dagnet needs a batched data value;
    `.value` names it."""

    def __init__(self, message: str, value: str):
        super().__init__(message)
        self.value = value


def onnx_module():
    """The onnx module, or an OnnxError saying how to install it."""
    try:
        import onnx
    except ImportError:
        # dagnet is installed from a clone, not from PyPI: name the packages themselves
        raise OnnxError("ONNX support needs the onnx package, which is not installed: "
                        "pip install onnx onnxruntime (in a clone of dagnet: "
                        ".venv/bin/pip install -e '.[onnx]')") from None
    return onnx


def f32(v) -> float:
    """An ONNX float attribute as the shortest decimal of its float32 value (1e-5, not 9.99e-6)."""
    return float(str(np.float32(v)))


def compact(pair):
    """(2, 2) -> 2, (2, 3) -> [2, 3]: the builder's own attr forms, so round trips compare equal."""
    pair = tuple(int(v) for v in pair)
    return pair[0] if pair[0] == pair[1] else list(pair)


def where(node) -> str:
    """How messages name an ONNX node: its op type and name."""
    return f"{node.op_type} node '{node.name or node.output[0]}'"


def onnx_attrs(onnx, node) -> dict:
    """An ONNX node's attributes as a plain dict (strings decoded)."""
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out
