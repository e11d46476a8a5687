"""What the attacks work on: tiny IDX data, spec variants, a trained run folder to copy, and
checks that data survived."""
from __future__ import annotations

import hashlib
import os
import signal
import pathlib
import shutil
import subprocess
import sys
import tempfile

from tests.reliability.attack.harness import Lost, Silent, cli
from tests.reliability.helpers import ROOT, write_mnist_like

NET = """name: {name}
input: {{shape: [1, 8, 8]}}
layers:
  - {{type: conv, num_filters: 4, filter_size: 3, pad: 1}}
  - {{type: {act}}}
  - {{type: pool, size: 2, stride: 2}}
{extra}  - {{type: fc, hidden: 4}}
"""

#: the flags of the trained run every resume attack starts from
RUN_FLAGS = ["--epochs", "2", "--val", "20", "--batch-size", "10", "--update-rule", "adam",
             "--lr", "1e-3", "--lr-schedule", "constant", "--quiet"]


class Env:
    """Shared inputs (made once) and a fresh folder per attack (env.tmp)."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.data = root / "data"
        self.data.mkdir()
        write_mnist_like(str(self.data), n_train=120, n_test=30, size=8, classes=4)
        self.net = self.spec_file(root / "net.yaml")
        self.base_run = root / "base_run"
        cli("train", self.net, "--data", f"mnist:{self.data}", *RUN_FLAGS, "--out", self.base_run)
        self.tmp = None
        self.cli = cli

    def fresh(self) -> pathlib.Path:
        self.tmp = pathlib.Path(tempfile.mkdtemp(dir=self.root))
        return self.tmp

    def spec_file(self, path, act="relu", extra="", name="attacknet") -> pathlib.Path:
        path = pathlib.Path(path)
        path.write_text(NET.format(act=act, extra=extra, name=name))
        return path

    def spec(self, act="relu", extra="") -> pathlib.Path:
        return self.spec_file(self.tmp / f"net_{act}_{len(extra)}.yaml", act, extra)

    def run(self) -> pathlib.Path:
        """A copy of the trained run (2 epochs) in this attack's folder."""
        run = self.tmp / "run"
        if not run.exists():
            shutil.copytree(self.base_run, run)
        return run

    def train(self, *flags, out=None, spec=None, data=None):
        """`dagnet train` on the attack data with the run's flags, then `flags`."""
        return cli("train", spec or self.net, "--data", f"mnist:{data or self.data}", *RUN_FLAGS,
                   "--out", out or self.run(), *flags)

    def resume(self, *flags, spec=None):
        return cli("train", spec or self.net, "--out", self.run(), "--resume", "--quiet", *flags)


def digest(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


class Keep:
    """`with Keep(a, b): ...` raises Lost if any of the files changed or vanished."""

    def __init__(self, *paths):
        self.paths = [pathlib.Path(p) for p in paths]

    def __enter__(self):
        self.before = {p: digest(p) for p in self.paths}
        return self

    def __exit__(self, *exc):
        for p, d in self.before.items():
            if not p.exists():
                raise Lost(f"{p.name} vanished")
            if digest(p) != d:
                raise Lost(f"{p.name} was changed")
        return False


def dagnet_process(*argv, cwd=None, **kw) -> subprocess.Popen:
    """`python -m dagnet.cli ARGV...` as a separate process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DAGNET_NUM_THREADS": "1"}
    # A test run started in the background (CI's shell, `cmd &`) ignores SIGINT, and an ignored
    # signal stays ignored across exec: Python would then never raise KeyboardInterrupt, and
    # the interrupt cases would see a run that finished. The child gets the default back.
    kw.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.Popen([sys.executable, "-m", "dagnet.cli", *map(str, argv)], cwd=cwd or ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def expect_clean_process(proc, timeout=120, says="") -> str:
    """The process's stderr when it ended with a clean error (exit 2, one line); the attack
    then raises clean_error(err) once its other checks pass."""
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in err.splitlines() if line.strip()]
    if "Traceback" in err or "internal error" in err:
        raise RuntimeError(f"traceback: {err[-300:]}")
    if proc.returncode == 0:
        raise Silent(f"exit 0 where an error was due: {out[-200:]}")
    if proc.returncode != 2 or len(lines) != 1:
        raise RuntimeError(f"exit {proc.returncode}, {len(lines)} lines: {err[-300:]}")
    if says and says not in err:
        from tests.reliability.attack.harness import Misleading

        raise Misleading(f"lacks {says!r}: {err.strip()[:300]}")
    return err.strip()


def clean_error(err: str):
    """What an attack raises when a process refused cleanly (counted as a clean error)."""
    from tests.reliability.attack.harness import CliFailed, CliRun

    return CliFailed(CliRun(2, "", err))
