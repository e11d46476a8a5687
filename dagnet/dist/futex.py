"""Sleeping on a word of shared memory until another process changes it (Linux futex), and
whether this thread is competing for its core.

    bell = futex.Word(int32_array[:1])   # a word of shared memory
    bell.wait(expected, seconds)         # returns when the word != expected, woken, or timed out
    bell.wake()                          # wake every process sleeping on the word
    futex.preemptions()                  # this thread's involuntary context switches so far
    futex.run_delay()                    # seconds this thread has waited, runnable, for a core

Why: the shared-memory buckets' wait spins (dagnet/dist/shm.py), which costs nothing on a quiet
machine but, when other jobs want the cores, spends the rank's share of the CPU: the
scheduler then preempts it at about the moment the late rank publishes its bucket, and the
early rank starts the next step milliseconds late (benchmarks/dist_wakeup.py measured a
spinning waiter's median latency at 4 ms after a 3 ms wait at load 5, a futex sleeper's 0.17 ms).
The word must live in memory every process maps (MAP_SHARED), 4-byte aligned; futexes on
shared mappings are keyed by the page, so the processes may map it at different addresses.
Elsewhere than Linux (or without ctypes' syscall), AVAILABLE is False and callers poll.
"""
from __future__ import annotations

import ctypes
import os
import resource

import numpy as np

_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(os.uname().machine) if hasattr(os, "uname") else None
_WAIT, _WAKE = 0, 1  # FUTEX_WAIT, FUTEX_WAKE (shared, not FUTEX_PRIVATE_FLAG: other processes)
_ALL = 1 << 30

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long
except (OSError, AttributeError):
    _syscall = None
AVAILABLE = bool(_SYS_FUTEX and _syscall is not None and os.uname().sysname == "Linux")
_RUSAGE = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class Word:
    """word[0] of an int32 array, for sleeping on and waking (its address taken once: numpy's
    .ctypes costs tens of microseconds a call)."""

    def __init__(self, word: np.ndarray):
        if word.dtype != np.int32 or word.ctypes.data % 4:
            raise ValueError("a futex word is one 4-byte aligned int32")
        self.array = word
        self._address = ctypes.c_void_p(word.ctypes.data)

    def wait(self, expected: int, seconds: float) -> None:
        """Sleep until the word != expected (at once if it already is), a wake(), or
        `seconds`."""
        ts = _Timespec(int(seconds), int(seconds % 1 * 1e9))
        _syscall(_SYS_FUTEX, self._address, _WAIT, ctypes.c_int(expected), ctypes.byref(ts),
                 None, 0)

    def wake(self) -> None:
        """Wake every process sleeping on the word (a system call, ~1 us, even when none
        sleeps)."""
        _syscall(_SYS_FUTEX, self._address, _WAKE, ctypes.c_int(_ALL), None, None, 0)


def preemptions() -> int:
    """This thread's involuntary context switches so far (the scheduler took its core)."""
    return resource.getrusage(_RUSAGE).ru_nivcsw


def run_delay() -> float | None:
    """Seconds this thread has waited so far, runnable, while other tasks held its core (the
    scheduler's run delay: /proc/thread-self/schedstat's second field); None where the kernel
    does not say. Unlike a count of preemptions it tells a kernel thread's brief turn (tens
    of microseconds) from other jobs sharing the core (milliseconds a step)."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        try:
            return int(os.read(fd, 128).split()[1]) * 1e-9
        finally:
            os.close(fd)
    except (OSError, IndexError, ValueError):
        return None
