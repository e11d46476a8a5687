"""`dagnet train` on several processes: the flags, the launch (`--ranks N`), each rank's role
and how the ranks stop together.

    dagnet train lenet --ranks 2                 # starts 2 ranks under mpiexec
    mpiexec -n 4 dagnet train lenet              # or srun -n 4 ...: rank and size from MPI

Roles: every rank loads the data and compiles the model; rank 0's params and state are
broadcast; every rank trains its shard of each global batch; only rank 0 prints, draws,
writes the run folder and the checkpoint. `--resume` sends rank 0's checkpoint to the others
(no shared file system needed), so a run may resume with another number of ranks.

Stopping: an error every rank sees alike (NaN loss, a bad checkpoint) is printed by rank 0,
and the ranks meet at a barrier and exit 2. An error only one rank sees (a lost peer, a disk
error on rank 0) is printed by that rank, which then ends the job (MPI_Abort), so no rank is
left waiting.
"""
from __future__ import annotations

import os
import sys
import tempfile
import traceback

from dagnet.cli.common import UsageError
from dagnet.errors import DagnetError, PeerLostError

#: seconds the ranks wait for each other to agree on stopping after an error
STOP_WAIT = 10.0


def add_flags(parser) -> None:
    """The data-parallel flags of `dagnet train`."""
    from dagnet.compiler.buckets import DEFAULT_BUCKET_MB
    from dagnet.dist.comm import DEFAULT_TIMEOUT

    g = parser.add_argument_group("data-parallel training over MPI (pip install -e '.[dist]'; "
                                  "see docs/distributed.md)")
    g.add_argument("--ranks", type=int, default=None,
                   help="start this many processes under mpiexec; --batch-size stays the global "
                        "batch (under your own mpiexec or srun, rank and size come from MPI)")
    g.add_argument("--sync-bn", action="store_true",
                   help="batchnorm statistics of the global batch (default: of each rank's shard)")
    g.add_argument("--bucket-mb", type=float, default=DEFAULT_BUCKET_MB,
                   help="gradient allreduce bucket size in MiB (the first bucket closes at "
                        "1 MiB at most)")
    g.add_argument("--comm-timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds a rank waits for the others before it declares one dead")


class World:
    """This process's place in the job: the communicator (None when alone) and its role."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.rank if comm else 0
        self.size = comm.size if comm else 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def compile_options(self, args) -> dict:
        return {"bucket_mb": args.bucket_mb} if self.comm else {}

    def wrap(self, plan, args):
        """The plan, or its DataParallel view when there are several ranks."""
        if not self.comm:
            return plan
        from dagnet.dist import DataParallel

        return DataParallel(plan, self.comm, sync_bn=args.sync_bn)

    def on_root(self, fn):
        """Run fn on rank 0 only (file-system work); a DagnetError it raises is raised on
        every rank, so that all stop alike."""
        error = None
        if self.is_root:
            try:
                fn()
            except DagnetError as e:
                error = e
        if self.comm:
            said = self.comm.bcast_bytes(str(error).encode() if error else b"",
                                         "waiting for rank 0 to prepare the run")
            if said and error is None:
                error = UsageError(said.decode())
        if error is not None:
            raise error

    def resume(self, solver, ckpt: str, model) -> None:
        """With several ranks: rank 0 reads its checkpoint and sends it to the others, which
        load it too; ranks > 0 then take fresh dropout streams."""
        if not self.comm:
            return
        self.on_root(lambda: os.path.exists(ckpt) and solver.load(ckpt))
        data = b""
        if self.is_root and os.path.exists(ckpt):
            with open(ckpt, "rb") as f:
                data = f.read()
        data = self.comm.bcast_bytes(data, "sending the checkpoint from rank 0")
        if data and not self.is_root:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "checkpoint.npz")
                with open(path, "wb") as f:
                    f.write(data)
                solver.load(path)
        if data:
            model.reseed(solver.epoch)

    def report(self, model) -> str | None:
        """One line on the gradient allreduce, for rank 0's summary."""
        if not self.comm:
            return None
        r = model.comm_report()
        if r["backward_s"] is None:
            return None
        return (f"{self.size} ranks: {r['buckets']} allreduce bucket(s) of {r['bytes'] / 2**20:.2f} "
                f"MiB per step; median backward {r['backward_s'] * 1e3:.1f} ms, then rank 0 "
                f"waited {r['wait_s'] * 1e3:.2f} ms for the allreduce and the other ranks")


def run(args, train) -> int:
    """train(args, world) in this process, as one rank of an MPI job, or start --ranks N."""
    from dagnet.dist import launch

    if args.ranks is not None and args.ranks < 1:
        raise UsageError(f"--ranks must be at least 1, got {args.ranks}")
    size = launch.launcher_size()
    if size is None:
        if args.ranks and args.ranks > 1:
            return _launch(args)
        return train(args, World())
    from dagnet.dist.comm import Comm

    comm = Comm(timeout=args.comm_timeout)
    if size and comm.size != size:
        raise UsageError(f"the launcher started {size} processes but MPI sees {comm.size}: "
                         f"mpi4py's MPI library is not the launcher's (use the mpiexec of the "
                         f"MPI mpi4py was built for; under Slurm, srun --mpi=pmi2 or pmix)")
    if args.ranks and args.ranks != comm.size:
        raise UsageError(f"--ranks {args.ranks} but this job has {comm.size} ranks; drop "
                         f"--ranks under your own mpiexec/srun")
    return _guarded(comm, lambda: train(args, World(comm)))


def _launch(args) -> int:
    from dagnet.dist import launch

    code = launch.run(args.ranks, getattr(args, "argv", None) or sys.argv[1:])
    problem = launch.explain(code)
    if problem:
        _say(f"dagnet train: {problem}; {checkpoint_note(os.path.join(args.out, 'checkpoint.npz'))}")
    return code


def checkpoint_note(ckpt: str) -> str:
    """What is left on disk after a failed run, and how to continue it."""
    from dagnet.train.checkpoint import load_checkpoint

    if not os.path.exists(ckpt):
        return "no checkpoint was written (the first epoch had not ended)"
    try:
        epoch = load_checkpoint(ckpt).solver.get("epoch")
    except DagnetError as e:
        return f"the checkpoint cannot be used: {e}"
    return f"the last checkpoint {ckpt} (epoch {epoch}) is intact: continue with --resume"


def _guarded(comm, fn) -> int:
    """fn() on this rank, with the stopping rules of the module docstring."""
    try:
        return fn()
    except PeerLostError as e:
        _say(f"dagnet train: {e}")
        comm.abort(3)
    except DagnetError as e:
        if comm.is_root:
            _say(f"dagnet train: {e}")
        if comm.all_arrive(STOP_WAIT):
            return 2
        if not comm.is_root:
            _say(f"dagnet train: rank {comm.rank}: {e}")
        comm.abort(2)
    except (KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit):
            raise
        if comm.is_root:  # train() says what the checkpoint holds (perhaps nothing yet)
            _say(f"dagnet train: {str(e) or 'interrupted'}")
        return 130
    except BaseException:
        _say(f"dagnet train: rank {comm.rank} failed:\n{traceback.format_exc()}")
        comm.abort(1)
    return 1  # not reached: abort ends the process


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
