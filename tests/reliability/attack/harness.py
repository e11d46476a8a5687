"""The attack harness: run a case as a hostile or careless user would, and say how it ended.

    @attack("resume-relu-tanh", "resume", expect=ERROR)
    def _(env):
        code, out, err = env.cli("train", env.spec("tanh"), "--out", env.run(), "--resume")
        env.unchanged(env.run_ck)              # Lost(...) if the run's checkpoint changed

Outcomes (Outcome.*): ok (worked as it should), clean (a DagnetError / `dagnet CMD: one line`,
exit 2), traceback (any other exception, an internal error or a printed traceback), silent (a
wrong result without an error: exit 0 where an error was due, or a check failed), misleading
(a clean error whose message misses what it must say), hang (over the time limit), lost (data
destroyed: a checkpoint, a victim file), blowup (MemoryError or past the memory cap).
"""
from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

import dagnet  # noqa: F401 - before numpy (dagnet sets up OpenBLAS's threads)
import numpy as np
from dagnet.errors import DagnetError

OK, ERROR, EITHER = "ok", "error", "either"
OUTCOMES = ("ok", "clean", "traceback", "silent", "misleading", "hang", "lost", "blowup")


class Silent(AssertionError):
    """The call succeeded but its result is wrong (or an error was due)."""


class Lost(AssertionError):
    """Data that must survive did not (a checkpoint, a victim file)."""


class Misleading(AssertionError):
    """A clean error whose message does not say what it must."""


class Hang(BaseException):
    """The case ran past its time limit (raised by SIGALRM)."""


@dataclass
class Attack:
    id: str
    area: str
    expect: str
    fn: object
    says: str = ""  # a substring a clean error must hold
    seconds: float = 60.0
    heavy: bool = False  # over ~10 s (writes a bomb, lays out thousands of nodes): script only


ATTACKS: list[Attack] = []


def attack(id, area, expect=ERROR, says="", seconds=60.0, heavy=False):
    def wrap(fn):
        ATTACKS.append(Attack(id, area, expect, fn, says, seconds, heavy))
        return fn
    return wrap


@dataclass
class Result:
    id: str
    area: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class CliRun:
    code: int
    out: str
    err: str
    command: str = ""
    notes: list = field(default_factory=list)


class CliFailed(Exception):
    """A `dagnet` command ended with a clean error (exit 2, one line)."""

    def __init__(self, run: CliRun):
        super().__init__(run.err.strip())
        self.run = run


class CliBug(Exception):
    """A `dagnet` command printed a traceback, an internal error, or several error lines."""


def cli(*argv) -> CliRun:
    """`dagnet ARGV...` in this process; CliFailed for a clean error, CliBug for anything else
    that is not a success."""
    from dagnet.cli.main import main

    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 2
    run = CliRun(code, out.getvalue(), err.getvalue(), " ".join(argv))
    return judge_cli(run)


def judge_cli(run: CliRun) -> CliRun:
    lines = [line for line in run.err.splitlines() if line.strip()]
    if "Traceback (most recent call last)" in run.err or "internal error" in run.err:
        raise CliBug(f"exit {run.code}: {run.err.strip()[-300:]}")
    if run.code == 0:
        return run
    if run.code == 2 and len(lines) == 1 and lines[0].startswith("dagnet"):
        raise CliFailed(run)
    raise CliBug(f"exit {run.code} with {len(lines)} stderr lines: {run.err.strip()[-300:]}")


def _alarm(signum, frame):
    raise Hang()


def run_attack(a: Attack, env) -> Result:
    """One attack, classified."""
    start = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, a.seconds)
    try:
        with np.errstate(all="ignore"):
            a.fn(env)
        outcome, detail = ("ok", "") if a.expect in (OK, EITHER) else (
            "silent", "succeeded where an error was due")
    except (CliFailed, DagnetError) as e:
        message = str(e)
        if a.expect == OK:
            outcome, detail = "silent", f"refused what should work: {message[:200]}"
        elif a.says and a.says not in message:
            outcome, detail = "misleading", f"message lacks {a.says!r}: {message[:300]}"
        elif "\n" in message.strip() or len(message) > 1200:
            outcome, detail = "misleading", f"not one short line ({len(message)} chars)"
        else:
            outcome, detail = "clean", message[:300]
    except Silent as e:
        outcome, detail = "silent", str(e)[:300]
    except Misleading as e:
        outcome, detail = "misleading", str(e)[:300]
    except Lost as e:
        outcome, detail = "lost", str(e)[:300]
    except Hang:
        outcome, detail = "hang", f"over {a.seconds:.0f} s"
    except MemoryError:
        outcome, detail = "blowup", "MemoryError"
    except CliBug as e:
        outcome, detail = "traceback", str(e)[:300]
    except Exception as e:  # noqa: BLE001 - the point: anything but a DagnetError is a finding
        tb = traceback.extract_tb(e.__traceback__)[-1]
        outcome = "traceback"
        detail = f"{type(e).__name__}: {str(e)[:200]} at {os.path.basename(tb.filename)}:{tb.lineno}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return Result(a.id, a.area, outcome, detail, time.perf_counter() - start)


def limit_memory(gib: float) -> None:
    """Cap this process's address space: a blow-up becomes a MemoryError, not a dead machine."""
    limit = int(gib * 2 ** 30)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(results: list[Result]) -> dict:
    counts = {k: 0 for k in OUTCOMES}
    for r in results:
        counts[r.outcome] += 1
    return {"cases": len(results), **counts}


def report(results: list[Result], file=sys.stdout) -> None:
    for r in results:
        if r.outcome not in ("ok", "clean"):
            print(f"{r.outcome:11s} {r.area:10s} {r.id}: {r.detail}", file=file)
