"""Where the 2-rank step's skew comes from: a per-step timeline of both ranks (prints JSON).

Under `mpiexec -n 2` (the script starts it): each rank trains `model` data-parallel (shared
memory, batch 64 per rank, one thread) and records per step the moment (CLOCK_MONOTONIC, one
clock for both processes) it starts the step, ends its backward and leaves the wait, and,
over forward + backward, its CPU time (time.thread_time), its run delay (the time it waited,
runnable, for a core: /proc/thread-self/schedstat) and its involuntary context switches. In
alternating windows the ranks also train on their own plans with no communication (each
rank's CPU time per step without lockstep), and data-parallel with the wait's rule set
each way (`--waits`: rule = dagnet's default, spin = always spin, nap = always sleep on the
futex after 0.1 ms).

The skew of a step (the later rank's end of backward minus the earlier one's) splits into
the difference of the ranks' CPU times, of their run delays, of their start times and the
rest; the correlations say which of them moves it.

    python benchmarks/dist_timeline.py [--model resnet_small] [--rounds 10] [--steps 4]
                                       [--waits rule spin nap] [--small-bucket-mb 0.06]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

for _var in ("DAGNET_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[_var] = "1"

import dagnet  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_dist import data, run_delay, train_steps  # noqa: E402


def worker(model: str, rounds: int, steps: int, waits: list, small_mb: float) -> dict | None:
    import resource

    from dagnet.dist import Comm, DataParallel
    from dagnet.models import get_model

    comm = Comm()
    plan = dagnet.compile(get_model(model), bucket_mb=4)
    dps = {}
    if small_mb:
        # the same step with the gradients in buckets of small_mb (the first closes mid-sweep)
        waits = [*waits, "rule_small"]
    for w in waits:
        dps[w] = DataParallel(dagnet.compile(get_model(model), bucket_mb=small_mb)
                              if w == "rule_small" else plan, comm, check_every=0)
        if w == "spin":
            dps[w].buckets.nap = False
        elif w == "nap":
            b = dps[w].buckets
            # always contended: the wait sleeps on the bell after 0.1 ms whatever the last step
            b._wait_all_orig = b._wait_all

            def always(b=b):
                b._wait_all_orig()
                b._contended = True
            b._wait_all = always
            b._contended = True
    solo = dagnet.compile(get_model(model))
    X, y, rng = data(plan, 64 * 8, np.float32)
    rows = {k: [] for k in ["independent", *waits]}
    now = {}

    def ivcsw() -> int:
        return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw

    def wrap(executor, buckets, kind):
        fwd, bwd = executor.forward, executor.backward

        def forward(*a, **k):
            now["t0"], now["c0"], now["d0"], now["v0"] = (time.monotonic(), time.thread_time(),
                                                          run_delay(), ivcsw())
            return fwd(*a, **k)

        def backward(*a, **k):
            out = bwd(*a, **k)
            if buckets is None:
                record(kind, time.monotonic())
            return out
        executor.forward, executor.backward = forward, backward
        if buckets is not None:
            fin = buckets.finish

            def finish(grads):
                t = time.monotonic()
                c, d, v = time.thread_time(), run_delay(), ivcsw()
                out = fin(grads)
                rows[kind].append([now["t0"], t, time.monotonic(), c - now["c0"],
                                   d - now["d0"], v - now["v0"]])
                return out
            buckets.finish = finish

    def record(kind, t):
        rows[kind].append([now["t0"], t, t, time.thread_time() - now["c0"],
                           run_delay() - now["d0"], ivcsw() - now["v0"]])

    wrap(solo, None, "independent")
    for w, dp in dps.items():
        wrap(dp.executor, dp.buckets, w)
    kinds = ["independent", *waits]
    for r in range(-1, rounds):
        for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
            comm.all_arrive(600)
            if r < 0:
                before = {k: len(v) for k, v in rows.items()}
            if kind == "independent":
                train_steps(solo, solo, X, y, rng, 64, steps)
            else:
                train_steps(dps[kind], dps[kind].plan, X, y, rng, 128, steps)
            if r < 0:  # the warm-up round is not recorded
                for k, v in rows.items():
                    del v[before[k]:]
    for dp in dps.values():
        dp.close()
    every = {k: comm.allgather(np.array(v), "gathering the timeline") for k, v in rows.items()}
    if not comm.is_root:
        return None
    return {k: v.tolist() for k, v in every.items()}


def analyse(t: dict) -> dict:
    out = {}
    for kind, v in t.items():
        a = np.array(v)  # (ranks, steps, fields)
        t0, end, left, cpu, delay, ivc = (a[:, :, i] for i in range(6))
        dur = end - t0
        res = {"steps": int(a.shape[1]),
               "cpu_ms_median": [round(float(np.median(c)) * 1e3, 2) for c in cpu],
               "cpu_ms_std": [round(float(np.std(c)) * 1e3, 2) for c in cpu],
               "cpu_ms_iqr": [round(float(np.subtract(*np.percentile(c, [75, 25]))) * 1e3, 2)
                              for c in cpu],
               "fwd_bwd_wall_ms_median": [round(float(np.median(d)) * 1e3, 2) for d in dur],
               "run_delay_ms_median": [round(float(np.median(d)) * 1e3, 2) for d in delay],
               "preemptions_per_step": [round(float(np.mean(x)), 2) for x in ivc],
               "off_cpu_ms_median": [round(float(np.median(d - c - dl)) * 1e3, 2)
                                     for d, c, dl in zip(dur, cpu, delay)]}
        if kind != "independent":
            skew = end[0] - end[1]  # > 0: rank 0 later
            parts = {"start": t0[0] - t0[1], "cpu": cpu[0] - cpu[1],
                     "run_delay": delay[0] - delay[1]}
            parts["rest"] = skew - sum(parts.values())
            res["skew_ms_median_abs"] = round(float(np.median(np.abs(skew))) * 1e3, 2)
            res["skew_ms_median_signed"] = round(float(np.median(skew)) * 1e3, 2)
            res["rank0_later_share"] = round(float(np.mean(skew > 0)), 3)
            # how much of |skew| each part explains: median |part|, and its correlation
            res["parts_ms_median_abs"] = {k: round(float(np.median(np.abs(p))) * 1e3, 2)
                                          for k, p in parts.items()}
            res["parts_corr_with_skew"] = {k: round(float(np.corrcoef(p, skew)[0, 1]), 3)
                                           for k, p in parts.items()}
            # the variance of the skew split: var(skew) = sum of covariances with each part
            var = float(np.var(skew))
            res["parts_share_of_skew_variance"] = {
                k: round(float(np.cov(p, skew, bias=True)[0, 1]) / var, 3) for k, p in parts.items()}
            # the step's wall time (start to leaving the wait, the later rank) over the mean
            # of the ranks' own fwd+bwd: what lockstep costs, in the same windows
            step = left.max(axis=0) - t0.min(axis=0)
            res["lockstep_over_mean_fwd_bwd"] = round(float(np.median(step) / np.median(dur.mean(axis=0))), 3)
            res["wait_ms_median"] = [round(float(np.median(w)) * 1e3, 2) for w in left - end]
            # the last rank's wait: what the buckets' overlap can shorten
            res["exposed_ms_median"] = round(float(np.median((left - end).min(axis=0))) * 1e3, 3)
            # do the two ranks' CPU times move together (shared caches, memory bandwidth)?
            res["cpu_corr_between_ranks"] = round(float(np.corrcoef(cpu[0], cpu[1])[0, 1]), 3)
        out[kind] = res
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet_small")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--waits", nargs="+", default=["rule", "spin", "nap"])
    ap.add_argument("--small-bucket-mb", type=float, default=0.0,
                    help="also the rule with buckets of this size (`rule_small`)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--raw", help="also write the raw timeline to this JSON file")
    ap.add_argument("--quick", action="store_true", help="LeNet, 2 rounds of 2 steps (the tests)")
    args = ap.parse_args()
    if args.quick:
        args.model, args.rounds, args.steps = "lenet", 2, 2
    if args.worker:
        t = worker(args.model, args.rounds, args.steps, args.waits, args.small_bucket_mb)
        if t is not None:
            print(json.dumps(t))
        return
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                           + os.environ.get("PATH", ""))
    load = os.getloadavg()[0]
    cmd = [mpiexec, "-n", "2", sys.executable, __file__, "--worker", "--model", args.model,
           "--rounds", str(args.rounds), "--steps", str(args.steps), "--small-bucket-mb", str(args.small_bucket_mb),
           "--waits", *args.waits]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    t = json.loads([x for x in r.stdout.splitlines() if x.startswith("{")][-1])
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump(t, f)
    print(json.dumps({"model": args.model, "rounds": args.rounds, "steps": args.steps,
                      "load_before_after": [round(load, 2), round(os.getloadavg()[0], 2)],
                      **analyse(t)}, indent=1))


if __name__ == "__main__":
    main()
