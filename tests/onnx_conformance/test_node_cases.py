"""ONNX's node conformance cases of every op dagnet's importer declares (mapping.py) pass
through dagnet.onnx.backend, or fail as expected_failures.NODE says, for the reason it says.

One test per ONNX op (its cases generated in memory by onnx.backend.test.case.node); the ops
whose cases take seconds to generate (ONNX's Python pooling references) are `slow`."""
import pytest

from tests.onnx_conformance import harness
from tests.onnx_conformance.checks import assert_as_listed, same_onnx
from tests.onnx_conformance.expected_failures import NODE, OLDER

OPS = [pytest.param(op, marks=pytest.mark.slow) if op in harness.SLOW_OPS else op
       for op in harness.declared_ops()]


@pytest.mark.parametrize("op", OPS)
def test_node_cases_pass_or_fail_as_listed(op):
    same_onnx()
    cases = harness.node_cases(op)
    assert cases, f"ONNX generates no node case for {op}: is the op's module name known?"
    assert_as_listed({name: harness.outcome(c) for name, c in cases.items()}, NODE)


@pytest.mark.parametrize("op", OPS)
def test_passing_cases_pass_at_older_opsets_or_fail_as_listed(op):
    """Each passing case converted to the older opsets of its op (where onnx.version_converter
    can; expected outputs by onnxruntime) passes, or fails as expected_failures.OLDER says: the
    importer reads every version of the op, not only the newest."""
    same_onnx()
    variants = {k: v for name, c in harness.node_cases(op).items() if name not in NODE
                for k, v in harness.older_opsets(c, op).items()}
    assert_as_listed({k: harness.outcome(c) for k, c in variants.items()}, OLDER)


def test_no_listed_reason_is_a_crash():
    """An error that is no DagnetError is a bug to fix, never an expected failure."""
    crashes = [k for k, v in {**NODE, **OLDER}.items() if v.startswith("crash:")]
    assert not crashes


@pytest.mark.slow
def test_cases_are_onnx_collect_testcases_own():
    """The per-op selection (only the modules that build the op's nodes are imported) finds
    every case ONNX's collect_testcases() gives for the declared ops, and the table lists no
    case that does not exist."""
    same_onnx()
    everything = harness.all_node_cases()
    selected = {name: op for op in harness.declared_ops() for name in harness.node_cases(op)}
    assert selected == everything
    assert not set(NODE) - set(everything), "listed cases that do not exist (regenerate)"
