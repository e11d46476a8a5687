"""The conformance tests need the onnx package (the [onnx] extra): without it none is collected."""
import importlib.util

if importlib.util.find_spec("onnx") is None:
    collect_ignore_glob = ["test_*.py"]
