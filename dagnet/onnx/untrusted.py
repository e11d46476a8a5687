"""An ONNX file is untrusted input: read it, bounded and self-contained, before importing it.

    model = read_model(path)        # OnnxError for garbage, truncation, an empty file, external
                                    # data outside the model's folder, a value written twice
    arrays = initializers(model)    # numeric arrays whose sizes match their declared shapes

Every failure is an OnnxError naming the file (and the initializer or node) and the fix.
"""
from __future__ import annotations

import os

import numpy as np

from dagnet.files import check_regular
from dagnet.onnx.common import OnnxError, onnx_module, where

#: the largest initializer imported (a single weight of 2**31 float32 values is 8 GiB)
MAX_INITIALIZER_BYTES = 4 * 2 ** 30


def read_model(path):
    """The ModelProto in the file at `path`, its external data (if any) loaded from files
    inside its own folder only, checked to be a graph dagnet can read."""
    onnx = onnx_module()
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise OnnxError(f"onnx.load: {path!r:.60} is neither a path nor an onnx.ModelProto")
    path = os.fsdecode(os.fspath(path))
    if not os.path.exists(path):
        raise OnnxError(f"ONNX file not found: {path}")
    if os.path.isdir(path):
        raise OnnxError(f"{path} is a folder; pass the .onnx file")
    check_regular(path, OnnxError, ".onnx file")
    if os.path.getsize(path) == 0:
        raise OnnxError(f"{path} is empty (0 bytes): not an ONNX model; export it again")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: the bytes are not a model
        raise OnnxError(f"{path} is not a valid ONNX model ({type(e).__name__}: "
                        f"{str(e)[:120]}); it is truncated, damaged or another kind of file") from None
    _load_external_data(onnx, model, path)
    check_graph(model, path)
    return model


def _load_external_data(onnx, model, path: str) -> None:
    """Load the tensors stored outside the model file, from files inside its folder only."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for t in external:
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        target = os.path.realpath(os.path.join(folder, location))
        if not location or os.path.isabs(location) or os.path.commonpath([folder, target]) != folder:
            raise OnnxError(f"{path}: initializer '{t.name}' keeps its data in {location!r}, "
                            f"outside the model's folder; dagnet reads external data only from "
                            f"files next to the model (move them there)")
        if not os.path.isfile(target):
            raise OnnxError(f"{path}: initializer '{t.name}' keeps its data in {location!r}, "
                            f"which is missing; copy it next to the model")
    if external:
        try:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, folder)
        except Exception as e:  # noqa: BLE001 - a damaged reference in untrusted input
            raise OnnxError(f"{path}: its external data cannot be read ({type(e).__name__}: "
                            f"{str(e)[:120]})") from None


def check_graph(model, path: str = "the model") -> None:
    """OnnxError for an empty graph or a value written by two nodes (or a node and an input)."""
    og = model.graph
    if not og.node:
        raise OnnxError(f"{path}: the model has no nodes (an empty or foreign file?); export it "
                        f"again")
    writer = {v.name: f"graph input '{v.name}'" for v in og.input}
    writer.update({t.name: f"initializer '{t.name}'" for t in og.initializer})
    for node in og.node:
        for v in node.output:
            if not v:
                continue
            if v in writer:
                raise OnnxError(f"{path}: value '{v}' is written by {writer[v]} and by "
                                f"{where(node)}; in ONNX each value has one writer (SSA): the "
                                f"model is malformed")
            writer[v] = where(node)


def to_array(onnx, tensor, path: str = "the model") -> np.ndarray:
    """An initializer as a numeric array, its size checked against its declared shape before
    anything is allocated."""
    np_dtype = None
    try:
        np_dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except Exception:  # noqa: BLE001 - an unknown type code
        pass
    if np_dtype is None or np_dtype.kind not in "fiub":
        kind = onnx.TensorProto.DataType.Name(tensor.data_type) \
            if tensor.data_type in onnx.TensorProto.DataType.values() else tensor.data_type
        raise OnnxError(f"{path}: initializer '{tensor.name}' holds {kind} values; dagnet "
                        f"imports numeric weights only")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{path}: initializer '{tensor.name}' has negative dims {dims}")
    count = 1
    for d in dims:
        count *= int(d)
    if count * np_dtype.itemsize > MAX_INITIALIZER_BYTES:
        raise OnnxError(f"{path}: initializer '{tensor.name}' declares shape {tuple(dims)} "
                        f"({count * np_dtype.itemsize:,} bytes), more than dagnet imports "
                        f"({MAX_INITIALIZER_BYTES:,}); the file is damaged or not a model "
                        f"dagnet can train")
    try:
        return onnx.numpy_helper.to_array(tensor)
    except Exception as e:  # noqa: BLE001 - data that does not fill the declared shape
        raise OnnxError(f"{path}: initializer '{tensor.name}' of shape {tuple(dims)} cannot be "
                        f"read ({type(e).__name__}: {str(e)[:100]}); the file is damaged") from None


def check_input_shapes(input_shapes) -> dict:
    """{input name: per-example shape of positive ints} (None: {})."""
    if input_shapes is None:
        return {}
    if not isinstance(input_shapes, dict):
        raise OnnxError(f"input_shapes must be a dict {{input name: (C, H, W)}}, got "
                        f"{type(input_shapes).__name__}")
    out = {}
    for name, shape in input_shapes.items():
        ok = isinstance(shape, (tuple, list)) and len(shape) > 0 and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape)
        if not ok:
            raise OnnxError(f"input_shapes['{name}'] = {shape!r:.60}; it must be the per-example "
                            f"shape, positive integers such as (1, 28, 28) (no batch dimension)")
        out[name] = tuple(int(d) for d in shape)
    return out
