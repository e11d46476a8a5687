"""Tune workers sharing one machine: prints one JSON object.

Images/s of LeNet training steps (batch 64, float32, SGD momentum) summed over W concurrent
processes, for thread settings of those processes: each process with every core (the
default: OpenBLAS's and dagnet's pools each as wide as the machine), with only
DAGNET_NUM_THREADS=1, and with cores/W threads for all three pools (DAGNET_NUM_THREADS,
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS: what `dagnet tune --workers W` sets). The processes of a
configuration start their timed stretch together (after warm-up) and step for --seconds;
configurations alternate round by round (rotated order), medians over rounds, ratios against one
process with every core.

    python benchmarks/bench_tune_workers.py [--rounds 5] [--seconds 6] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

THREAD_VARS = ("DAGNET_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def child(seconds: float) -> None:
    """Warm up, say ready, wait for 'go' on stdin, step for `seconds`; print steps and time."""
    import dagnet  # before numpy: it tunes OpenBLAS's threads
    import numpy as np

    from dagnet.models import lenet
    from dagnet.train.optim import sgd_momentum

    plan = dagnet.compile(lenet(), seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    configs = {p: {"learning_rate": 1e-3} for p in plan.params}

    def step():
        _, grads = plan.loss_and_grads(x, y)
        for p, w in plan.params.items():
            sgd_momentum(w, grads[p], configs[p])

    for _ in range(10):
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    print(json.dumps({"steps": n, "seconds": time.perf_counter() - start}), flush=True)


def run_config(workers: int, env_extra: dict, seconds: float) -> float:
    """Images/s summed over `workers` processes stepping at the same time."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(env_extra)
    procs = [subprocess.Popen([sys.executable, __file__, "--child", str(seconds)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    total = 0.0
    for p in procs:
        r = json.loads(p.stdout.readline())
        p.wait()
        total += 64 * r["steps"] / r["seconds"]
    return total


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--quick", action="store_true", help="1 round of 0.5 s: the script still runs")
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    if args.child is not None:
        child(args.child)
        return {}
    cores = os.cpu_count() or 1
    split = {k: str(max(1, cores // 2)) for k in THREAD_VARS}
    configs = {
        "1 worker, all cores": (1, {}),
        "2 workers, all cores each": (2, {}),
        "2 workers, DAGNET_NUM_THREADS=1": (2, {"DAGNET_NUM_THREADS": "1"}),
        f"2 workers, {cores // 2} thread(s) each (all pools)": (2, split),
        f"1 worker, {cores // 2} thread(s) (all pools)": (1, split),
    }
    names = list(configs)
    runs = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            runs[n].append(run_config(*configs[n], args.seconds))
    base = statistics.median(runs[names[0]])
    result = {"cores": cores, "loadavg_before_after": None, "img_s_median": {}, "ratio_vs_1_worker": {},
              "img_s_runs": runs}
    for n in names:
        m = statistics.median(runs[n])
        result["img_s_median"][n] = round(m, 1)
        result["ratio_vs_1_worker"][n] = round(m / base, 3)
    return result


if __name__ == "__main__":
    load0 = os.getloadavg()
    out = main()
    if out:
        out["loadavg_before_after"] = [load0, os.getloadavg()]
        print(json.dumps(out, indent=1))
