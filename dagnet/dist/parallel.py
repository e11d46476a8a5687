"""DataParallel: one rank's view of a plan trained data-parallel over MPI.

    plan = dagnet.compile(graph, bucket_mb=4)
    with DataParallel(plan, Comm(), sync_bn=False) as model:
        Solver(model, data, batch_size=64, ...).train()   # 64 is the global batch

It is the plan (every attribute not defined here is the plan's), except that
  * loss_and_grads(X, y) takes the *global* batch, runs this rank's shard of it (sharding.py)
    with its loss gradient weighted by its share of the batch, starts each gradient bucket's
    allreduce right after the backward step that finishes it (buckets.py) and returns the
    global batch's loss and gradients - the same on every rank, so every rank applies the same
    update and the params stay identical;
  * predict(X) runs this rank's shard of X and gathers the scores, and an eval-mode forward
    first takes rank 0's batchnorm statistics (collective: every rank calls them, as the
    Solver's accuracy and validation-loss checks do);
  * the params and state start as rank 0's (broadcast), and every `check_every` steps a
    checksum of the params is compared across the ranks: a rank whose params differ means
    a bug or a broken node, and training stops with DistributedError naming the params;
  * close() (or leaving a `with` block without an error) releases the shared-memory segment
    of the buckets (collective): a process that builds many DataParallel objects keeps none
    it no longer uses. The last step's gradients are copied out of the segment first; the
    plan stays. Leaving the block by an error frees nothing (no collective: the other ranks
    may not have seen the error), so the error raised is the one that happened.

How the buckets are summed: on one machine in shared memory (shm.py: the ranks that finish
their backward first do the sums while they would wait), across machines (or with
shared_memory=False) by MPI's nonblocking allreduce (buckets.py).

Batchnorm: per-rank statistics by default (PyTorch DDP's default); with sync_bn the global
batch's (syncbn.py). Per-rank running statistics differ between ranks; rank 0's are the
model's, broadcast before every predict (DDP broadcasts its buffers likewise).
"""
from __future__ import annotations

import collections
import time
import zlib

import numpy as np

from dagnet import runtime
from dagnet.dist.buckets import BucketedExecutor, GradientBuckets
from dagnet.dist.shm import SharedBuckets, one_machine, segment_bytes
from dagnet.dist.sharding import counts, shard
from dagnet.dist.syncbn import StatisticsSync
from dagnet.errors import DistributedError
from dagnet.ops.norm import synchronised_statistics

#: steps between two params checksums (a crc32 of every param: ~1 ms for LeNet's 1.7 MB)
CHECK_EVERY = 50


class DataParallel:
    """A plan whose training steps and predictions are shared over the ranks of `comm`."""

    def __init__(self, plan, comm, sync_bn: bool = False, check_every: int = CHECK_EVERY,
                 shared_memory: bool | None = None):
        self.plan = plan
        self.comm = comm
        self.sync_bn = bool(sync_bn)
        self.check_every = int(check_every)
        if shared_memory is None:  # collective: every rank decides the same
            shared_memory = getattr(plan, "bucket_plan", None) and \
                one_machine(comm, segment_bytes(plan, comm.size))
        self.buckets = (SharedBuckets if shared_memory else GradientBuckets)(plan, comm)
        self.executor = BucketedExecutor(plan, self.buckets)  # its own caches and buffers
        self.stats_sync = StatisticsSync(comm) if sync_bn else None
        self.steps_done = 0
        self._grads = None  # the last step's gradients (views of the buckets' sums)
        self.closed = False
        self.forward_s = collections.deque(maxlen=1000)  # seconds of each step's forward
        self._state_synced = False  # rank 0's batchnorm state broadcast since the last step
        # dropout: each rank its own stream (the same stream would drop the same units of
        # rows that differ only by rank)
        if comm.rank:
            plan.rng = np.random.default_rng([plan.seed, comm.rank])
        self.broadcast_from_root()

    def __getattr__(self, name):
        # only called for what this class does not define: the rest is the plan's
        return getattr(self.__dict__["plan"], name)

    def __repr__(self) -> str:
        how = "shared memory" if isinstance(self.buckets, SharedBuckets) else "MPI"
        return (f"<DataParallel rank {self.comm.rank}/{self.comm.size} of {self.plan!r}, "
                f"{len(self.buckets.layout)} buckets summed by {how}, sync_bn={self.sync_bn}"
                f"{', closed' if self.closed else ''}>")

    # -- releasing the buckets ---------------------------------------------------------------
    def close(self) -> None:
        """Release the buckets (collective: every rank calls it; PeerLostError, after a
        bounded wait, when a rank is gone). Idempotent; training steps then raise."""
        if self.closed:
            return
        self.closed = True
        if self._grads is not None:  # views of memory about to be unmapped
            for p, g in self._grads.items():
                self._grads[p] = np.array(g)
            self._grads = None
        self.buckets.close()

    def __enter__(self) -> "DataParallel":
        return self

    def __exit__(self, kind, error, tb) -> None:
        if error is not None:
            # no collective: the other ranks may not have seen this error (a lost peer, a
            # disk full on rank 0) and would never meet this one; the error stays the one
            # raised, and the segment goes with the process
            self.closed = True
            return
        self.close()

    # -- keeping the ranks identical ---------------------------------------------------------
    def broadcast_from_root(self) -> None:
        """Rank 0's params and state on every rank (in place)."""
        for name, a in self.plan.params.items():
            self.comm.bcast(a, f"broadcasting param '{name}' from rank 0")
        self.broadcast_state()

    def broadcast_state(self) -> None:
        """Rank 0's batchnorm running statistics on every rank (in place)."""
        for node, st in self.plan.state.items():
            for key, a in st.items():
                self.comm.bcast(a, f"broadcasting {node}.{key} from rank 0")
        self._state_synced = True

    def forward(self, feeds: dict, mode: str | None = None, outputs=None) -> dict:
        """The plan's forward; in eval mode every rank first takes rank 0's running statistics
        (once after training steps), so that evaluations agree across the ranks."""
        if (mode or self.plan.mode) == "eval" and not self._state_synced:
            self.broadcast_state()
        return self.plan.forward(feeds, mode=mode, outputs=outputs)

    def reseed(self, epoch: int) -> None:
        """After resuming at `epoch`: ranks > 0 take fresh dropout streams (the checkpoint
        holds rank 0's)."""
        if self.comm.rank:
            self.plan.rng = np.random.default_rng([self.plan.seed, self.comm.rank, epoch])

    def check_params(self) -> None:
        """DistributedError unless every rank holds bitwise the same params."""
        names = list(self.plan.params)
        mine = np.array([zlib.crc32(np.ascontiguousarray(self.plan.params[p]).data)
                         for p in names], dtype=np.int64)
        every = self.comm.allgather(mine, "comparing the params' checksums")
        differ = [names[j] for j in np.flatnonzero((every != every[0]).any(axis=0))]
        if differ:
            ranks = [r for r in range(self.comm.size) if (every[r] != every[0]).any()]
            more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
            raise DistributedError(
                f"the ranks' params diverged after {self.steps_done} steps: {', '.join(differ[:5])}"
                f"{more} differ between rank 0 and rank(s) {ranks}; the ranks must apply the "
                f"same updates (a non-deterministic optimizer, params changed on one rank, or "
                f"a faulty node); restart from the last checkpoint")

    # -- a training step ---------------------------------------------------------------------
    def loss_and_grads(self, x, y=None, reg: float = 0.0):
        """(loss, {param: grad}) of the global batch (x, y); this rank computes its shard."""
        plan = self.plan
        if self.closed:
            raise DistributedError(
                f"rank {self.comm.rank}: this DataParallel was closed (its gradient buckets "
                f"are released); build a new one, DataParallel(plan, comm), to train again")
        if self.check_every and self.steps_done % self.check_every == 0:
            self.check_params()
        feeds = runtime.check_feeds(plan, plan.feeds_for(x, y))
        total = len(next(iter(feeds.values())))
        part = shard(total, self.comm.rank, self.comm.size)
        local = {k: v[part.rows] for k, v in feeds.items()}
        seeds = {v: np.asarray(part.weight, dtype=plan.dtype) for v in plan.losses}
        if self.stats_sync is not None:
            self.stats_sync.filler = part.filler
        with synchronised_statistics(self.stats_sync):
            t = time.perf_counter()
            values = self.executor.forward(local, "train", plan.losses)
            self.forward_s.append(time.perf_counter() - t)
            # the loss is summed with the last bucket
            self.buckets.begin(part.weight * float(sum(np.sum(values[v]) for v in plan.losses)))
            grads = self.executor.backward(seeds)
        self.buckets.finish(grads)
        self._grads = grads
        self.steps_done += 1
        self._state_synced = not plan.state
        value = self.buckets.loss
        if reg:
            value += plan.regularization(reg)
            for p in plan.decayed:
                grads[p] = grads[p] + reg * plan.params[p]
        return value, grads

    # -- predictions -------------------------------------------------------------------------
    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Eval-mode scores for x (N, ...): each rank scores its shard, every rank gets all."""
        if not self._state_synced:
            self.broadcast_state()
        n = len(x)
        if n == 0:
            return self.plan.predict(x, batch_size)
        part = shard(n, self.comm.rank, self.comm.size)
        mine = self.plan.predict(x[part.rows], batch_size)
        if part.filler:
            mine = mine[:0]
        return self.comm.allgatherv(mine, counts(n, self.comm.size), "gathering predictions")

    # -- what the overlap bought -------------------------------------------------------------
    def comm_report(self, blocking_repeats: int = 0) -> dict:
        """Medians over the recent steps: backward seconds and this rank's wait after it
        (allreduce not hidden, plus waiting for slower ranks). With blocking_repeats
        (collective: every rank must call it): also `exposed_wait_s`, per step the smallest
        wait over the ranks (the last rank to finish backward waits only for the network),
        `skew_s` (the largest minus the smallest wait: imbalance between the ranks),
        `last_share` (per rank, the share of the steps it was the last to finish), the
        blocking allreduce time and overlap = 1 - exposed / blocking."""
        b = self.buckets
        report = {"buckets": len(b.layout), "bytes": b.nbytes, "steps": len(b.exposed),
                  "forward_s": float(np.median(self.forward_s)) if self.forward_s else None,
                  "backward_s": float(np.median(b.backward)) if b.backward else None,
                  "wait_s": float(np.median(b.exposed)) if b.exposed else None}
        if blocking_repeats and b.exposed:
            waits = self.comm.allgather(np.array(b.exposed), "comparing the ranks' waits")
            report["exposed_wait_s"] = float(np.median(waits.min(axis=0)))
            report["skew_s"] = float(np.median(waits.max(axis=0) - waits.min(axis=0)))
            # per rank, the share of the steps it finished its backward last (waited least)
            last = waits.argmin(axis=0)
            report["last_share"] = [float(np.mean(last == r)) for r in range(self.comm.size)]
            blocking = b.time_blocking(blocking_repeats)
            report["blocking_allreduce_s"] = blocking
            report["overlap_fraction"] = max(0.0, 1.0 - report["exposed_wait_s"] / blocking) \
                if blocking > 0 else 1.0
        return report
