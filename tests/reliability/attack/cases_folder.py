"""Attacks on a run folder (issue 15.3, 15.5): two writers, planted symlinks, read-only and full
disks, output paths that are folders or files, interrupts."""
from __future__ import annotations

import errno
import os
import signal
import time

from dagnet.train.checkpoint import load_checkpoint
from tests.reliability.attack import faults
from tests.reliability.attack.env import (RUN_FLAGS, Keep, clean_error, dagnet_process,
                                          expect_clean_process)
from tests.reliability.attack.harness import EITHER, OK, Lost, Misleading, Silent, attack

A = "folder"


@attack("second-writer-same-run", A, says="in use by another process (pid", seconds=240)
def _(env):
    """A second `dagnet train --resume` while the first trains: refused, naming the first; the
    first, interrupted later, keeps a checkpoint of its own."""
    out = env.tmp / "run"
    first = dagnet_process("train", env.net, "--data", f"mnist:{env.data}",
                           *[f for f in RUN_FLAGS if f != "--quiet"], "--epochs", "100000",
                           "--out", out)
    try:
        for line in first.stdout:  # the first has the lock once it reports an epoch
            if line.startswith("epoch 1/"):
                break
        second = dagnet_process("train", env.net, "--data", f"mnist:{env.data}", *RUN_FLAGS,
                                "--epochs", "100000", "--out", out, "--resume")
        refusal = expect_clean_process(second, says="in use by another process (pid")
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=100)
    if first.returncode != 130 or "holds epoch" not in err:
        raise Lost(f"the first run ended with {first.returncode}: {err[-300:]}")
    if load_checkpoint(out / "checkpoint.npz").solver["recipe"]["num_epochs"] != 100000:
        raise Lost("the first run's checkpoint is not its own")
    raise clean_error(refusal)


@attack("second-writer-started-together", A, expect=OK, seconds=240, heavy=True)
def _(env):
    """Two `dagnet train` on one new folder within a second: one trains, the other is refused."""
    out = env.tmp / "run"
    args = ["train", env.net, "--data", f"mnist:{env.data}", *RUN_FLAGS, "--out", out]
    procs = [dagnet_process(*args), dagnet_process(*args)]
    results = [p.communicate(timeout=200) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    if codes != [0, 2]:
        raise Silent(f"exit codes {codes}: {[r[1][-200:] for r in results]}")
    loser = next(r for r in results if r[2] == 2)[1]
    if "in use by another process" not in loser and "already holds a run" not in loser:
        raise Misleading(loser[-300:])


for _name in ("history.json", "data.json", "checkpoint.npz", "checkpoint.npz.lock"):
    @attack(f"planted-symlink-{_name}", A, expect=EITHER)
    def _(env, name=_name):
        victim = env.tmp / "victim.txt"
        victim.write_text("precious")
        out = env.tmp / "run"
        out.mkdir()
        os.symlink(victim, out / name)
        with Keep(victim):
            env.train(out=out)


@attack("planted-symlink-temp-names", A, expect=OK)
def _(env):
    """Symlinks at every temp name an old dagnet used (fixed names) and at guessable ones."""
    victim = env.tmp / "victim.txt"
    victim.write_text("precious")
    out = env.tmp / "run"
    out.mkdir()
    for name in ("history.json.tmp", "data.json.tmp", "checkpoint.npz.tmp", ".history.json.tmp",
                 ".checkpoint.npz.tmp"):
        os.symlink(victim, out / name)
    with Keep(victim):
        env.train(out=out)


def read_only_run(env, fake):
    run = env.run()
    if fake:
        return run, faults.fake_disk_error(run, errno.EROFS)
    return None, faults.tmpfs(2048, read_only=True, fill_from=run)


for _fake in (False, True):
    @attack(f"read-only-run-resume{'-fake' if _fake else ''}", A, says="Read-only")
    def _(env, fake=_fake):
        run, ctx = read_only_run(env, fake)
        with ctx as folder:
            if folder is None:
                raise Misleading("no tmpfs here")
            folder = run or folder
            with Keep(folder / "checkpoint.npz"):
                env.cli("train", env.net, "--out", folder, "--resume", "--override", "epochs=3",
                        "--quiet")

    @attack(f"read-only-new-run{'-fake' if _fake else ''}", A, says="Read-only")
    def _(env, fake=_fake):
        ctx = (faults.fake_disk_error(env.tmp, errno.EROFS) if fake
               else faults.tmpfs(256, read_only=True))
        with ctx as folder:
            if folder is None:
                raise Misleading("no tmpfs here")
            env.train(out=os.path.join(folder, "run"))

    @attack(f"full-disk-during-run{'-fake' if _fake else ''}", A, says="No space left on device")
    def _(env, fake=_fake):
        if fake:
            run = env.run()
            with faults.fake_disk_error(run, errno.ENOSPC), Keep(run / "checkpoint.npz"):
                env.resume("--override", "epochs=3")
            return
        with faults.tmpfs(1024, fill_from=env.run()) as folder:
            if folder is None:
                raise Misleading("no tmpfs here")
            faults.fill(folder)
            try:
                with Keep(folder / "checkpoint.npz"):
                    env.cli("train", env.net, "--out", folder, "--resume", "--override",
                            "epochs=3", "--quiet")
            finally:
                temps = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
                if temps:
                    raise Lost(f"temp files left on the full disk: {temps}")


@attack("full-disk-before-first-checkpoint", A, says="No space left on device")
def _(env):
    with faults.tmpfs(64) as folder:
        if folder is None:
            raise Misleading("no tmpfs here")
        faults.fill(folder)
        env.train(out=folder / "run")


@attack("out-is-a-file", A, says="--out")
def _(env):
    f = env.tmp / "file"
    f.write_text("x")
    env.train(out=f)


@attack("out-under-a-file", A)
def _(env):
    f = env.tmp / "file"
    f.write_text("x")
    env.train(out=f / "run")


@attack("sigint-during-first-epoch", A, expect=OK, seconds=120)
def _(env):
    proc = dagnet_process("train", env.net, "--data", f"mnist:{env.data}",
                          *[f for f in RUN_FLAGS if f != "--quiet"], "--out", env.tmp / "run")
    proc.stdout.readline()  # the plan line: training starts now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=100)
    if proc.returncode != 130 or "Traceback" in err:
        raise Silent(f"exit {proc.returncode}: {err[-300:]}")
    saved = (env.tmp / "run" / "checkpoint.npz").exists()
    if ("nothing was saved" in err) == saved or ("holds epoch" in err) != saved:
        raise Misleading(f"checkpoint {'exists' if saved else 'absent'}, said: {err.strip()[-200:]}")


@attack("sigint-after-an-epoch", A, expect=OK, seconds=120)
def _(env):
    proc = dagnet_process("train", env.net, "--data", f"mnist:{env.data}",
                          *[f for f in RUN_FLAGS if f != "--quiet"], "--epochs", "50",
                          "--out", env.tmp / "run")
    for line in proc.stdout:
        if line.startswith("epoch 2/"):
            break
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=100)
    ck = load_checkpoint(env.tmp / "run" / "checkpoint.npz")
    if proc.returncode != 130 or f"holds epoch {ck.solver['epoch']}" not in err:
        raise Misleading(f"exit {proc.returncode}, epoch {ck.solver['epoch']}: {err.strip()[-200:]}")


@attack("summary-into-closed-pipe", A, expect=OK)
def _(env):
    import subprocess
    import sys

    from tests.reliability.helpers import ROOT

    r = subprocess.run(f"{sys.executable} -m dagnet.cli summary lenet | head -c 10 > /dev/null",
                       shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or r.stderr.strip():
        raise Silent(f"exit {r.returncode}: {r.stderr[-300:]}")


@attack("render-out-is-a-folder", A, says="folder")
def _(env):
    env.cli("render", "lenet", "-o", env.tmp)


@attack("render-out-in-missing-folder", A, expect=EITHER)
def _(env):
    env.cli("render", "lenet", "-o", env.tmp / "no" / "such" / "g.svg")


@attack("render-passes-at-a-file", A, says="--passes")
def _(env):
    f = env.tmp / "file"
    f.write_text("x")
    env.cli("render", "lenet", "--passes", f)


@attack("render-into-read-only", A, says="Read-only")
def _(env):
    with faults.fake_disk_error(env.tmp, errno.EROFS):
        env.cli("render", "lenet", "-o", env.tmp / "g.svg")


@attack("export-out-is-a-folder", A)
def _(env):
    env.cli("export", "lenet", "-o", env.tmp)


@attack("import-out-is-a-folder", A)
def _(env):
    env.cli("export", "lenet", "-o", env.tmp / "m.onnx")
    env.cli("import", env.tmp / "m.onnx", "-o", env.tmp)


@attack("plot-out-is-a-folder", A)
def _(env):
    env.cli("plot", env.run(), "-o", env.tmp)


@attack("maps-out-into-full-disk", A, says="No space left")
def _(env):
    with faults.fake_disk_error(env.tmp, errno.ENOSPC):
        env.cli("maps", env.run(), "--node", "conv1", "-o", env.tmp / "m.png")


@attack("evaluate-not-a-run", A, says="no run directory")
def _(env):
    env.cli("evaluate", env.tmp / "nope")


@attack("evaluate-empty-folder", A, says="checkpoint")
def _(env):
    env.cli("evaluate", env.tmp)


