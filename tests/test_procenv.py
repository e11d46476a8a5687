"""dagnet sets the thread-pool variables before numpy loads (and says so when it came too late)
and tunes glibc's malloc thresholds, unless the user chose their own."""
import os
import subprocess
import sys

import pytest


def _run(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GLIBC_TUNABLES")
             and not k.startswith("MALLOC_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)


def test_import_dagnet_first_sets_the_variables_and_stays_quiet():
    r = _run("import os, dagnet; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], "
             "os.environ['OMP_WAIT_POLICY'], dagnet.procenv.LATE, "
             "'+'.join(sorted(dagnet.procenv.SET_BY_DAGNET)))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["14", "PASSIVE", "False", "OMP_WAIT_POLICY+OPENBLAS_THREAD_TIMEOUT"]
    assert "PerformanceWarning" not in r.stderr


_OPENBLAS = """
import ctypes
from dagnet import procenv
libs = procenv._loaded_openblas()
def timeouts():
    return [ctypes.CDLL(p).openblas_thread_timeout() for p in libs]
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps")
def test_numpy_first_gets_the_timeout_afterwards_and_stays_quiet():
    """OpenBLAS read its environment when numpy loaded, before dagnet set the variable: dagnet
    has it read again and restarts its threads, which then keep the thread count and work."""
    pytest.importorskip("threadpoolctl")
    r = _run("import numpy as np\n"
             "from threadpoolctl import threadpool_info\n"
             "before = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
             "import dagnet" + _OPENBLAS +
             "a = np.random.default_rng(0).standard_normal((300, 300))\n"
             "assert np.allclose(a @ a.T, np.einsum('ik,jk->ij', a, a))  # threads restarted\n"
             "after = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
             "print(procenv.LATE, procenv.RETIMED, len(libs), *timeouts(), before == after)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "1", "14", "True"]
    assert "PerformanceWarning" not in r.stderr


def test_the_timeout_cannot_be_set_where_openblas_lacks_the_functions(monkeypatch):
    from dagnet import procenv

    monkeypatch.setattr(procenv, "_loaded_openblas", lambda: ["libc.so.6"])
    assert procenv.retime_openblas() is False
    monkeypatch.setattr(procenv, "_loaded_openblas", lambda: [])
    assert procenv.retime_openblas() is False


@pytest.mark.parametrize("order", ["import numpy, dagnet", "import dagnet"])
def test_a_value_the_user_set_wins_and_silences_the_warning(order):
    r = _run(f"{order}; import os, dagnet.procenv as t; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], "
             f"os.environ['OMP_WAIT_POLICY'], len(t.SET_BY_DAGNET))",
             OPENBLAS_THREAD_TIMEOUT="20", OMP_WAIT_POLICY="ACTIVE")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["20", "ACTIVE", "0"]
    assert "PerformanceWarning" not in r.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps")
def test_dagnet_first_needs_no_retiming():
    r = _run("import dagnet, numpy" + _OPENBLAS + "print(procenv.LATE, procenv.RETIMED, *timeouts())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "14"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_thresholds_are_tuned_unless_the_user_set_them():
    code = "import dagnet.procenv as p; print(p.MALLOC_TUNED)"
    assert _run(code).stdout.split() == ["True"]
    assert _run(code, MALLOC_TRIM_THRESHOLD_="1000000").stdout.split() == ["False"]
    assert _run(code, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536").stdout.split() == ["False"]


def test_large_temporaries_do_not_page_fault_every_step():
    """The conv forward + backward that page-faulted its columns in anew every call: after a
    warm-up, a few faults per call at most (it was about 360)."""
    code = """
import resource
import dagnet
import numpy as np
from dagnet.ops.conv import conv_backward, conv_forward
rng = np.random.default_rng(0)
x = rng.standard_normal((100, 3, 32, 32)).astype(np.float32)
w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
b = np.zeros(32, np.float32)
dout = np.ones((100, 32, 32, 32), np.float32)
def step():
    conv_backward(dout, conv_forward(x, w, b, 1, 1)[1])
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) < 50
