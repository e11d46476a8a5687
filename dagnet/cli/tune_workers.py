"""`dagnet tune --workers W`: W worker processes on this machine sharing the study, each with
cores/W threads, as `dagnet train --ranks N` gives its ranks.

Why the threads: every dagnet process runs two thread pools as wide as the machine (OpenBLAS's
for the GEMMs, libgomp's for dagnet's kernels), whose threads wait for each other at the end
of every kernel. Two such workers on one machine put twice as many busy threads as cores, and a
pool whose peer thread is descheduled stalls until it runs again: LeNet's training steps
summed over two workers ran at 1.35x one worker's rate with every pool full-width and at 2.5x
with one thread per pool per worker (benchmarks/bench_tune_workers.py, 2 cores, loaded by other
processes). A worker started by --workers gets DAGNET_NUM_THREADS, OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS = cores // W (a value the user set wins), and DAGNET_TUNE_WORKER=i/W so that it
runs trials instead of starting workers; the parent prints their lines prefixed with
[worker i] and writes the tables and pictures once they are done. Workers a user starts by
hand (on other machines, say) keep working as before; one that finds another full-width worker
of its study on its machine says how to avoid the slowdown (`oversubscription_hint`).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

from dagnet.dist.launch import THREAD_VARS

#: set to "i/W" in the workers `--workers W` starts
WORKER_ENV = "DAGNET_TUNE_WORKER"


def started_by_workers() -> bool:
    """This process is one of the workers of a `dagnet tune --workers W`."""
    return bool(os.environ.get(WORKER_ENV))


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def worker_env(index: int, workers: int, env=None) -> dict:
    """Worker `index`'s environment: the thread pools split among the workers (unless the
    user set their sizes) and WORKER_ENV."""
    env = dict(os.environ if env is None else env)
    for key in THREAD_VARS:
        env.setdefault(key, str(threads_per_worker(workers)))
    env[WORKER_ENV] = f"{index}/{workers}"
    return env


def run_workers(workers: int, argv: list[str], say=print) -> int:
    """Run `dagnet ARGV` in `workers` processes to their end, their output lines prefixed;
    returns the first non-zero exit status (128 + signal for a killed worker), else 0.
    Ctrl-C is passed on to the workers, which finish like a Ctrl-C'd `dagnet tune`."""
    procs = [subprocess.Popen([sys.executable, "-m", "dagnet.cli", *argv], env=worker_env(i, workers),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
             for i in range(workers)]
    lock = threading.Lock()

    def relay(i, proc):
        for line in proc.stdout:
            with lock:
                say(f"[worker {i}] {line.rstrip()}")

    relays = [threading.Thread(target=relay, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in relays:
        t.start()
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        codes = [p.wait() for p in procs]
    for t in relays:
        t.join()
    bad = [c for c in codes if c != 0]
    return (128 - bad[0] if bad[0] < 0 else bad[0]) if bad else 0


def oversubscription_hint(study, trial_number: int) -> str:
    """A line for a worker whose study has another trial running in another process on this
    machine while this one uses every core's threads ('' otherwise)."""
    if started_by_workers() or any(k in os.environ for k in THREAD_VARS):
        return ""
    here = socket.gethostname()
    others = {t.user_attrs.get("worker") for t in study.get_trials(deepcopy=False)
              if t.number != trial_number and t.state.name == "RUNNING"}
    mine = f"{here}:{os.getpid()}"
    pids = sorted(w.split(":", 1)[1] for w in others if w and w.startswith(here + ":") and w != mine)
    if not pids or (os.cpu_count() or 1) < 2:
        return ""
    return (f"note: another worker of this study runs on this machine (pid {', '.join(pids)}), and "
            f"each uses all {os.cpu_count()} cores' threads, which slows both; start them as one "
            f"`dagnet tune ... --workers N`, or set {'='.join(THREAD_VARS)}=CORES/N for each")
