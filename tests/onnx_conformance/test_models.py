"""The pytorch-converted and pytorch-operator models shipped inside the onnx package (117 float
models with inputs and expected outputs) run through dagnet.onnx.backend and match, or fail as
expected_failures.MODELS says, for the reason it says."""
import pytest

from tests.onnx_conformance import harness
from tests.onnx_conformance.checks import assert_as_listed, same_onnx
from tests.onnx_conformance.expected_failures import MODELS

NAMES = list(harness.model_cases())


def test_the_117_models_are_there():
    assert len(NAMES) == 117
    assert not set(MODELS) - set(NAMES), "listed models that do not exist (regenerate)"


@pytest.mark.parametrize("name", NAMES)
def test_model_matches_or_fails_as_listed(name):
    same_onnx()
    assert_as_listed({name: harness.outcome(harness.model_cases()[name])}, MODELS)
