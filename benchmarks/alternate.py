"""Contenders in processes of their own, timed in alternating windows: one-run ratios that hold.

This VM's speed drifts 30% within minutes, so two contenders timed one after the other a minute
apart differ by the drift as much as by their code. Here every contender runs in a process of its
own (its own thread settings, none of the other's threads or caches), all of them are started
first, and the parent asks each in turn for a window of timed calls. A round is one window of
each (the order rotated round by round); a round's ratio compares moments seconds apart, and the
headline is the median of the rounds' ratios. Each window starts once the process timed before it
has gone idle (`Contender.settle`): onnxruntime's intra-op threads spin on for 100-200 ms after a
call (30-50 ms of CPU), which would otherwise take a core from the contender timed next, a cost
no deployment of either pays.

Protocol: the child (`serve`) prints one JSON line once set up, then answers each JSON request
line on its stdin with one JSON line; at EOF it prints a last line (`farewell`) and exits. Lines
that are not JSON objects (a library's chatter) are skipped.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child_command(script: str, args, torch_first: bool = False) -> tuple:
    """(command, env) that run `script` as __main__ with `args` in a fresh Python. With
    torch_first, torch is imported before the script (so before dagnet) and the child gets the
    environment without what dagnet set: torch keeps its own thread defaults (spinning threads),
    its best case; else env is None (this process's)."""
    from dagnet import procenv

    argv = [script, *map(str, args)]
    first = "import torch; " if torch_first else ""
    code = f"{first}import runpy, sys; sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    env = {k: v for k, v in os.environ.items() if k not in procenv.SET_BY_DAGNET} if torch_first else None
    return [sys.executable, "-c", code], env


#: a child is idle once none of its threads ran for this long (read in nanoseconds from
#: schedstat: a thread that gets a fifth of a core on a loaded machine still shows in every
#: 50 ms, which /proc/PID/stat's 10 ms ticks would not); never waited longer than SETTLE_LIMIT_S
SETTLE_QUIET_S = 0.05
SETTLE_LIMIT_S = 1.0


class Contender:
    """A child process running `script` as __main__ with `args`, answering requests."""

    def __init__(self, script: str, args, torch_first: bool = False):
        command, env = child_command(script, args, torch_first)
        self._err = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty child never blocks
        self._p = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=self._err, text=True, env=env)
        self.hello = self._answer()

    def _answer(self) -> dict:
        for line in self._p.stdout:
            if line.startswith("{"):
                return json.loads(line)
        self._p.wait()
        self._err.seek(0)
        raise RuntimeError(f"contender exited {self._p.returncode}: {self._err.read()[-500:]}")

    def cpu_ms(self) -> float:
        """User + system CPU milliseconds the child has used, all its threads (10 ms ticks)."""
        with open(f"/proc/{self._p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def thread_ns(self) -> dict:
        """{thread id: nanoseconds it has run} for each live thread of the child."""
        ns = {}
        for tid in os.listdir(f"/proc/{self._p.pid}/task"):
            try:
                with open(f"/proc/{self._p.pid}/task/{tid}/schedstat") as f:
                    ns[tid] = int(f.read().split()[0])
            except FileNotFoundError:  # the thread ended since the listing
                pass
        return ns

    def settle(self, quiet_s: float = SETTLE_QUIET_S, limit_s: float = SETTLE_LIMIT_S) -> float:
        """Wait until no thread of the child ran for quiet_s (at most limit_s); returns the CPU ms
        it burnt meanwhile (its tail: threads spinning on after it answered)."""
        start = self.cpu_ms()
        before = self.thread_ns()
        deadline = time.perf_counter() + limit_s
        while time.perf_counter() < deadline:
            time.sleep(quiet_s)
            now = self.thread_ns()
            if now == before:
                break
            before = now
        return self.cpu_ms() - start

    def ask(self, **request) -> dict:
        self._p.stdin.write(json.dumps(request) + "\n")
        self._p.stdin.flush()
        return self._answer()

    def close(self) -> dict:
        """The child's last line (e.g. its peak memory), after which it has exited."""
        self._p.stdin.close()
        try:
            return self._answer()
        finally:
            self._p.wait()
            self._err.close()


def start(script: str, args, torch_first: bool = False) -> Contender | dict:
    """A started Contender, or {"error": why} if its setup failed (e.g. a package is missing)."""
    try:
        return Contender(script, args, torch_first)
    except RuntimeError as e:
        return {"error": str(e)}


def serve(hello: dict, window, farewell=lambda: {}) -> None:
    """The child's side: print `hello`, answer each request with window(**request), and at EOF
    print farewell()."""
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        print(json.dumps(window(**json.loads(line))), flush=True)
    print(json.dumps(farewell()), flush=True)


def timed_window(call, samples: int) -> dict:
    """{"s": median seconds of `samples` timed calls} after one untimed call (the first call after
    the idle wait finds cold caches and sleeping threads)."""
    call()
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return {"s": statistics.median(times)}


def alternate(contenders: dict, rounds: int, tails: dict | None = None, **request) -> dict:
    """{name: [seconds of each round's window]}: `rounds` rounds of one window per contender,
    the order rotated each round so that none always runs right after the same other one; each
    window begins once the one before has settled (its CPU ms then appended to tails[name])."""
    names = list(contenders)
    out = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            out[k].append(contenders[k].ask(**request)["s"])
            tail = contenders[k].settle()
            if tails is not None:
                tails.setdefault(k, []).append(tail)
    return out


def round_ratios(mine: list, theirs: list) -> list:
    """Their seconds / mine, round by round: how many times faster mine ran in each round."""
    return [t / m for m, t in zip(mine, theirs)]
