"""Starting ranks: which launcher started us (from its environment), the ranks' environment,
the mpiexec command line, and what an exit status means."""
import os
import sys

from dagnet.dist import launch


def test_launcher_size_from_each_launcher():
    assert launch.launcher_size({}) is None
    assert launch.launcher_size({"PMI_RANK": "1", "PMI_SIZE": "4"}) == 4  # MPICH hydra, Intel
    assert launch.launcher_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2  # Open MPI
    assert launch.launcher_size({"PMIX_RANK": "0"}) == 0  # PMIx: size known after MPI_Init
    assert launch.launcher_size({"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "3"}) == 8  # srun
    # a batch script's own environment is not a job step: no srun, no ranks
    assert launch.launcher_size({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}) is None


def test_ranks_share_the_cores_unless_told(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    env = launch.child_env(4, {"PATH": "/bin"})
    assert env["DAGNET_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "2"
    assert launch.child_env(16, {})["DAGNET_NUM_THREADS"] == "1"
    assert launch.child_env(2, {"DAGNET_NUM_THREADS": "3"})["DAGNET_NUM_THREADS"] == "3"


def test_open_mpi_may_run_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    env = launch.child_env(2, {})
    assert env["OMPI_ALLOW_RUN_AS_ROOT"] == env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "OMPI_ALLOW_RUN_AS_ROOT" not in launch.child_env(2, {})


def test_command_reruns_the_same_cli_in_every_rank():
    argv = ["train", "lenet", "--ranks", "2", "--epochs", "1"]
    cmd = launch.command(2, argv, mpiexec="/opt/mpi/bin/mpiexec")
    assert cmd == ["/opt/mpi/bin/mpiexec", "-n", "2", sys.executable, "-m", "dagnet.cli", *argv]


def test_exit_statuses_explained():
    assert launch.explain(0) is None and launch.explain(2) is None
    assert "killed by SIGKILL" in launch.explain(9)  # hydra's way of saying signal 9
    assert "killed by SIGKILL" in launch.explain(137)  # 128 + 9
    assert "exit status 3" in launch.explain(3)
    assert launch.explain(130) == "interrupted"


def test_no_mpiexec_is_a_clear_error(monkeypatch):
    import pytest

    from dagnet.errors import DistributedError

    monkeypatch.setattr(launch.shutil, "which", lambda *a, **k: None)
    with pytest.raises(DistributedError, match=r"pip install -e '\.\[dist\]'"):
        launch.find_mpiexec()


def test_mpich_defaults_two_ranks_exchange_once_and_the_user_decides():
    from dagnet.dist.comm import mpi_defaults

    algorithm = "MPIR_CVAR_IALLREDUCE_INTRA_ALGORITHM"
    assert mpi_defaults({})["MPIR_CVAR_CH4_NETMOD"] == "ofi"
    assert algorithm not in mpi_defaults({})  # one process: nothing to reduce
    assert mpi_defaults({"PMI_SIZE": "2"})[algorithm] == "sched_recursive_doubling"
    assert algorithm not in mpi_defaults({"PMI_SIZE": "8"})  # MPICH's own choice at scale
    assert mpi_defaults({"PMI_SIZE": "2", algorithm: "auto", "MPIR_CVAR_CH4_NETMOD": "ucx"}) == {}
