"""The conformance tests need the onnx and onnxruntime packages (the [onnx] extra; onnxruntime
computes what an older-opset variant of a case expects): without them none is collected."""
import importlib.util

if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
    collect_ignore_glob = ["test_*.py"]
