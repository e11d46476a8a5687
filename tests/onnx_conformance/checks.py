"""What the conformance tests assert: each case passes, or fails exactly as the table says."""
from __future__ import annotations

import onnx
import pytest

from tests.onnx_conformance import expected_failures

REGEN = "regenerate the table: .venv/bin/python -m tests.onnx_conformance.regen"


def same_onnx() -> None:
    """Skip unless the installed onnx is the one the table was generated with (another version
    generates other cases; regenerating the table is then the fix)."""
    if onnx.__version__ != expected_failures.ONNX_VERSION:
        pytest.skip(f"the expected failures were generated with onnx "
                    f"{expected_failures.ONNX_VERSION}, this is onnx {onnx.__version__}: {REGEN}")


def problems(outcomes: dict, table: dict) -> list[str]:
    """{case: (reason or None, full error)} against the table {case: reason}: what differs."""
    out = []
    for name, (reason, full) in outcomes.items():
        want = table.get(name)
        if reason is not None and reason.startswith("crash:"):
            out.append(f"BUG {name}: not a DagnetError: {full}")
        elif reason is None and want is not None:
            out.append(f"NOW PASSES {name} (listed: {want!r})")
        elif reason is not None and want is None:
            out.append(f"NEW FAILURE {name}: {reason!r}: {full}")
        elif reason != want:
            out.append(f"REASON CHANGED {name}: {want!r} -> {reason!r}: {full}")
    return out


def assert_as_listed(outcomes: dict, table: dict) -> None:
    found = problems(outcomes, table)
    assert not found, "\n".join(found) + f"\n{REGEN}"
