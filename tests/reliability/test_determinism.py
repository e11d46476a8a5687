"""Determinism: the same seed gives bitwise the same loss history, params, batchnorm state,
optimizer state and best params - in float32 and float64, with the compiled kernels on one
thread and on two (DAGNET_NUM_THREADS, read when dagnet.kernels is imported, so each run is
its own process). The conv/pool kernels split the batch across threads and every sample is
computed by one thread, with no cross-thread reduction, so one and two threads agree too."""
import json
import os
import subprocess
import sys

import pytest

from tests.reliability.helpers import ROOT


def runs(threads, n=2):
    procs = [subprocess.Popen([sys.executable, "-m", "tests.reliability.determinism_run"], cwd=ROOT,
                              env={**os.environ, "DAGNET_NUM_THREADS": str(threads)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        out.append(json.loads(stdout))
    return out


@pytest.fixture(scope="module")
def results():
    return {t: runs(t) for t in (1, 2)}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_run_bitwise(results, threads, dtype):
    a, b = results[threads]
    assert a["threads"] == b["threads"] == threads and a["cython"]
    assert a[dtype] == b[dtype]
    assert len(a[dtype]["loss_history"]) == 9


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_kernel_threads_agree_bitwise(results, dtype):
    assert results[1][0][dtype] == results[2][0][dtype]


def test_the_digests_see_the_numbers(results):
    """float32 and float64 runs train to different numbers, so equal digests mean something."""
    run = results[1][0]
    assert run["float32"]["params"] != run["float64"]["params"]
    assert run["float32"]["loss_history"] != run["float64"]["loss_history"]
