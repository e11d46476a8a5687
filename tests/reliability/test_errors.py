"""The error catalogue: every user mistake gives its documented DagnetError subclass, on one
line, naming where; docs/errors.md shows the messages the cases really produce."""
import importlib.util
import pathlib

import pytest

from dagnet.errors import DagnetError, MissingDependencyError
from tests.reliability import catalogue

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "errors.md"


@pytest.mark.parametrize("case", catalogue.CASES, ids=[c.id for c in catalogue.CASES])
def test_case_raises_its_documented_error(case, tmp_path):
    e = catalogue.run_case(case, tmp_path)
    absent = [m for m in EXTRAS_IN_THE_DOC if importlib.util.find_spec(m) is None]
    if absent and (isinstance(e, (MissingDependencyError, ModuleNotFoundError))
                   or "which is not installed" in str(e)):
        pytest.skip(f"{case.id} needs an optional extra ({absent} missing): {e}")  # CI has them
    assert e is not None, f"{case.id}: no error raised"
    assert isinstance(e, DagnetError), f"{case.id}: {type(e).__name__}: {e}"
    assert type(e) is case.cls, f"{case.id}: {type(e).__name__} (documented {case.cls.__name__}): {e}"
    message = str(e)
    assert "\n" not in message, f"{case.id}: the CLI prints errors on one line: {message!r}"
    assert case.where in message, f"{case.id}: message does not say where ({case.where!r}): {message}"
    assert len(message) > 20


def test_every_error_class_is_catalogued():
    import dagnet.errors as errors

    classes = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, DagnetError)}
    used = {c.cls for c in catalogue.CASES}
    # the two bases are only ever raised through their subclasses (or for API misuse)
    missing = {c.__name__ for c in classes - used} - {"GraphError"} - {"DagnetError"}
    assert not missing, f"error classes with no catalogue case: {sorted(missing)}"


def test_case_ids_are_unique():
    ids = [c.id for c in catalogue.CASES]
    assert len(ids) == len(set(ids))


#: optional packages whose presence changes catalogue messages (a missing one is reported as a
#: MissingDependencyError instead): docs/errors.md is generated with all of them, as CI installs
EXTRAS_IN_THE_DOC = ("onnx", "onnxruntime", "optuna", "mpi4py")


def test_docs_errors_md_is_current():
    """docs/errors.md == the catalogue's real messages (digits blurred: some, like the largest
    value before an overflow, depend on the machine's BLAS). Regenerate with
    `python -m tests.reliability.catalogue > docs/errors.md`."""
    missing = [m for m in EXTRAS_IN_THE_DOC if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"docs/errors.md is written with every extra installed; missing: {missing}")
    assert DOC.exists(), "docs/errors.md is missing: python -m tests.reliability.catalogue > docs/errors.md"
    want = catalogue.numbers_blurred(catalogue.markdown(catalogue.collect()))
    have = catalogue.numbers_blurred(DOC.read_text())
    assert have == want, "docs/errors.md is stale: python -m tests.reliability.catalogue > docs/errors.md"
