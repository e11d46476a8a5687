"""The conformance tests need the onnx package (the [onnx] extra); without it they skip."""
import pytest

pytest.importorskip("onnx")
