"""docs/onnx.md is the page report.markdown() writes from the current tables and cases."""
import pathlib

import pytest

from tests.onnx_conformance import report
from tests.onnx_conformance.checks import same_onnx
from tests.onnx_conformance.expected_failures import MODELS, NODE, OLDER

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "onnx.md"


@pytest.mark.slow  # it generates every declared op's cases, pooling included
def test_docs_onnx_md_is_current():
    same_onnx()
    assert DOC.read_text() == report.markdown(NODE, MODELS, OLDER), \
        "docs/onnx.md is stale: .venv/bin/python -m tests.onnx_conformance.regen"
