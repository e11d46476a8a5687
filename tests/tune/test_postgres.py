"""Two `dagnet tune` workers sharing one study on a PostgreSQL server that the test starts
(Debian's postgresql package; skipped with the reason where it or psycopg is missing)."""
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg", reason="PostgreSQL storage needs psycopg: pip install 'dagnet[postgres]'")

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
pytestmark = pytest.mark.skipif(not INITDB, reason="no PostgreSQL server on this machine "
                                "(Debian: apt-get install postgresql)")


def as_server_user(cmd):
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture
def postgres_url():
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
    bin_dir = os.path.dirname(INITDB[-1])
    home = tempfile.mkdtemp(prefix="dagnet-pg-", dir="/tmp")  # pytest's tmp is root-only
    if os.geteuid() == 0:
        os.chown(home, pw.pw_uid, pw.pw_gid)
    data, log = os.path.join(home, "data"), os.path.join(home, "log")
    port = 40000 + os.getpid() % 20000  # names the socket file only: no TCP
    try:
        subprocess.run(as_server_user([INITDB[-1], "-D", data, "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(as_server_user([
            os.path.join(bin_dir, "pg_ctl"), "-D", data, "-l", log, "-w", "start",
            "-o", f"-k {home} -c listen_addresses='' -p {port}"]),
            check=True, capture_output=True, timeout=120)
        yield f"postgresql+psycopg://postgres@/postgres?host={home}&port={port}"
    finally:
        subprocess.run(as_server_user([os.path.join(bin_dir, "pg_ctl"), "-D", data, "-m",
                                       "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def test_two_workers_share_a_postgres_study(tiny_mnist, tmp_path, postgres_url):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 1.0e-3, high: 1.0e-1, log: true}\nbatch_size: 40\n")
    args = [sys.executable, "-m", "dagnet.cli", "tune", "two_layer_net", "--data",
            f"mnist:{tiny_mnist}", "--val", "40", "--space", str(space), "--trials", "4",
            "--storage", postgres_url, "--study", "shared", "--sampler", "random"]
    # two "machines": separate --out folders, one storage
    workers = [subprocess.Popen(args + ["--out", str(tmp_path / f"m{i}")], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in (1, 2)]
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, out + err
    trials = optuna.load_study(study_name="shared", storage=postgres_url).trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 4 and len({t.number for t in done}) == 4
    assert {os.path.dirname(os.path.dirname(t.user_attrs["run_dir"])) for t in done} <= \
        {str(tmp_path / "m1"), str(tmp_path / "m2")}
    assert not (tmp_path / "m1" / "study.db").exists()  # the storage is the server, not a file
