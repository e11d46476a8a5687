"""The gradient buckets summed through shared memory, when every rank runs on one machine.

    buckets = SharedBuckets(plan, comm)   # instead of GradientBuckets; the same calls

Why: MPI moves a nonblocking allreduce only inside MPI calls on *both* ranks, and a rank busy
in a 4-5 ms convolution backward makes none, so the bucket a backward step finished waited for
the end of the sweep (docs/distributed.md, Speed). Here the ranks exchange no messages: each
rank packs a finished bucket into its own slot of a segment every rank maps (MPI-3 shared
memory, MPI_Win_allocate_shared) and publishes it with a step counter; a rank that has finished
its sweep sums, while it waits, every chunk of every bucket whose slots are all published, its
own chunk first, then the others' not summed yet. So the ranks that finish early do the sums in
time they would only wait, and the last rank to finish finds little left. The gradients the
step returns are views of the shared sums: no copy out.

Sums are taken in rank order (slot 0 + slot 1 + ...) whichever rank computes a chunk, so the
result is the same on every rank and bitwise the same from run to run. Two ranks may sum the
same chunk at once: both write the same bytes, and only final ones. No rank overwrites what
another may still read: a chunk of step s+1 is summed only after every rank packed its slot,
i.e. after every rank applied step s's update (which read the sums), and a rank packs step
s+1 only after every rank has left step s's sums (`passed`). Every wait is bounded
(comm.timeout). Across machines the buckets go through MPI (buckets.py).

The wait spins while this rank has its core to itself; when other tasks held the core for
more than 1% of the last step (other jobs want it), the wait sleeps on a futex after 0.1 ms
instead, woken by the next flag any rank publishes (futex.py says why).

Segment: [ready (buckets, ranks) | done (buckets, chunks) | passed (ranks), int64 step
counters | bell: an int32 every publisher bumps | per bucket: a slot per rank, then the sums],
each on a 64-byte boundary.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from dagnet.dist import futex
from dagnet.dist.buckets import GradientBuckets, bucket_layout
from dagnet.dist.comm import _DOZE, _SPIN
from dagnet.errors import PeerLostError

_ALIGN = 64
# a contended rank spins this long before it sleeps: the ranks often finish within it, and a
# futex wake-up took 0.06-0.17 ms at load 5 (benchmarks/dist_wakeup.py)
_NAP = 1e-4
# a step is contended when the rank waited, runnable, for its core more than this share of
# it: a quiet machine's kernel threads take ~0.1% (and preempt the rank in a third of its
# steps, which the rule before this one took for contention), other jobs 5-50%
_CONTENDED = 0.01


def one_machine(comm, nbytes: int) -> bool:
    """Whether every rank of `comm` shares this machine's memory, with room for a segment of
    `nbytes` in its shared-memory file system (collective: every rank answers the same)."""
    if comm.size < 2:
        return False
    node = comm.data.Split_type(comm.MPI.COMM_TYPE_SHARED)
    whole = node.Get_size() == comm.size
    node.Free()
    # twice the segment: a container's /dev/shm is often small (Docker's: 64 MB), and other
    # jobs use it too; without room the buckets go through MPI
    room = whole and _shm_free() >= 2 * nbytes
    return bool(comm.allgather(np.array([room]), "agreeing on shared memory").all())


def segment_bytes(plan, size: int) -> int:
    """Bytes of the shared segment for `plan`'s buckets over `size` ranks (the step counters,
    and per bucket a slot per rank and the sums)."""
    layout = bucket_layout(plan)
    itemsize = np.dtype(plan.dtype).itemsize
    per = sum(_round((e[-1][1] + e[-1][2]) * itemsize) for e in layout)
    return _round(_flag_count(len(layout), size) * 8) + per * (size + 1)


def _shm_free() -> int:
    path = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class SharedBuckets(GradientBuckets):
    """GradientBuckets whose sums are computed in a shared-memory segment (one machine)."""

    def __init__(self, plan, comm):
        super().__init__(plan, comm)
        MPI = comm.MPI
        n, nb = comm.size, len(self.flat)
        dtype = np.dtype(plan.dtype)
        sizes = [f.size for f in self.flat]
        flags = _round(_flag_count(nb, n) * 8)
        per = [_round(s * dtype.itemsize) for s in sizes]
        total = segment_bytes(plan, n)
        # rank 0 allocates the whole segment, the others map it (same order of ranks as comm)
        self.win = MPI.Win.Allocate_shared(total if comm.rank == 0 else 0, 1, comm=comm.data)
        buf, _ = self.win.Shared_query(0)
        raw = np.frombuffer(buf, dtype=np.uint8, count=total)
        self.win.Lock_all(MPI.MODE_NOCHECK)  # a passive epoch, for Win_sync's memory barriers
        flag = raw[:_flag_count(nb, n) * 8].view(np.int64)
        if comm.rank == 0:
            flag[...] = 0
        # step counters: ready[bucket, rank] (its slot packed), done[bucket, chunk] (summed),
        # passed[rank] (done reading the slots of that step)
        self.ready = flag[:nb * n].reshape(nb, n)
        self.done = flag[nb * n:2 * nb * n].reshape(nb, n)
        self.passed = flag[2 * nb * n:(2 * nb + 1) * n]
        self.bell = flag[(2 * nb + 1) * n:].view(np.int32)[:1]  # bumped by every publish
        self._bell = futex.Word(self.bell) if futex.AVAILABLE else None
        # sleep in the wait when other tasks held this rank's core in the last step (False:
        # always spin); every rank rings the bell whatever its own choice
        self.nap = futex.AVAILABLE
        self._contended = False
        self.contended_steps = 0  # steps whose wait slept (the step before was contended)
        self._delay, self._since = self._contention(), time.perf_counter()
        self.slots, self.sums, self.chunks = [], [], []
        at = flags
        for s, p in zip(sizes, per):
            views = [raw[at + k * p:at + k * p + s * dtype.itemsize].view(dtype)
                     for k in range(n + 1)]
            self.slots.append(views[:n])
            self.sums.append(views[n])
            at += p * (n + 1)
            self.chunks.append([slice(k * s // n, (k + 1) * s // n) for k in range(n)])
        self.flat = [slots[comm.rank] for slots in self.slots]  # this rank packs here
        self.step = 0
        self._summed = [False] * nb
        self._free = True
        self.win.Sync()
        comm.all_arrive(comm.timeout)  # the flags are zero before any rank publishes

    def close(self) -> None:
        """Release the segment (collective: MPI_Win_free waits for every rank). The ranks
        first meet at a bounded barrier: when one is lost, PeerLostError, and the segment
        stays mapped until this process ends (freeing it would wait forever)."""
        if self.win is None:
            return
        c = self.comm
        if not c.all_arrive(c.timeout):
            raise PeerLostError(
                f"rank {c.rank} of {c.size} ({c.host}): no answer from the other ranks for "
                f"{c.timeout:g} s while releasing the shared gradient buckets: a rank died or "
                f"hangs; the segment is freed when this process ends")
        self.win.Unlock_all()
        self.win.Free()
        self.win = None
        self.slots = self.sums = self.flat = []
        self._views = {}  # views of the unmapped segment
        self.ready = self.done = self.passed = self.bell = self._bell = None

    def begin(self, loss: float = 0.0) -> None:
        super().begin(loss)
        self.step += 1
        self._summed = [False] * len(self.flat)
        self._free = False

    def before_step(self, step, grads: dict) -> None:
        """Before `step`'s backward: publish the buckets the steps before it finished. No sums
        here: with a core per rank they would lengthen this rank's sweep, while a rank that
        finished its sweep sums them in time it would only wait (in a 2-rank LeNet step each
        rank summed 0.17 ms per step mid-sweep)."""
        here = self.position[step.name]
        for i, after in enumerate(self.after):
            if after < here and self.requests[i] is None:
                self._start(i, grads)

    def into(self, step) -> dict | None:
        """As GradientBuckets.into, once every rank has left the last step's sums (a rank
        may still be summing from this rank's slots)."""
        if self._writes.get(step.name):
            self._wait_free()
        return super().into(step)

    def _start(self, i: int, grads: dict) -> None:
        self._wait_free()
        self.pack(i, grads)
        self._starts_now[i] = time.perf_counter() - self._t0
        self.win.Sync()  # the slot's bytes are visible before its flag
        self.ready[i, self.comm.rank] = self.step
        self._ring()
        self.requests[i] = True

    def _wait_free(self) -> None:
        if not self._free:
            # a rank may still be summing (as a helper) a chunk of the last step from the slot
            # about to be overwritten; it leaves the step long before we get here, save when
            # the machine took its core away
            self._spin_until(lambda: bool((self.passed >= self.step - 1).all()))
            self._free = True

    def _sum_ready(self) -> bool:
        """Sum the chunks not summed yet of every bucket all ranks have packed, this rank's
        chunk first; True when every chunk of every bucket is summed."""
        step, n = self.step, self.comm.size
        for i in range(len(self.flat)):
            if self._summed[i]:
                continue
            if not (self.ready[i] == step).all():
                continue
            self.win.Sync()  # read the slots only after seeing their flags
            for k in range(n):
                j = (self.comm.rank + k) % n
                if self.done[i, j] != step:
                    self._sum_chunk(i, j)
            self._summed[i] = True
        return bool((self.done == step).all())

    def _sum_chunk(self, i: int, j: int) -> None:
        """Chunk j of bucket i: the slots' sum in rank order. Another rank may be summing the
        same chunk: both write the same values, and only final ones (the partial sums of more
        than two ranks stay private), so a rank that reads the chunk reads the sum."""
        c, slots = self.chunks[i][j], self.slots[i]
        if len(slots) == 2:
            np.add(slots[0][c], slots[1][c], out=self.sums[i][c])
        else:
            part = slots[0][c] + slots[1][c]
            for s in slots[2:]:
                part += s[c]
            self.sums[i][c] = part
        self.win.Sync()  # the sum's bytes are visible before its flag
        self.done[i, j] = self.step
        self._ring()

    def finish(self, grads: dict) -> dict:
        """Pack the buckets not packed yet, sum this rank's chunks, wait for the others', and
        point grads at the shared sums."""
        end = time.perf_counter()
        for i, r in enumerate(self.requests):
            if r is None:
                self._start(i, grads)
        self._wait_all()
        self.win.Sync()
        done = time.perf_counter()
        self.backward.append(end - self._t0)
        self.exposed.append(done - end)
        self.start_offsets.append(list(self._starts_now))
        return self.unpack(self.sums, grads)

    def _wait_all(self) -> None:
        """Sum chunks as their buckets become ready, until every chunk is summed."""
        self._spin_until(self._sum_ready)
        self.passed[self.comm.rank] = self.step
        self._ring()
        if self.nap:  # did other tasks hold this rank's core in the step? then sleep next time
            delay, now = self._contention(), time.perf_counter()
            self._contended = delay - self._delay > _CONTENDED * (now - self._since)
            self._delay, self._since = delay, now
            self.contended_steps += self._contended

    @staticmethod
    def _contention() -> float:
        """The run delay so far (seconds); where the kernel keeps none, each preemption
        counts as a whole step's worth (any preemption then makes the step contended)."""
        delay = futex.run_delay()
        return 1e9 * futex.preemptions() if delay is None else delay

    def _ring(self) -> None:
        """After publishing a flag: bump the bell and wake the ranks sleeping on it. The
        barrier first: the flag is visible before this rank reads the bell, so a rank that
        read the bumped bell sees the flag (or sleeps on a value the next bump changes)."""
        if self._bell is not None:
            self.win.Sync()
            self.bell[0] += 1
            self._bell.wake()

    def _spin_until(self, done) -> None:
        """Call done() until it is true: polling flat out, then yielding the core, then
        sleeping between calls (as Comm.wait), or, when other tasks held this rank's core in
        its last step, sleeping on the bell after _NAP; PeerLostError after comm.timeout seconds."""
        start = time.monotonic()
        nap = _NAP if self.nap and self._contended else None
        while True:
            bell = int(self.bell[0]) if nap is not None else 0  # read before the flags
            if done():
                return
            waited = time.monotonic() - start
            if nap is not None and waited > nap:
                self._bell.wait(bell, 0.002)  # re-checks the deadline every 2 ms
            elif waited > _DOZE:
                time.sleep(0.001)
            elif waited > _SPIN:
                os.sched_yield()
            if waited > self.comm.timeout:
                c = self.comm
                raise PeerLostError(
                    f"rank {c.rank} of {c.size} ({c.host}): no answer from the other ranks for "
                    f"{c.timeout:g} s while summing the gradients (shared memory): a rank died "
                    f"or hangs (look for its error above); stopping instead of waiting forever "
                    f"(--comm-timeout sets the limit)")

    def time_blocking(self, repeats: int = 20) -> float:
        """Median seconds to sum every bucket with nothing to overlap (collective)."""
        times = []
        for _ in range(repeats):
            self.comm.all_arrive(self.comm.timeout)
            t = time.perf_counter()
            self.begin()
            for i in range(len(self.flat)):
                self._start(i, {})
            self._wait_all()
            times.append(time.perf_counter() - t)
        return float(np.median(times))


def _flag_count(buckets: int, ranks: int) -> int:
    """int64 words before the buckets: ready, done, passed, and one holding the bell."""
    return (2 * buckets + 1) * ranks + 1


def _round(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN
