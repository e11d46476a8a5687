"""The futex the shared-memory buckets' wait sleeps on: across processes, woken at once by a
wake, at once when the word already changed, and by its timeout otherwise."""
import contextlib
import mmap
import os
import time

import numpy as np
import pytest

from dagnet.dist import futex

pytestmark = pytest.mark.skipif(not futex.AVAILABLE, reason="futexes are Linux's")


def test_a_sleeping_process_wakes_when_another_bumps_the_word():
    mm = mmap.mmap(-1, 4096)  # shared with the child after the fork
    word = np.frombuffer(mm, dtype=np.int32, count=1)
    seen = np.frombuffer(mm, dtype=np.float64, count=2, offset=64)
    pid = os.fork()
    if pid == 0:
        futex.Word(word).wait(0, 30.0)  # would sleep 30 s unless woken
        seen[0] = time.monotonic()
        os._exit(0)
    time.sleep(0.2)  # the child is asleep by now
    word[0] += 1
    bumped = time.monotonic()
    futex.Word(word).wake()
    os.waitpid(pid, 0)
    assert 0 <= seen[0] - bumped < 5.0


def test_no_sleep_when_the_word_changed_and_the_timeout_bounds_it():
    word = futex.Word(np.zeros(1, dtype=np.int32))
    t = time.monotonic()
    word.wait(1, 5.0)  # the word is 0, not 1: returns at once
    assert time.monotonic() - t < 1.0
    t = time.monotonic()
    word.wait(0, 0.05)  # nobody wakes it
    assert 0.04 <= time.monotonic() - t < 2.0


def test_the_word_must_be_an_aligned_int32():
    with pytest.raises(ValueError, match="int32"):
        futex.Word(np.zeros(1, dtype=np.int64))


@contextlib.contextmanager
def sharing_a_core(seconds: float):
    """This process and a child spinning for `seconds`, both on one core."""
    cpus = os.sched_getaffinity(0)
    core = {min(cpus)}
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, core)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        os._exit(0)
    try:
        os.sched_setaffinity(0, core)
        yield
    finally:
        os.sched_setaffinity(0, cpus)
        os.waitpid(pid, 0)


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_preemptions_count_a_core_shared_with_a_busy_process():
    """Two processes spinning on one core: the scheduler takes it from this one."""
    with sharing_a_core(0.6):
        before = futex.preemptions()
        spin(0.5)
        assert futex.preemptions() > before


def test_the_wakeup_benchmark_prints_every_way():
    import json
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "dist_wakeup.py"
    r = subprocess.run([sys.executable, str(script), "--trials", "2"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ways = json.loads(r.stdout)["ways"]
    assert set(ways) == {"spin", "yield", "sleep100us", "futex", "spin1ms_futex"}
    for by_delay in ways.values():
        assert set(by_delay) == {"0.2ms", "1ms", "3ms"}
        assert all(v["latency_us_median"] >= 0 and v["waiter_cpu_share"] >= 0
                   for v in by_delay.values())


def test_run_delay_counts_a_core_shared_with_a_busy_process():
    """Two processes spinning on one core: this one waits, runnable, for about half the time
    (the shared-memory wait naps when that share of a step is over 1%)."""
    if futex.run_delay() is None:
        pytest.skip("this kernel keeps no run delay (/proc/thread-self/schedstat)")
    with sharing_a_core(0.6):
        before = futex.run_delay()
        spin(0.4)
        waited = futex.run_delay() - before
        assert 0.05 < waited < 0.4, waited
