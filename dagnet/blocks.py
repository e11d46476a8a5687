"""Blocks of a batch over the threads: `run(fn, count)` calls fn(0) .. fn(count - 1), each on
whichever of `kernels.NUM_THREADS` threads is free, with OpenBLAS held to one thread.

Why: one GEMM over a whole batch lets OpenBLAS split it over its threads in equal static
shares, and then wait for the slower. On a 2-core machine with the other core busy, a
64-channel 8 x 8 conv's forward GEMM (batch 64) took 46 ms so, 21 ms on one thread; blocks
of samples handed out one by one to the two threads (one-thread GEMMs) took 17.7 ms
(in-process A/B, medians): a thread that gets no core leaves its blocks to the other.

Determinism: each block is computed by one thread, the blocks are fixed by the caller (the
shapes, never the thread count), and a caller that sums over blocks sums in block order, so
results are bitwise the same for any thread count and any schedule.

OpenBLAS's thread count is process-wide (its `openblas_set_num_threads_local` is too in the
pthreads build numpy ships): `run` sets it to one and back around the blocks (once for runs
that overlap from several Python threads); a GEMM another Python thread runs meanwhile gets
one thread too. Where no OpenBLAS with that function is
loaded (numpy on MKL or Accelerate), the blocks run one after another on the calling thread,
each product threaded by the BLAS itself as before.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import threading

import numpy as np

from dagnet import kernels, procenv

_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads")


def _blas_controls() -> list:
    """(get, set) of every loaded OpenBLAS's process-wide thread count ([] if none)."""
    found = []
    for path in procenv._loaded_openblas():
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same library
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            getter = getattr(lib, name.replace("set_", "get_"), None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                found.append((getter, setter))
                break
    return found


_CONTROLS: list | None = None  # looked up on first use (numpy's OpenBLAS loads with numpy)
_workers: list = []  # (task queue, thread) of the helper threads, started on first use
_lock = threading.Lock()
_held = {"runs": 0, "before": []}  # runs under way (of any Python thread), OpenBLAS's counts
_inside = threading.local()  # set on a thread while it runs blocks: a nested run runs inline


def _worker(tasks: queue.SimpleQueue) -> None:
    while True:
        tasks.get()()


def _team(size: int) -> list:
    """The task queues of `size` helper threads (started as needed, kept for the process)."""
    with _lock:
        while len(_workers) < size:
            tasks = queue.SimpleQueue()
            t = threading.Thread(target=_worker, args=(tasks,), daemon=True,
                                 name=f"dagnet-blocks-{len(_workers)}")
            t.start()
            _workers.append((tasks, t))
        return [q for q, _ in _workers[:size]]


def _forget_workers() -> None:  # a forked child has none of the parent's threads
    _workers.clear()
    _held["runs"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def threads_for(count: int) -> int:
    """How many threads `run` uses for `count` blocks."""
    global _CONTROLS
    if _CONTROLS is None:
        _CONTROLS = _blas_controls()
    return max(1, min(kernels.NUM_THREADS, count)) if _CONTROLS else 1


class _Blocks:
    """One run's blocks: handed out in order; `wait` returns once no block is left and every
    block taken is done. A helper that wakes only after that finds none left and leaves:
    the caller never waits for a thread that took no block (on a busy machine that wait
    was a scheduler tick per run)."""

    def __init__(self, fn, count: int):
        self.fn, self.count = fn, count
        self.next = self.active = 0
        self.errors: list = []
        self.cond = threading.Condition()

    def work(self) -> None:
        _inside.busy = True
        try:
            while True:
                with self.cond:
                    if self.errors or self.next >= self.count:
                        return
                    i, self.next, self.active = self.next, self.next + 1, self.active + 1
                try:
                    self.fn(i)
                except BaseException as e:  # noqa: BLE001 - re-raised by run
                    self.errors.append(e)
                finally:
                    with self.cond:
                        self.active -= 1
                        self.cond.notify_all()
        finally:
            _inside.busy = False

    def wait(self) -> None:
        with self.cond:
            while self.active:
                self.cond.wait()


def run(fn, count: int) -> None:
    """fn(i) for i < count, over the threads (see the module doc); the first exception any
    call raises is raised here once no block is running. fn must write only what block i
    owns."""
    if getattr(_inside, "busy", False):  # nested: inline, under the outer run's one BLAS thread
        for i in range(count):
            fn(i)
        return
    threads = threads_for(count)
    with _one_blas_thread():
        if threads == 1:
            # one thread (DAGNET_NUM_THREADS=1, or one block): the blocks' GEMMs still on one
            # BLAS thread each, as on more threads (the same sums: bitwise the same results).
            # OpenBLAS keeps its own count (the cores) otherwise, and split each block's GEMM
            # over threads that wait for each other: resnet20's 64-channel 8 x 8 conv forward
            # took 124 ms of CPU instead of 6 with DAGNET_NUM_THREADS=1 on a loaded machine
            for i in range(count):
                fn(i)
            return
        blocks = _Blocks(fn, count)
        for tasks in _team(threads - 1):
            tasks.put(blocks.work)
        blocks.work()
        blocks.wait()
    if blocks.errors:
        raise blocks.errors[0]


@contextlib.contextmanager
def _one_blas_thread():
    """OpenBLAS at one thread from the first run that starts to the last that ends (runs
    from several Python threads overlap: the counts are saved and put back once)."""
    with _lock:
        if _held["runs"] == 0:
            _held["before"] = [get() for get, _ in _CONTROLS]
            for _, set_threads in _CONTROLS:
                set_threads(1)
        _held["runs"] += 1
    try:
        yield
    finally:
        with _lock:
            _held["runs"] -= 1
            if _held["runs"] == 0:
                for (_, set_threads), n in zip(_CONTROLS, _held["before"]):
                    set_threads(n)


#: a product of at most this many multiply-adds runs whole on one BLAS thread (`matmul`):
#: OpenBLAS threads LeNet's fc1 (64 x 400 x 120: 3.1M), and with the second core busy its
#: threaded GEMM waited for the other thread: 24-50 ms instead of 0.2 ms on one thread
SERIAL_MACS = 1 << 22
#: at most this many blocks (of rows or columns) for a larger product
MAX_BLOCKS = 8
#: and blocks at least this many rows (columns) wide: each block reads the other operand
#: whole (OpenBLAS packs it anew), so thin blocks repeat that for little work. The three-layer
#: convnet's fc1 forward, (64 x 8192) @ (8192 x 100), took 4.6 ms on one thread in 8 blocks
#: of 13 columns, 2.2 ms in 2 of 50 (whole: 2.0)
MIN_BLOCK_SIDE = 48
#: an eval-mode product's blocks (the affine op's forward in eval mode and the inference
#: program's affine, which give the same bits so) at least this wide: with no backward to
#: balance, LeNet's fc1 at batch 256, (256 x 800) @ (800 x 500), in 8 blocks of 63 columns
#: repacked its 800 KB input 8 times; in 2 of 250 it ran 1.57x faster, in 4 of 125 1.31x
#: (medians of 100 alternating calls, load 4.3; whole on one thread 3.0x there, the second
#: core being busy: 2 blocks cost little more when one thread takes both, half when not)
EVAL_MIN_BLOCK_SIDE = 192


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
           min_side: int | None = None) -> np.ndarray:
    """a @ b on one-thread GEMMs.  a: (M, K), b: (K, N) -> (M, N); out: an array to write.

    Up to SERIAL_MACS multiply-adds in one piece on the calling thread, else by blocks of
    a's rows (or b's columns, the longer side) over the threads (`run`), at least min_side
    (default MIN_BLOCK_SIDE) wide; the pieces are fixed by the shapes (and min_side), so the
    result is the same for any thread count."""
    min_side = MIN_BLOCK_SIDE if min_side is None else min_side
    m, k = a.shape
    n = b.shape[1]
    macs = m * n * k
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    # split the longer side: each block then reads the other operand whole, and that operand
    # is the smaller (fc1's dx, 64 x 100 @ 100 x 8192: by columns)
    rows = m >= n
    side = m if rows else n
    count = min(MAX_BLOCKS, -(-macs // SERIAL_MACS), side // min_side)
    if macs > SERIAL_MACS and count > 1:
        span = spans(side, -(-side // count))

        def block(i):
            i0, i1 = span[i]
            if rows:
                np.matmul(a[i0:i1], b, out=out[i0:i1])
            else:
                np.matmul(a, b[:, i0:i1], out=out[:, i0:i1])

        run(block, len(span))
        return out
    threads_for(1)  # finds OpenBLAS on first use
    with _one_blas_thread():
        np.matmul(a, b, out=out)
    return out


def spans(n: int, per: int) -> list:
    """[(start, stop)] of consecutive blocks of `per` samples covering n (the last shorter)."""
    per = max(1, per)
    return [(a, min(n, a + per)) for a in range(0, n, per)]
