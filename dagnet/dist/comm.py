"""The communication layer of data-parallel training: MPI (mpi4py over MPICH or Open MPI), with
every wait bounded in time.

    comm = Comm()                          # COMM_WORLD; rank and size from the MPI launcher
    req = comm.iallreduce(flat)            # nonblocking sum in place (a gradient bucket)
    comm.wait([req], "the gradient allreduce")
    comm.bcast(array); comm.allgather(small)

Why every wait has a deadline: MPI has no failure detection a program can rely on. When a rank
is killed, `mpiexec` (MPICH's hydra, Open MPI's prterun) usually kills the others, but under
Slurm or a launcher that does not, the survivors would block in the next collective forever.
So no call here blocks inside MPI: each posts a nonblocking operation and polls it with
Testall until it completes or `timeout` seconds pass, then raises PeerLostError naming the
rank and what it was waiting for. Polling also drives MPI's progress engine, which (without
an extra progress thread, that would take a core) moves nonblocking collectives only inside
MPI calls; `progress()` is that poll for the backward sweep.

Two duplicates of the world communicator keep traffic apart: `data` for the training's
collectives and `ctl` for the agreement on how to stop after an error, which must never match
a collective another rank has in flight.
"""
from __future__ import annotations

import os
import time

import numpy as np

from dagnet.errors import DistributedError, MissingDependencyError, PeerLostError

#: seconds a rank waits for the others before it declares them dead or hung
DEFAULT_TIMEOUT = 120.0
INSTALL = "pip install -e '.[dist]' (brings mpi4py and MPICH)"
# A wait polls flat out for its first _SPIN seconds (gradient and statistics exchanges take
# microseconds to milliseconds, and a sleep costs ~0.5 ms here), then yields the core between
# polls, and after _DOZE seconds (rank 0 writing a checkpoint) sleeps 1 ms between them.
_SPIN, _DOZE = 0.002, 0.05


def launcher_size(env=None) -> int | None:
    """The number of processes the MPI launcher that started this one says the job has
    (0: a launcher that does not say), or None when no launcher started it."""
    env = os.environ if env is None else env
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        if env.get(key, "").strip().isdigit():
            if key != "SLURM_STEP_NUM_TASKS" or "SLURM_PROCID" in env:
                return int(env[key])
    if "PMIX_RANK" in env or "PMI_RANK" in env:
        return 0
    return None


def mpi_defaults(env=None) -> dict:
    """MPICH settings dagnet chooses unless the user set them (read at MPI's initialisation;
    Open MPI ignores them): {variable: value}."""
    env = os.environ if env is None else env
    # MPICH's default UCX network module took 0.6 ms (blocking) to 8 ms (nonblocking) for an
    # 8-byte allreduce between two ranks of this machine, its OFI (libfabric) module 7 us
    out = {"MPIR_CVAR_CH4_NETMOD": "ofi"}
    if launcher_size(env) == 2:
        # two ranks: one exchange of the whole bucket (recursive doubling) instead of
        # MPICH's default, the same bytes in more rounds, each needing both ranks on a core
        # at once; on a loaded 2-core machine the 2-rank LeNet step kept 0.85 of the
        # ceiling instead of 0.80 (7 job pairs, docs/distributed.md). For more ranks the
        # default's bandwidth-optimal algorithms win, and stay.
        out["MPIR_CVAR_IALLREDUCE_INTRA_ALGORITHM"] = "sched_recursive_doubling"
    return {k: v for k, v in out.items() if k not in env}


def mpi():
    """The mpi4py MPI module (initialises MPI on first import); MissingDependencyError without."""
    os.environ.update(mpi_defaults())
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MissingDependencyError(f"distributed training needs mpi4py and an MPI library "
                                     f"({e}); {INSTALL}") from None
    return MPI


class Comm:
    """MPI_COMM_WORLD (or `comm`) for one data-parallel job: rank, size, bounded waits."""

    def __init__(self, comm=None, timeout: float = DEFAULT_TIMEOUT):
        MPI = mpi()
        self.MPI = MPI
        base = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = base.Get_rank(), base.Get_size()
        self.data = base.Dup()
        self.ctl = base.Dup()
        if timeout <= 0:
            raise DistributedError(f"the communication timeout must be > 0 seconds, got {timeout}")
        self.timeout = float(timeout)
        self.host = MPI.Get_processor_name()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- waiting ----------------------------------------------------------------------------
    def progress(self, requests) -> bool:
        """Poll once (drives MPI's progress engine); True when every request is complete."""
        try:
            return self.MPI.Request.Testall(requests)
        except self.MPI.Exception as e:
            raise self._failed(e, "polling the gradient allreduce") from None

    def wait(self, requests, what: str, timeout: float | None = None) -> None:
        """Poll `requests` until all complete; PeerLostError after `timeout` seconds."""
        limit = self.timeout if timeout is None else timeout
        start = time.monotonic()
        while not self.progress(requests):
            waited = time.monotonic() - start
            if waited > _DOZE:
                time.sleep(0.001)
            elif waited > _SPIN:
                os.sched_yield()
            if waited > limit:
                raise PeerLostError(
                    f"rank {self.rank} of {self.size} ({self.host}): no answer from the other "
                    f"ranks for {limit:g} s while {what}: a rank died or hangs (look for its "
                    f"error above); stopping instead of waiting forever (--comm-timeout sets "
                    f"the limit)")

    def _failed(self, e, what: str) -> PeerLostError:
        return PeerLostError(f"rank {self.rank} of {self.size} ({self.host}): MPI failed while "
                                f"{what} ({e.Get_error_string()}): a rank died or the network "
                                f"failed")

    # -- collectives ------------------------------------------------------------------------
    def iallreduce(self, buf: np.ndarray):
        """Start summing `buf` over the ranks, in place; returns the request."""
        return self.data.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def allreduce(self, buf: np.ndarray, what: str) -> np.ndarray:
        """Sum `buf` over the ranks in place (bounded wait); returns buf."""
        self.wait([self.iallreduce(buf)], what)
        return buf

    def allgather(self, a: np.ndarray, what: str) -> np.ndarray:
        """Every rank's `a` (same shape and dtype on each): an array (size, *a.shape)."""
        a = np.ascontiguousarray(a)
        out = np.empty((self.size,) + a.shape, a.dtype)
        self.wait([self.data.Iallgather(a, out)], what)
        return out

    def allgatherv(self, a: np.ndarray, counts: list, what: str) -> np.ndarray:
        """Rows of `a` from every rank, in rank order; counts[r] = rank r's number of rows."""
        a = np.ascontiguousarray(a)
        row = int(np.prod(a.shape[1:], dtype=np.int64))
        out = np.empty((sum(counts),) + a.shape[1:], a.dtype)
        sizes = [c * row for c in counts]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        self.wait([self.data.Iallgatherv(a, [out, sizes, offsets, self._type(a)])], what)
        return out

    def bcast(self, a: np.ndarray, what: str, root: int = 0) -> np.ndarray:
        """`a` from `root` into `a` on every rank (same shape and dtype everywhere)."""
        self.wait([self.data.Ibcast(a, root=root)], what)
        return a

    def bcast_bytes(self, data: bytes | None, what: str) -> bytes:
        """Bytes from rank 0 (its `data`; the others pass None)."""
        n = np.array([len(data) if self.is_root else 0], dtype=np.int64)
        self.bcast(n, what)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.is_root \
            else np.empty(int(n[0]), dtype=np.uint8)
        return self.bcast(buf, what).tobytes()

    def _type(self, a: np.ndarray):
        return self.MPI._typedict[a.dtype.char]

    # -- stopping ---------------------------------------------------------------------------
    def all_arrive(self, seconds: float) -> bool:
        """A barrier on the control communicator: True if every rank reached it in time."""
        try:
            self.wait([self.ctl.Ibarrier()], "agreeing to stop", timeout=seconds)
            return True
        except PeerLostError:
            return False

    def abort(self, code: int) -> None:
        """End every rank of the job now (MPI_Abort): for an error the others cannot see."""
        self.MPI.COMM_WORLD.Abort(code)
