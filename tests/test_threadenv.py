"""dagnet sets the thread-pool variables before numpy loads, and says so when it came too late."""
import os
import subprocess
import sys

import pytest


def _run(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)


def test_import_dagnet_first_sets_the_variables_and_stays_quiet():
    r = _run("import os, dagnet; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], "
             "os.environ['OMP_WAIT_POLICY'], dagnet.threadenv.LATE, "
             "'+'.join(sorted(dagnet.threadenv.SET_BY_DAGNET)))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["14", "PASSIVE", "False", "OMP_WAIT_POLICY+OPENBLAS_THREAD_TIMEOUT"]
    assert "PerformanceWarning" not in r.stderr


def test_numpy_first_warns_once_with_the_fix():
    r = _run("import numpy, dagnet, dagnet.threadenv; print(dagnet.threadenv.LATE)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True"]
    assert r.stderr.count("PerformanceWarning") == 1
    assert "import dagnet before numpy" in r.stderr and "OPENBLAS_THREAD_TIMEOUT=14" in r.stderr


@pytest.mark.parametrize("order", ["import numpy, dagnet", "import dagnet"])
def test_a_value_the_user_set_wins_and_silences_the_warning(order):
    r = _run(f"{order}; import os, dagnet.threadenv as t; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], "
             f"os.environ['OMP_WAIT_POLICY'], len(t.SET_BY_DAGNET))",
             OPENBLAS_THREAD_TIMEOUT="20", OMP_WAIT_POLICY="ACTIVE")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["20", "ACTIVE", "0"]
    assert "PerformanceWarning" not in r.stderr
