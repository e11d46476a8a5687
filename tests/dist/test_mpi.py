"""Two-rank MPI jobs, run as a user would (`pytest -m dist` runs them alone): exactness against
one process, reproducibility, the CLI's launch and resume with another number of ranks, a
killed rank, a hung rank, diverged params, and two ranks on two network namespaces."""
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from dagnet.train.checkpoint import load_checkpoint
from tests.dist import worker

BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN + os.pathsep + os.environ.get("PATH", ""))
pytestmark = [
    pytest.mark.dist,
    pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                       reason="needs mpi4py and mpiexec: pip install -e '.[dist]'"),
]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "DAGNET_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
SMALL = """name: small
input: {shape: [1, 28, 28]}
layers:
  - {type: conv, num_filters: 4, filter_size: 3, stride: 1, pad: 1}
  - {type: spatial_batchnorm}
  - {type: relu}
  - {type: pool, size: 4, stride: 4}
  - {type: affine, hidden: 10}
loss: softmax
"""


def mpiexec(n, *args, timeout=180, **kw):
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def dagnet(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "dagnet.cli", *map(str, args)], cwd=ROOT,
                          env=env or ENV, capture_output=True, text=True, timeout=timeout)


def max_rel_diff(a: dict, b: dict) -> float:
    """max over params of max|a - b| / max|b|, the scale floored at 1e-3 of the largest param
    (conv biases before batchnorm get no gradient: they are rounding noise near 0)."""
    floor = 1e-3 * max(float(np.max(np.abs(v))) for v in b.values())
    return max(float(np.max(np.abs(a[k] - b[k]))) / max(float(np.max(np.abs(b[k]))), floor)
               for k in b)


def load(path):
    """The params a worker saved (and its validation losses under "val_loss_history")."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("model,sync", [("convbn", True), ("fc", False)])
def test_two_ranks_equal_one_process_and_repeat_bitwise(model, sync, tmp_path):
    mode = "sync" if sync else "nosync"
    assert worker.main(model, sync, str(tmp_path / "one")) == 0  # this process: no MPI
    one = load(tmp_path / "one.rank0.npz")
    one_val = one.pop("val_loss_history")
    one.pop("transport")
    runs = 2 if sync else 1
    for k in range(runs):
        r = mpiexec(2, "-m", "tests.dist.worker", model, mode, str(tmp_path / f"two{k}"))
        assert r.returncode == 0, r.stdout + r.stderr
    two = load(tmp_path / "two0.rank0.npz")
    assert two.pop("transport") == "shm"  # one machine: the buckets are summed in shared memory
    np.testing.assert_allclose(two.pop("val_loss_history"), one_val, rtol=1e-9)
    assert max_rel_diff(two, one) < 1e-6  # 100 steps, float64: only the summation order differs
    assert max_rel_diff(two, one) > 0 or model == "fc"
    for name in ["two0.rank1.npz"] + [f"two{k}.rank0.npz" for k in range(1, runs)]:
        again = load(tmp_path / name)  # the other rank, and a second run: bitwise the same
        again.pop("val_loss_history")
        assert all(np.array_equal(again[p], two[p]) for p in two), name


def test_shared_memory_sums_equal_mpis_bitwise(tmp_path):
    """The shared-memory buckets and MPI's allreduce give two ranks bitwise the same run
    (two summands: the order cannot differ), and so does the shared-memory wait sleeping on
    its futex in every step (as when the ranks are preempted)."""
    runs, naps = {}, 0
    for transport in ("shm", "mpi", "nap"):
        r = mpiexec(2, "-m", "tests.dist.worker", "convbn", "sync", str(tmp_path / transport),
                    transport)
        assert r.returncode == 0, r.stdout + r.stderr
        runs[transport] = load(tmp_path / f"{transport}.rank0.npz")
        assert runs[transport].pop("transport") == ("shm" if transport == "nap" else transport)
        if transport == "nap":
            naps = runs["nap"].pop("naps") + load(tmp_path / "nap.rank1.npz")["naps"]
    assert naps > 0  # the futex path ran
    assert all(np.array_equal(runs["shm"][p], runs["mpi"][p]) for p in runs["mpi"])
    assert all(np.array_equal(runs["nap"][p], runs["shm"][p]) for p in runs["shm"])


def test_three_ranks_in_shared_memory_exact_and_repeatable(tmp_path):
    """Three ranks (uneven shards 11, 11, 10; partial sums of three slots): the params of one
    process within 1e-6, every rank and a second run bitwise the same."""
    assert worker.main("convbn", True, str(tmp_path / "one")) == 0
    one = load(tmp_path / "one.rank0.npz")
    one_val, _ = one.pop("val_loss_history"), one.pop("transport")
    for k in range(2):
        r = mpiexec(3, "-m", "tests.dist.worker", "convbn", "sync", str(tmp_path / f"three{k}"))
        assert r.returncode == 0, r.stdout + r.stderr
    three = load(tmp_path / "three0.rank0.npz")
    assert three.pop("transport") == "shm"
    np.testing.assert_allclose(three.pop("val_loss_history"), one_val, rtol=1e-9)
    assert max_rel_diff(three, one) < 1e-6
    for name in ("three0.rank1.npz", "three0.rank2.npz", "three1.rank0.npz"):
        again = load(tmp_path / name)
        assert all(np.array_equal(again[p], three[p]) for p in three), name


def test_per_rank_batchnorm_ranks_still_agree(tmp_path):
    """Default batchnorm (each rank its shard's statistics): the running statistics differ
    between the ranks, yet params, evaluations and so early-stopping decisions agree: an
    evaluation takes rank 0's statistics first."""
    r = mpiexec(2, "-m", "tests.dist.worker", "convbn", "nosync", str(tmp_path / "bn"))
    assert r.returncode == 0, r.stdout + r.stderr
    zero, one = load(tmp_path / "bn.rank0.npz"), load(tmp_path / "bn.rank1.npz")
    assert len(zero["val_loss_history"]) == worker.EPOCHS
    assert all(np.array_equal(zero[k], one[k]) for k in zero), "ranks disagree"


def test_diverged_params_stop_every_rank():
    r = mpiexec(2, "-m", "tests.dist.worker", "diverge", "-", "/nonexistent/out")
    assert r.returncode == 2
    assert "DistributedError: the ranks' params diverged after 0 steps: fc1.w differ between " \
           "rank 0 and rank(s) [1]" in r.stdout


@pytest.fixture()
def spec(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def test_cli_two_ranks_then_resume_with_one(spec, tiny_mnist, tmp_path):
    out = tmp_path / "run"
    common = (spec, "--data", f"mnist:{tiny_mnist}", "--val", 40, "--batch-size", 20,
              "--out", out, "--sync-bn")
    r = dagnet("train", *common, "--epochs", 1, "--ranks", 2)
    assert r.returncode == 0, r.stderr
    assert "2 ranks" in r.stdout and r.stdout.count("epoch 1/1: loss") == 1  # rank 0 alone
    assert "allreduce bucket(s)" in r.stdout
    assert load_checkpoint(out / "checkpoint.npz").solver["epoch"] == 1
    r = dagnet("train", *common, "--override", "epochs=2", "--resume")  # one process now
    assert r.returncode == 0, r.stderr
    history = json.loads((out / "history.json").read_text())
    assert len(history["train_acc_history"]) == 2 and len(history["loss_history"]) == 16
    r = dagnet("train", *common, "--epochs", 3, "--ranks", 2)  # a run is there: refused
    assert r.returncode == 2 and r.stderr.count("already holds a run") == 1


def rank_pids(tag: str, rank: int) -> list:
    """Pids of the processes of rank `rank` whose environment carries `tag`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            if f"DAGNET_TEST_TAG={tag}".encode() in env and f"PMI_RANK={rank}".encode() in env:
                found.append(int(pid))
    return found


@contextlib.contextmanager
def background_run(spec, tiny_mnist, out, *extra):
    """`dagnet train --ranks 2` for many epochs in the background; yields (process, tag)."""
    tag = uuid.uuid4().hex
    env = {**ENV, "DAGNET_TEST_TAG": tag}
    proc = subprocess.Popen([sys.executable, "-m", "dagnet.cli", "train", str(spec), "--data",
                             f"mnist:{tiny_mnist}", "--val", "40", "--batch-size", "20",
                             "--out", str(out), "--ranks", "2", "--quiet", *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        yield proc, tag
    finally:
        for rank in (0, 1):
            for pid in rank_pids(tag, rank):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killed_rank_stops_the_job_and_the_run_resumes(spec, tiny_mnist, tmp_path):
    out = tmp_path / "run"
    ckpt = out / "checkpoint.npz"
    with background_run(spec, tiny_mnist, out, "--epochs", "200") as (proc, tag):
        assert wait_for(ckpt.exists, 120), "no checkpoint was written"
        victim = rank_pids(tag, 1)
        assert victim, "rank 1 not found"
        os.kill(victim[0], signal.SIGKILL)
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - start < 30  # the others stop: no hang
    assert proc.returncode != 0
    assert "a rank ended abnormally (mpiexec: killed by SIGKILL)" in err
    assert f"the last checkpoint {ckpt} (epoch" in err and "continue with --resume" in err
    epoch = load_checkpoint(ckpt).solver["epoch"]  # intact: loads and verifies its SHA-256
    r = dagnet("train", spec, "--data", f"mnist:{tiny_mnist}", "--val", 40, "--batch-size", 20,
               "--out", out, "--ranks", 2, "--override", f"epochs={epoch + 1}", "--resume",
               "--quiet")
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(ckpt).solver["epoch"] == epoch + 1


def test_hung_rank_is_declared_lost_within_the_timeout(spec, tiny_mnist, tmp_path):
    out = tmp_path / "run"
    with background_run(spec, tiny_mnist, out, "--epochs", "200", "--comm-timeout", "3") \
            as (proc, tag):
        assert wait_for((out / "checkpoint.npz").exists, 120)
        os.kill(rank_pids(tag, 1)[0], signal.SIGSTOP)  # alive, silent: no launcher notices
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - start < 30
    assert proc.returncode != 0
    assert "rank 0 of 2" in err and "no answer from the other ranks for 3 s" in err


def _netns_allowed() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    name = f"dagprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode:
        return f"cannot create a network namespace here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name])
    return None


FAKE_SSH = """#!/bin/sh
# hydra's ssh launcher calls: ssh -x HOST COMMAND; run COMMAND in HOST's namespace instead
[ "$1" = "-x" ] && shift
host=$1; shift
case $host in {a}) ns={na};; {b}) ns={nb};; *) echo "unknown host $host" >&2; exit 1;; esac
exec ip netns exec $ns sh -c "$*"
"""


def test_two_ranks_on_two_hosts(tmp_path):
    """Two 'hosts' (network namespaces joined by a veth pair); the gradients cross the link."""
    reason = _netns_allowed()
    if reason:
        pytest.skip(reason)
    tag = os.getpid() % 100000
    na, nb, va, vb = f"dagA{tag}", f"dagB{tag}", f"vdA{tag}", f"vdB{tag}"
    a, b = "10.250.0.1", "10.250.0.2"  # exist only inside the two namespaces made here

    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        ip("netns", "add", na)
        ip("netns", "add", nb)
        ip("link", "add", va, "type", "veth", "peer", "name", vb)
        for ns, dev, addr in ((na, va, a), (nb, vb, b)):
            ip("link", "set", dev, "netns", ns)
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        ssh = tmp_path / "netns-ssh"
        ssh.write_text(FAKE_SSH.format(a=a, b=b, na=na, nb=nb))
        ssh.chmod(0o755)

        def sent():
            text = subprocess.run(["ip", "-n", na, "-s", "link", "show", va], check=True,
                                  capture_output=True, text=True).stdout.split("\n")
            return int(text[text.index(next(t for t in text if "TX:" in t)) + 1].split()[0])

        before = sent()
        r = subprocess.run(["ip", "netns", "exec", na, MPIEXEC, "-hosts", f"{a},{b}",
                            "-launcher", "ssh", "-launcher-exec", str(ssh), "-n", "2",
                            sys.executable, "-m", "tests.dist.worker", "fc", "nosync",
                            str(tmp_path / "hosts")], cwd=ROOT, env=ENV, capture_output=True,
                           text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        # 100 steps of fc's 66 KiB of float64 gradients (counted at half) crossed the link
        assert sent() - before > 100 * 33 * 1024
        one, two = load(tmp_path / "hosts.rank0.npz"), load(tmp_path / "hosts.rank1.npz")
        assert all(np.array_equal(one[p], two[p]) for p in one)
    finally:
        for ns in (na, nb):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


SHM_CHOICE = """
import sys
import dagnet
from dagnet.dist import Comm, DataParallel, shm
from tests.dist.worker import graph
plan = dagnet.compile(graph("fc"), bucket_mb=0.05)
comm = Comm(timeout=30)
if sys.argv[1] == "full":
    shm._shm_free = lambda: shm.segment_bytes(plan, comm.size) * 2 - 1  # not room for two
model = DataParallel(plan, comm)
if comm.rank == 0:
    print(type(model.buckets).__name__, repr(model).split("summed by ")[1].split(",")[0])
"""


@pytest.mark.parametrize("room,chosen", [("room", "SharedBuckets shared memory"),
                                         ("full", "GradientBuckets MPI")])
def test_shared_memory_only_with_room_for_the_segment(room, chosen):
    r = mpiexec(2, "-c", SHM_CHOICE, room)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == chosen


NO_GRADIENTS = """
import sys
import numpy as np
import dagnet
from dagnet import Graph
from dagnet.dist import Comm, DataParallel
g = Graph("noparams")
g.softmax_cross_entropy(g.input("x", (5,)), g.input("y", (), dtype="int64"))
plan = dagnet.compile(g, dtype="float64", bucket_mb=1)
comm = Comm(timeout=30)
model = DataParallel(plan, comm, shared_memory=sys.argv[1] == "shm")
X, y = np.arange(30.0).reshape(6, 5) % 7, np.array([0, 1, 2, 3, 4, 0])
loss, grads = model.loss_and_grads(X, y)
every = comm.allgather(np.array([len(model.buckets.flat), len(grads), loss]), "gathering")
if comm.rank == 0:
    print(every[:, :2].tolist(), np.abs(every[:, 2] - plan.loss_and_grads(X, y)[0]).max() < 1e-12)
"""


@pytest.mark.parametrize("transport", ["shm", "mpi"])
def test_the_loss_rides_in_the_last_bucket_even_without_gradients(transport):
    """The global batch's loss is summed with the gradients: a plan without params gets one
    bucket, the loss's."""
    r = mpiexec(2, "-c", NO_GRADIENTS, transport)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "[[1.0, 0.0], [1.0, 0.0]] True"  # on both ranks


WRITES = """
import sys
import numpy as np
import dagnet
from dagnet.dist import Comm, DataParallel
from tests.dist.worker import data, graph
plan = dagnet.compile(graph(sys.argv[2]), dtype="float64", bucket_mb=0.05)
model = DataParallel(plan, Comm(timeout=30), sync_bn=True, shared_memory=sys.argv[1] == "shm")
copied = []
pack = model.buckets.pack
model.buckets.pack = lambda i, grads: copied.extend(
    p for p, *_ in model.buckets.layout[i] if p is not None and grads.get(p) is not
    model.buckets._views.get(p)) or pack(i, grads)
d = data()
for k in range(3):
    X, y = d["X_train"][32 * k:32 * (k + 1)], d["y_train"][32 * k:32 * (k + 1)]
    loss, grads = model.loss_and_grads(X, y)
    ref_loss, ref = plan.loss_and_grads(X, y)  # one process, the whole batch
    # (a bias before batchnorm has a zero gradient, up to rounding: hence the floor)
    floor = 1e-3 * max(float(np.abs(r).max()) for r in ref.values())
    err = max(float(np.abs(grads[p] - ref[p]).max() / max(np.abs(ref[p]).max(), floor))
              for p in ref)
    assert err < 1e-9 and abs(loss - ref_loss) < 1e-12, (k, err)
    for p, w in plan.params.items():
        w -= 0.1 * grads[p]
if model.comm.rank == 0:
    print(sorted(set(copied)))
"""


@pytest.mark.parametrize("transport", ["shm", "mpi"])
@pytest.mark.parametrize("model,copied", [
    ("fc", []),  # affine+relu and affine write their gradients straight into the buckets
    ("convbn", ["bn1.beta", "bn1.gamma", "bn2.beta", "bn2.gamma", "conv1.b", "conv1.w",
                "fc1.b", "fc1.w"])])  # only the last affine writes its own
def test_affine_gradients_are_written_into_the_buckets(transport, model, copied):
    """No pack copy for the gradients an op writes into its bucket, and the same sums."""
    r = mpiexec(2, "-c", WRITES, transport, model)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == str(copied)


CLOSING = """
import sys
import numpy as np
import dagnet
from dagnet.dist import Comm, DataParallel
from dagnet.errors import DistributedError
from tests.dist.worker import graph
plan = dagnet.compile(graph("fc"), dtype="float64", bucket_mb=0.05)
comm = Comm(timeout=30)
X, y = np.random.default_rng(0).standard_normal((8, 1, 16, 16)), np.arange(8) % 5
want = plan.loss_and_grads(X, y)[1]


def segments():
    with open("/proc/self/maps") as f:
        return sum("/dev/shm/" in line for line in f)


before, kept = segments(), []
for _ in range(3):
    with DataParallel(plan, comm, shared_memory=sys.argv[1] == "shm") as model:
        loss, grads = model.loss_and_grads(X, y)
    kept.append(max(float(np.abs(grads[p] - want[p]).max()) for p in want))  # copied out
after = segments()
model.close()  # twice: nothing more
try:
    model.loss_and_grads(X, y)
    closed = "trained after close"
except DistributedError as e:
    closed = "closed" in str(e)
try:  # an error inside the block is the error raised: no collective on the way out
    with DataParallel(plan, comm, shared_memory=sys.argv[1] == "shm") as failed:
        raise KeyError("the user's error")
except KeyError as e:
    closed = closed and failed.closed and "user" in str(e)
open_one = DataParallel(plan, comm, shared_memory=sys.argv[1] == "shm")
if comm.rank == 0:
    grew = segments() - after > 0
    print(after - before, max(kept) < 1e-12, closed, grew, "closed" in repr(model))
"""


@pytest.mark.parametrize("transport,grows", [("shm", True), ("mpi", False)])
def test_closed_data_parallel_releases_its_shared_segment(transport, grows):
    """close() (or a `with` block) frees the buckets' shared memory: three DataParallel
    objects built and closed in turn leave no segment mapped (an open one does, in shared
    memory), the last step's gradients stay readable, a closed one refuses to train, and an
    error inside the block leaves it as raised."""
    r = mpiexec(2, "-c", CLOSING, transport)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"0 True True {grows} True"  # grows: the unclosed ones keep theirs
