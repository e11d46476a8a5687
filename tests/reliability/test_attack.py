"""The scripted attack (tests/reliability/attack) in CI: every case but the heavy ones (which
write gigabyte bombs or lay out thousands of nodes; `python -m tests.reliability.attack` runs
those too) must end well - a success where one is due, else a clean one-line DagnetError -
never a traceback, a silent wrong result, a hang or lost data. The fault-injection cases are
among them: a full and a read-only disk (a small tmpfs when the test may mount one, a fake
full disk otherwise), a second writer, planted symlinks, interrupts."""
import importlib.util
import pathlib
import re
import shutil
import tempfile

import pytest

from tests.reliability.attack.env import Env
from tests.reliability.attack.harness import run_attack
from tests.reliability.attack.run import selected

CASES = [a for a in selected() if not a.heavy]
#: packages of the optional extras some cases need to build their input (an ONNX file, ...)
OPTIONAL = {"onnx", "onnxruntime", "optuna", "mpi4py", "torch", "psycopg", "playwright"}


@pytest.fixture(scope="module")
def env():
    root = pathlib.Path(tempfile.mkdtemp(prefix="dagnet-attack-"))
    yield Env(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[a.id for a in CASES])
def test_attack_ends_well(env, case):
    env.fresh()
    result = run_attack(case, env)
    # the case builds its input with an extra's package, or dagnet says the extra is missing
    extra = re.search(r"No module named '(\w+)|needs the (\w+) package, which is not installed",
                      result.detail or "")
    name = extra and (extra.group(1) or extra.group(2))
    if name in OPTIONAL and importlib.util.find_spec(name) is None:
        pytest.skip(f"{case.id} needs an optional extra: {extra.group(0)} (CI installs them all)")
    assert result.outcome in ("ok", "clean"), f"{result.outcome}: {result.detail}"


def test_the_attack_covers_every_area():
    areas = {a.area for a in selected()}
    assert areas == {"api", "bounds", "cli", "folder", "resume"}
    assert len(selected()) >= 350
