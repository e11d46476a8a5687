"""The compiler's allreduce buckets at run time: flat buffers, each summed over the ranks by a
nonblocking allreduce that starts right after the backward step that finishes its last
gradient, all waited for before the update.

    buckets = GradientBuckets(plan, comm)     # plan compiled with bucket_mb=...
    executor = BucketedExecutor(plan, buckets)
    executor.forward(feeds, "train"); buckets.begin(loss)
    grads = buckets.finish(executor.backward(seeds))   # the sums over the ranks
    buckets.loss                                       # and the loss's

The plan says where each bucket's allreduce starts (compiler/buckets.py, shown by
plan.describe()); this module executes that schedule through MPI (shm.py: through shared
memory, on one machine), by the executor's per-step backward hook: before a step's backward
runs, every bucket whose last gradient an earlier step finished is started (the moment that
earlier step's gradients were summed in), and the requests in flight are polled, which is
what moves them along (see comm.py). An op that can write its param gradients where it is
told (Op.writes_grads: affine, affine+relu) writes those its step finishes straight into the
bucket, so the pack copies only the others. Timings per step: `exposed` is the wait
after the backward sweep ended (communication not hidden behind compute). The step's loss
rides in the last bucket (one more value after its gradients), so that it costs no
collective of its own.
"""
from __future__ import annotations

import collections
import time

import numpy as np

from dagnet.errors import DistributedError
from dagnet.runtime import Executor

_KEEP = 1000  # steps of timings kept for medians
LOSS = None  # the layout's name for the loss's place, after the last bucket's gradients


def bucket_layout(plan) -> list:
    """Per bucket: [(param, offset, size, shape)] in the flat buffer, the last bucket ending
    with (LOSS, offset, 1, ()); a plan whose params get no gradient has one bucket, the loss."""
    layout = []
    for b in plan.bucket_plan["buckets"]:
        entries, offset = [], 0
        for p in b["params"]:
            a = plan.params[p]
            entries.append((p, offset, a.size, a.shape))
            offset += a.size
        layout.append(entries)
    if not layout:
        layout.append([])
    last = layout[-1]
    last.append((LOSS, last[-1][1] + last[-1][2] if last else 0, 1, ()))
    return layout


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
        self.layout = bucket_layout(plan)  # per bucket: [(param, offset, size, shape)]
        self.flat = [np.zeros(e[-1][1] + e[-1][2], dtype=plan.dtype) for e in self.layout]
        self.itemsize = np.dtype(plan.dtype).itemsize
        self.position = {s.name: k for k, s in enumerate(plan.backward_steps)}
        # start once past this step (the loss alone: after the sweep)
        self.after = [b["position"] for b in meta["buckets"]] or [len(self.position)]
        self.loss = 0.0  # the last step's loss, summed over the ranks
        self.requests: list = [None] * len(self.flat)
        self.exposed = collections.deque(maxlen=_KEEP)  # seconds waited after backward
        self.backward = collections.deque(maxlen=_KEEP)  # seconds of the backward sweep
        self.start_offsets = collections.deque(maxlen=_KEEP)  # per step: [s after backward began]
        self._t0 = 0.0
        self._starts_now: list = []
        # per backward step: [(input port, param)] whose gradient the step finishes alone (the
        # param's last contributor, named once among its inputs) and that its op can write
        # into the bucket; their views of this rank's bucket come with the first step (`into`)
        owner = {p: (i, off, size, shape) for i, e in enumerate(self.layout)
                 for p, off, size, shape in e if p is not LOSS}
        last = {}
        for s in plan.backward_steps:
            for port, (src, need) in enumerate(zip(s.inputs, s.needs)):
                if need and src in owner:
                    last[src] = (s, port)
        self._writes = collections.defaultdict(list)
        for p, (s, port) in last.items():
            if s.op.writes_grads and s.inputs.count(p) == 1:
                self._writes[s.name].append((port, p))
        self._owner = owner
        self._views: dict = {}  # {param: its view of this rank's bucket}, made on first use

    @property
    def nbytes(self) -> int:
        return sum(e[-1][1] + e[-1][2] for e in self.layout) * self.itemsize

    def close(self) -> None:
        """Release what the buckets hold (collective: every rank calls it); by MPI nothing is
        left once the last step's requests completed, so only the buffers go."""
        self.requests = [None] * len(self.flat)

    def begin(self, loss: float = 0.0) -> None:
        """Mark the start of a backward sweep; `loss`: this rank's (weighted) loss."""
        self._loss = loss
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

    def into(self, step) -> dict | None:
        """{input port: array} where `step` writes the param gradients it finishes (views of
        this rank's buckets), or None."""
        writes = self._writes.get(step.name)
        if not writes:
            return None
        if not self._views:
            for p, (i, off, size, shape) in self._owner.items():
                self._views[p] = self.flat[i][off:off + size].reshape(shape)
        return {port: self._views[p] for port, p in writes}

    def _start(self, i: int, grads: dict) -> None:
        self.pack(i, grads)
        self._starts_now[i] = time.perf_counter() - self._t0
        self.requests[i] = self.comm.iallreduce(self.flat[i])

    def pack(self, i: int, grads: dict) -> None:
        """Bucket i's gradients (and the loss, in the last) into its flat buffer."""
        flat = self.flat[i]
        for p, off, size, shape in self.layout[i]:
            g = self._loss if p is LOSS else grads.get(p)
            if g is not None and g is self._views.get(p):
                continue  # its step wrote it here
            if g is None:  # its backward step was skipped (no gradient reached it): zero
                flat[off:off + size] = 0
            else:
                # copied once, as the param's shape: a convolution's weight gradient is a
                # transposed view, which np.reshape(g, -1) would first copy to C order
                flat[off:off + size].reshape(shape)[...] = g

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
        return self.unpack(self.flat, grads)

    def unpack(self, sums: list, grads: dict) -> dict:
        """Point grads at their views of the buckets' sums; the summed loss into self.loss."""
        for i, entries in enumerate(self.layout):
            for p, off, size, shape in entries:
                if p is LOSS:
                    self.loss = float(sums[i][off])
                else:
                    grads[p] = sums[i][off:off + size].reshape(shape)
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
        into = self.buckets.into(step)
        if into is None:
            return super().step_backward(step, dout, cache)
        return step.op.backward(dout, cache, step.attrs, needs=step.needs, grads=into)
