"""ONNX interchange: export a Graph or ExecutionPlan as an ONNX model; load ONNX models as Graphs.

    dagnet.onnx.export(plan, "lenet.onnx")                 # params and state from the plan
    model = dagnet.onnx.load("lenet.onnx")                 # OnnxModel(graph, params, state)
    plan = dagnet.compile(model.graph, mode="eval", params=model.params, state=model.state)
    graph, params, state = dagnet.onnx.load("lenet.onnx")  # an OnnxModel unpacks too

    export.py   Graph/plan -> ONNX          load.py      ONNX -> OnnxModel
    mapping.py  THE op mapping table: a row per ONNX op <-> dagnet op, with the conversions
                each way (exporters.py, importers.py), whose attrs come from the op declarations
    common.py   the errors and the small conversions they share
    backend.py  onnx.backend.base.Backend (prepare/run_model/run_node), imported on its own:
                `import dagnet.onnx.backend as backend` (it compiles, so it sits above the core);
                docs/onnx.md lists the ops and how ONNX's conformance cases fare

Batchnorm exports with its eval semantics (running statistics), dropout as Dropout (the
identity at inference). `onnx` is an optional dependency (`pip install onnx onnxruntime`, or the `[onnx]` extra of
a clone: `.venv/bin/pip install -e '.[onnx]'`), imported only when export or load runs: the
core stays light for users who never exchange models (onnx and onnxruntime are ~40 MB).
"""
from dagnet.onnx.common import MIN_OPSET, OnnxError, UnsupportedOnnxError
from dagnet.onnx.export import export
from dagnet.onnx.load import OnnxModel, load

__all__ = ["MIN_OPSET", "OnnxError", "OnnxModel", "UnsupportedOnnxError", "export", "load"]
