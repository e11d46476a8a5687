"""The compiler's allreduce buckets at run time: flat buffers, each summed over the ranks by a
nonblocking allreduce that starts right after the backward step that finishes its last
gradient, all waited for before the update.

    buckets = GradientBuckets(plan, comm)     # plan compiled with bucket_mb=...
    executor = BucketedExecutor(plan, buckets)
    executor.forward(feeds, "train"); buckets.begin()
    grads = buckets.finish(executor.backward(seeds))   # the sums over the ranks

The plan says where each Iallreduce starts (compiler/buckets.py, shown by plan.describe());
this module only executes that schedule, through the executor's per-step backward hook: before
a step's backward runs, every bucket whose last gradient an earlier step finished is started
(the moment that earlier step's gradients were summed in), and the requests in flight are
polled, which is what moves them along (see comm.py). Timings per step: `exposed` is the wait
after the backward sweep ended (communication not hidden behind compute).
"""
from __future__ import annotations

import collections
import time

import numpy as np

from dagnet.errors import DistributedError
from dagnet.runtime import Executor

_KEEP = 1000  # steps of timings kept for medians


class GradientBuckets:
    """Flat per-bucket buffers and their requests for one plan on one communicator."""

    def __init__(self, plan, comm):
        meta = getattr(plan, "bucket_plan", None)
        if not meta:
            raise DistributedError(
                "the plan has no allreduce buckets: compile it with bucket_mb=... (e.g. "
                "dagnet.compile(graph, bucket_mb=4)) for data-parallel training")
        self.comm = comm
        self.meta = meta
        self.layout = []  # per bucket: [(param, offset, size, shape)]
        self.flat = []
        for b in meta["buckets"]:
            entries, offset = [], 0
            for p in b["params"]:
                a = plan.params[p]
                entries.append((p, offset, a.size, a.shape))
                offset += a.size
            self.layout.append(entries)
            self.flat.append(np.zeros(offset, dtype=plan.dtype))
        self.position = {s.name: k for k, s in enumerate(plan.backward_steps)}
        self.after = [b["position"] for b in meta["buckets"]]  # start once past this step
        self.requests: list = [None] * len(self.flat)
        self.exposed = collections.deque(maxlen=_KEEP)  # seconds waited after backward
        self.backward = collections.deque(maxlen=_KEEP)  # seconds of the backward sweep
        self.start_offsets = collections.deque(maxlen=_KEEP)  # per step: [s after backward began]
        self._t0 = 0.0
        self._starts_now: list = []

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.flat)

    def begin(self) -> None:
        """Mark the start of a backward sweep."""
        self.requests = [None] * len(self.flat)
        self._starts_now = [None] * len(self.flat)
        self._t0 = time.perf_counter()

    def before_step(self, step, grads: dict) -> None:
        """Before `step`'s backward: start the buckets whose gradients the steps before it
        finished (grads: the sums so far); poll those in flight."""
        here = self.position[step.name]
        for i, after in enumerate(self.after):
            if after < here and self.requests[i] is None:
                self._start(i, grads)
        active = [r for r in self.requests if r is not None]
        if active:
            self.comm.progress(active)

    def _start(self, i: int, grads: dict) -> None:
        flat = self.flat[i]
        for p, off, size, _ in self.layout[i]:
            g = grads.get(p)
            if g is None:  # its backward step was skipped (no gradient reached it): zero
                flat[off:off + size] = 0
            else:
                flat[off:off + size] = g.reshape(-1)
        self._starts_now[i] = time.perf_counter() - self._t0
        self.requests[i] = self.comm.iallreduce(flat)

    def finish(self, grads: dict) -> dict:
        """Start any bucket not started yet, wait for all, and point grads at the sums."""
        end = time.perf_counter()
        for i, r in enumerate(self.requests):
            if r is None:
                self._start(i, grads)
        self.comm.wait(self.requests, "summing the gradients (allreduce)")
        done = time.perf_counter()
        self.backward.append(end - self._t0)
        self.exposed.append(done - end)
        self.start_offsets.append(list(self._starts_now))
        for i, entries in enumerate(self.layout):
            for p, off, size, shape in entries:
                grads[p] = self.flat[i][off:off + size].reshape(shape)
        return grads

    def time_blocking(self, repeats: int = 20) -> float:
        """Median seconds to sum every bucket with nothing to overlap (one after the other):
        the communication time that overlap hides. Collective: every rank must call it."""
        times = []
        for _ in range(repeats):
            self.comm.all_arrive(self.comm.timeout)
            t = time.perf_counter()
            for flat in self.flat:
                self.comm.wait([self.comm.iallreduce(flat)], "timing the allreduce")
            times.append(time.perf_counter() - t)
        return float(np.median(times))


class BucketedExecutor(Executor):
    """The executor, starting the gradient buckets' allreduces as the backward sweep goes."""

    def __init__(self, plan, buckets: GradientBuckets):
        super().__init__(plan)
        self.buckets = buckets

    def step_backward(self, step, dout, cache):
        self.buckets.before_step(step, self.grads)
        return super().step_backward(step, dout, cache)
