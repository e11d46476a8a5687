"""Starting the ranks: `dagnet train ... --ranks N` runs N copies of the same command under
`mpiexec`; a command already started by a launcher (a user's `mpiexec -n N`, Slurm's `srun`)
takes its rank and size from MPI and starts nothing.

Which launcher started us is read from the environment it sets (no MPI call: importing mpi4py
initialises MPI, which a plain single-process run should never pay for):
MPICH's hydra and Intel MPI set PMI_RANK/PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE, PMIx
launchers PMIX_RANK, and srun SLURM_STEP_NUM_TASKS inside a job step.

Threads: N ranks on one machine share its cores, so each rank's kernels and BLAS get
cores // N threads (DAGNET_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS) unless the
user set them; oversubscribed cores made every rank slower than one process.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from dagnet.dist.comm import INSTALL, launcher_size  # noqa: F401  (launcher_size: here too)
from dagnet.errors import DistributedError

THREAD_VARS = ("DAGNET_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def find_mpiexec() -> str:
    """mpiexec next to this Python (the `dist` extra's MPICH wheel puts it in the venv's
    bin/), else on PATH; DistributedError if there is none."""
    here = os.path.dirname(sys.executable)
    found = shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        raise DistributedError(f"--ranks needs an MPI launcher (mpiexec), and none was found "
                               f"next to {sys.executable} or on PATH; {INSTALL}")
    return found


def child_env(ranks: int, env=None) -> dict:
    """The environment of the ranks started on this machine: threads split among them and,
    for root, Open MPI's consent to run as root (MPICH needs none)."""
    env = dict(os.environ if env is None else env)
    threads = str(max(1, (os.cpu_count() or 1) // ranks))
    for key in THREAD_VARS:
        env.setdefault(key, threads)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def command(ranks: int, argv: list, mpiexec: str | None = None) -> list:
    """mpiexec -n RANKS python -m dagnet.cli ARGV (the same command line in each rank)."""
    return [mpiexec or find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "dagnet.cli",
            *argv]


def run(ranks: int, argv: list) -> int:
    """Run the ranks to their end; returns mpiexec's exit status (128 + signal if it was
    killed by one). Ctrl-C reaches the ranks through mpiexec, which forwards it."""
    proc = subprocess.Popen(command(ranks, argv), env=child_env(ranks))
    try:
        return _status(proc.wait())
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return _status(proc.wait())


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def explain(code: int) -> str | None:
    """What an exit status of mpiexec means to the user, or None for 0 (success) and 2 (a
    dagnet error that rank 0 has already printed)."""
    if code in (0, 2):
        return None
    if code == 130:
        return "interrupted"
    name = _signal_name(code - 128) if code > 128 else _signal_name(code)
    how = f"killed by {name}" if name else f"exit status {code}"
    return f"a rank ended abnormally (mpiexec: {how}); the other ranks were stopped"


def _signal_name(n: int) -> str | None:
    # hydra reports a rank killed by signal 9 as exit status 9, Open MPI as 137
    try:
        return signal.Signals(n).name if n in (6, 9, 11, 15) else None
    except ValueError:
        return None
