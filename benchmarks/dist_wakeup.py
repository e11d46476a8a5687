"""How late a waiting rank sees a flag another process sets, by how it waits: prints JSON.

The shared-memory buckets' wait (dagnet/dist/shm.py) spins: a rank that finished its backward
first burns its core for about the ranks' skew. Sleeping, yielding or a futex would give the
core back, and all three lost in bench_dist (docs/distributed.md). This measures why: the
wake-up latency (from the moment one process sets a word of shared memory to the moment the
other, waiting in each way, has seen it) and the waiter's CPU time, for waits of 0.2-3 ms
(LeNet's skew is ~1-2 ms, resnet_small's ~15 ms), in alternating trials of one job.

    python benchmarks/dist_wakeup.py [--trials 60]

Per way of waiting: median and 90th percentile of the latency (us) and the waiter's CPU as a
share of the wait. Ways: `spin` (poll flat out), `yield` (sched_yield between polls),
`sleep100us` (time.sleep(1e-4) between polls), `futex` (FUTEX_WAIT on the word, woken by the
setter's FUTEX_WAKE), `spin1ms_futex` (spin 1 ms, then FUTEX_WAIT: the hybrid).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import time

import numpy as np

SYS_FUTEX = 202 if os.uname().machine == "x86_64" else 98  # aarch64: 98
FUTEX_WAIT, FUTEX_WAKE = 0, 1
WAYS = ("spin", "yield", "sleep100us", "futex", "spin1ms_futex")
DELAYS = (0.0002, 0.001, 0.003)  # seconds the setter works before it sets the flag

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def futex_wait(addr: int, expected: int, seconds: float) -> None:
    ts = _Timespec(int(seconds), int((seconds % 1) * 1e9))
    _libc.syscall(SYS_FUTEX, ctypes.c_void_p(addr), FUTEX_WAIT, ctypes.c_int(expected),
                  ctypes.byref(ts), None, 0)


def futex_wake(addr: int) -> None:
    _libc.syscall(SYS_FUTEX, ctypes.c_void_p(addr), FUTEX_WAKE, ctypes.c_int(1 << 30), None,
                  None, 0)


def wait_for(word, addr: int, value: int, way: str) -> None:
    """Return once word[0] == value, waiting `way`."""
    start = time.perf_counter()
    while word[0] != value:
        if way == "yield":
            os.sched_yield()
        elif way == "sleep100us":
            time.sleep(1e-4)
        elif way == "futex" or (way == "spin1ms_futex" and time.perf_counter() - start > 1e-3):
            futex_wait(addr, word[0], 0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=60, help="trials per way and delay")
    args = ap.parse_args()
    mm = mmap.mmap(-1, 4096)  # MAP_SHARED | MAP_ANONYMOUS: both processes after the fork
    word = np.frombuffer(mm, dtype=np.int32, count=4)  # [flag, ack, way, _]
    stamp = np.frombuffer(mm, dtype=np.float64, count=4, offset=64)  # [set at, seen at, cpu]
    addr = ctypes.addressof(ctypes.c_int32.from_buffer(mm))
    pid = os.fork()
    if pid == 0:  # the waiter: wait for each trial's flag, as word[2] says
        k = 0
        while True:
            k += 1
            while word[1] != k:  # the setter says: trial k starts (spin: a short moment)
                pass
            way = WAYS[word[2]] if word[2] >= 0 else None
            if way is None:
                os._exit(0)
            c = time.thread_time()
            word[1] = -k  # ready
            wait_for(word, addr, k, way)
            stamp[1] = time.perf_counter()
            stamp[2] = time.thread_time() - c
            word[1] = -k - (1 << 20)  # seen
    lat = {w: {d: [] for d in DELAYS} for w in WAYS}
    cpu = {w: {d: [] for d in DELAYS} for w in WAYS}
    k = 0
    for t in range(args.trials):
        for d in DELAYS:
            for w in WAYS[t % len(WAYS):] + WAYS[:t % len(WAYS)]:  # rotating order
                k += 1
                word[2] = WAYS.index(w)
                word[1] = k
                while word[1] != -k:
                    pass
                end = time.perf_counter() + d
                while time.perf_counter() < end:  # the late rank's work
                    pass
                stamp[0] = time.perf_counter()
                word[0] = k
                futex_wake(addr)  # what a futex waiter needs (a syscall, ~1 us, every time)
                while word[1] != -k - (1 << 20):
                    pass
                lat[w][d].append(stamp[1] - stamp[0])
                cpu[w][d].append(stamp[2] / d)
    k += 1
    word[2] = -1
    word[1] = k
    os.waitpid(pid, 0)
    out = {w: {f"{d * 1e3:g}ms": {
        "latency_us_median": round(float(np.median(lat[w][d])) * 1e6, 1),
        "latency_us_p90": round(float(np.percentile(lat[w][d], 90)) * 1e6, 1),
        "waiter_cpu_share": round(float(np.median(cpu[w][d])), 3)} for d in DELAYS}
        for w in WAYS}
    print(json.dumps({"trials": args.trials, "load_average": os.getloadavg(), "ways": out},
                     indent=1))


if __name__ == "__main__":
    main()
