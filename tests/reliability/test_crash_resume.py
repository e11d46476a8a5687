"""Crash safety of a real training run: `dagnet train ... --out DIR` (a subprocess, on small
IDX data this test writes) is killed with SIGKILL at random moments - some at random times,
some just after it reports an epoch, i.e. while it writes that epoch's checkpoint - and resumed
with --resume each time. After every kill the run directory holds a loadable checkpoint (once
one epoch has ended) that never goes back in time, and the finally completed run ends with
bitwise the same params, state, optimizer state and loss history as an uninterrupted run.

tests/train/test_crash.py kills a process that only writes checkpoints; this kills the trainer."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dagnet.train.checkpoint import load_checkpoint
from tests.reliability.helpers import ROOT, write_mnist_like

EPOCHS = 30
KILLS = 8
SPEC = """name: crashnet
input: {shape: [1, 8, 8]}
layers:
  - {type: conv, num_filters: 4, filter_size: 3, pad: 1}
  - {type: bn}
  - {type: relu}
  - {type: pool, size: 2, stride: 2}
  - {type: dropout, p: 0.2}
  - {type: fc, hidden: 4}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("crash")
    write_mnist_like(str(d), n_train=220, n_test=40, size=8, classes=4)
    (d / "net.yaml").write_text(SPEC)
    return d


def command(d, out):
    return [sys.executable, "-m", "dagnet.cli", "train", str(d / "net.yaml"), "--data",
            f"mnist:{d}", "--epochs", str(EPOCHS), "--val", "20", "--batch-size", "10",
            "--update-rule", "adam", "--lr", "1e-3", "--out", str(out), "--resume"]


ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "DAGNET_NUM_THREADS": "2"}


def start(d, out):
    return subprocess.Popen(command(d, out), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def contents(path):
    ck = load_checkpoint(path)
    return ck, {f"{section}/{k}": v for section in ("params", "optimizer")
                for k, v in getattr(ck, section).items()}


def test_sigkill_at_random_moments_loses_nothing_and_resume_is_bitwise(setup):
    d = setup
    ref_out = d / "reference"
    proc = start(d, ref_out)  # also times it: when training starts and how long an epoch takes
    t0 = time.perf_counter()
    reports = [time.perf_counter() - t0 for line in proc.stdout if line.startswith("epoch ")]
    assert proc.wait(timeout=300) == 0
    startup, per_epoch = reports[0], (reports[-1] - reports[0]) / (len(reports) - 1)
    ref, ref_arrays = contents(ref_out / "checkpoint.npz")
    assert ref.solver["epoch"] == EPOCHS

    out = d / "killed"
    ckpt = out / "checkpoint.npz"
    rng = np.random.default_rng(2024)
    crash_points = []
    on_disk = 0  # the epoch the checkpoint held after the previous kill
    for kill in range(KILLS):
        proc = start(d, out)
        t0 = time.perf_counter()
        if kill % 2 == 0:  # at a random time: import, compile, an epoch, a save, the pictures
            # (within the next few epochs, so that the kills spread over the whole run)
            time.sleep(float(rng.uniform(0.3 * startup, startup + min(EPOCHS - on_disk, 6) * per_epoch)))
            how = "random time"
        else:  # just after an epoch is reported: inside or around its checkpoint write
            target = int(rng.integers(1, 4))
            seen = 0
            for line in proc.stdout:
                if line.startswith("epoch "):
                    seen += 1
                    if seen == target:
                        break
            time.sleep(float(rng.uniform(0.0, 0.004)))
            how = f"after its epoch report #{target}"
        if proc.poll() is not None:  # finished before the kill
            proc.wait()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at = time.perf_counter() - t0
        # a temp file left behind means the kill hit a checkpoint write (removed, so that the
        # next kill is judged afresh; dagnet itself never needs them)
        temps = [p for p in os.listdir(out) if p.startswith(".checkpoint.npz.")] if out.exists() else []
        if temps:
            how += ", mid-write"
            for p in temps:
                os.unlink(out / p)
        if ckpt.exists():
            ck = load_checkpoint(ckpt)  # never half-written: CheckpointError would fail here
            epoch = ck.solver["epoch"]
            assert epoch >= on_disk, f"the checkpoint went back from epoch {on_disk} to {epoch}"
            assert len(ck.solver["loss_history"]) == epoch * 20
            on_disk = epoch
        else:
            assert on_disk == 0, "a checkpoint disappeared"
        crash_points.append((round(at, 3), how, on_disk))
        leftovers = [p for p in os.listdir(out)] if out.exists() else []
        assert all(p in ("checkpoint.npz", "checkpoint.npz.lock", "data.json", "history.json",
                         "graph.svg", "curves.png", "spec.yaml") or p.endswith(".tmp")
                   or p.startswith("events.out.tfevents.") for p in leftovers), leftovers
    # finish the run, uninterrupted
    r = subprocess.run(command(d, out), cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got, got_arrays = contents(ckpt)
    assert got.solver["epoch"] == EPOCHS
    assert got.solver["loss_history"] == ref.solver["loss_history"]
    assert set(got_arrays) == set(ref_arrays)
    for k, v in ref_arrays.items():
        assert v.dtype == got_arrays[k].dtype and v.tobytes() == got_arrays[k].tobytes(), k
    for node, st in ref.state.items():
        for k, v in st.items():
            assert v.tobytes() == got.state[node][k].tobytes(), (node, k)
    for k, v in ref.extra["best_params"].items():
        assert v.tobytes() == got.extra["best_params"][k].tobytes(), k
    print(f"\ncrash points ({len(crash_points)} SIGKILLs; seconds after start, how, epoch on "
          f"disk after it): {crash_points}; the resumed run equals the uninterrupted one bitwise")
    assert len(crash_points) >= KILLS // 2
