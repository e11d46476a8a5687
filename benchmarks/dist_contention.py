"""Which ops slow down when two processes train at once: per-op CPU time of a training step,
one process alone against two independent processes at once (issue 19's ceiling). Prints JSON.

    python benchmarks/dist_contention.py [--model resnet_small] [--batch 64] [--rounds 12]
                                         [--steps 2] [--threads 1] [--quick]

Two worker processes (fresh, `--threads` threads each, as bench_dist.py's ranks: one), each
with its own plan, train `--steps` SGD-momentum steps a window; per round the windows run
ABBA: worker 0 alone (worker 1 asleep on a barrier), both at once, both at once, worker 1
alone (the next round the other way round), so that each worker has alone and pair windows
moments apart. Every step is timed per plan step (the executor's two hooks; inside the fused
steps the kernels they call, as profile_step.py does), the update, and the rest of the step,
by CPU time of the main thread (time.thread_time: the work done, which other jobs' share of the
cores does not inflate; a one-thread worker does all its work on it) and by wall time.

Per entry: `alone_ms` and `pair_ms` (medians over every step of every worker), `ratio` (the
median over the rounds and workers of the round's pair median over its alone median) and
`lost_ms` (pair - alone): the table is sorted by `lost_ms`. `step` is the whole step's CPU
time. What another job on the machine takes shows up as run delay, not CPU time; the
`load_average` before and after says how busy the machine was.
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def idle_seconds() -> float:
    """Seconds all the machine's cores have been idle (/proc/stat, in clock ticks)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()  # cpu user nice system idle iowait ...
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def worker(me, args, barrier, out):
    os.environ["DAGNET_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = \
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, HERE)
    import dagnet  # (before numpy: dagnet/procenv.py)
    import numpy as np

    import bench_train
    import profile_step
    from dagnet.train.optim import sgd_momentum

    graph, shape = bench_train.MODELS[args.model]()
    plan = dagnet.compile(graph, seed=0)
    now = collections.Counter()  # CPU seconds by key within the step; "wall " + key: wall

    def add(key, wall, cpu):
        now[key] += cpu
        now["wall " + key] += wall

    profile_step.time_steps(plan, add, time.thread_time)
    rng = np.random.default_rng(me)
    X = rng.standard_normal((args.batch * 4,) + shape).astype(np.float32)
    Y = rng.integers(0, 10, args.batch * 4)
    configs = {p: {"learning_rate": 0.01} for p in plan.params}

    def one_step():
        idx = rng.integers(0, len(X), args.batch)
        idle = idle_seconds()
        t, c = time.perf_counter(), time.thread_time()
        _, grads = plan.loss_and_grads(X[idx], Y[idx])
        t1, c1 = time.perf_counter(), time.thread_time()
        for p, w in plan.params.items():
            w[...], configs[p] = sgd_momentum(w, grads[p], configs[p])
        t2, c2 = time.perf_counter(), time.thread_time()
        add("update (sgd_momentum)", t2 - t1, c2 - c1)
        add("step", t2 - t, c2 - c)
        # the cores' idle time over the step, in cores: near 1 when this worker ran alone on
        # an otherwise idle machine, near 0 when another process held the other core
        now["idle cores"] = (idle_seconds() - idle) / (time.perf_counter() - t)
        hooks = sum(v for k, v in now.items() if " | " not in k and k.endswith((" fwd", " bwd"))
                    and not k.startswith("wall "))
        now["rest (feeds, loss, gradient sums, Python)"] = \
            now["step"] - now["update (sgd_momentum)"] - hooks

    for _ in range(3):  # warm-up (buffers, caches)
        one_step()
    records = []  # (round, kind, {key: seconds})
    for r in range(args.rounds):
        for kind in windows(me, r):
            barrier.wait()
            if kind == "idle":
                continue
            for _ in range(args.steps):
                now.clear()
                one_step()
                records.append((r, kind, dict(now)))
    barrier.wait()
    out.put((me, records))


def windows(me: int, r: int) -> list:
    """Worker `me`'s four windows in round r: worker 0 alone first in even rounds, worker 1 in
    odd ones; worker 1's are worker 0's with alone and idle swapped, so that while one is
    alone the other sleeps."""
    first = r % 2 == 0
    kinds = ["alone" if first else "idle", "pair", "pair", "idle" if first else "alone"]
    if me == 1:
        kinds = ["idle" if k == "alone" else "alone" if k == "idle" else k for k in kinds]
    return kinds


QUIET = 0.8  # a step ran alone on a quiet machine: the cores idle >= 0.8 of a core meanwhile


def summarise(records_by_worker):
    """The per-entry table (see the docstring) and how many steps of each kind ran."""
    steps = [(w, r, kind, d) for w, recs in records_by_worker.items() for r, kind, d in recs]
    quiet = [d for _, _, kind, d in steps if kind == "alone" and d["idle cores"] >= QUIET]
    keys = sorted({k for *_, d in steps for k in d if not k.startswith("wall ") and k != "idle cores"})
    table = {}
    for k in keys:
        vals = {"alone": [], "pair": []}
        per = collections.defaultdict(lambda: {"alone": [], "pair": []})
        for w, r, kind, d in steps:
            per[w, r][kind].append(d.get(k, 0.0))
            vals[kind].append(d.get(k, 0.0))
        ratios = [statistics.median(kv["pair"]) / statistics.median(kv["alone"])
                  for kv in per.values() if kv["alone"] and kv["pair"] and statistics.median(kv["alone"]) > 0]
        a, p = statistics.median(vals["alone"]), statistics.median(vals["pair"])
        row = {"alone_ms": round(1e3 * a, 3), "pair_ms": round(1e3 * p, 3),
               "lost_ms": round(1e3 * (p - a), 3),
               "ratio": round(statistics.median(ratios), 3) if ratios else None}
        if len(quiet) >= 5:
            q = statistics.median(d.get(k, 0.0) for d in quiet)
            row.update(quiet_alone_ms=round(1e3 * q, 3), quiet_lost_ms=round(1e3 * (p - q), 3),
                       quiet_ratio=round(p / q, 3) if q > 0 else None)
        table[k] = row
    by = "quiet_lost_ms" if len(quiet) >= 5 else "lost_ms"
    counts = {kind: sum(1 for *_, kd, _ in steps if kd == kind) for kind in ("alone", "pair")}
    counts["alone_quiet"] = len(quiet)
    idle = {kind: round(statistics.median(d["idle cores"] for *_, kd, d in steps if kd == kind), 3)
            for kind in ("alone", "pair")}
    return dict(sorted(table.items(), key=lambda kv: -kv[1][by])), counts, idle


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet_small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=2, help="steps a window")
    ap.add_argument("--threads", type=int, default=1, help="threads per process")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the script runs (tests)")
    args = ap.parse_args()
    if args.quick:
        args.batch, args.rounds, args.steps = 4, 2, 1
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    load0 = os.getloadavg()
    procs = [ctx.Process(target=worker, args=(me, args, barrier, out)) for me in (0, 1)]
    for p in procs:
        p.start()
    got = dict(out.get() for _ in procs)
    for p in procs:
        p.join()
    table, counts, idle = summarise(got)
    print(json.dumps({"model": args.model, "batch": args.batch, "rounds": args.rounds,
                      "steps_per_window": args.steps, "threads": args.threads,
                      "load_average": [load0, os.getloadavg()], "steps": counts,
                      "idle_cores_median": idle, "step": table.pop("step"), "ms": table},
                     indent=1))


if __name__ == "__main__":
    main()
