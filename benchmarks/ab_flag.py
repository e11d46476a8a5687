"""In-process A/B of a module flag on dagnet's training step: one compiled plan per model, the
flag flipped between alternating windows of steps; per model the median over rounds of the
on/off time ratio. Prints one JSON line.

    python benchmarks/ab_flag.py dagnet.ops.winograd DX_ENABLED [--rounds 9] [--window 5]
                                 [--models resnet20 resnet_small convnet_deep] [--cpu] [--quick]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_train  # noqa: E402
import dagnet  # noqa: E402
import numpy as np  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("module")
    ap.add_argument("flag")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="one round of one step, batch 4, "
                    "resnet_small: the script runs (tests)")
    ap.add_argument("--cpu", action="store_true", help="the process's CPU time, not the wall "
                    "clock: the work done, robust to load (the pools sleep when idle)")
    ap.add_argument("--models", nargs="+", default=["resnet20", "resnet_small", "convnet_deep"])
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.window, a.batch, a.models = 1, 1, 4, ["resnet_small"]
    mod = importlib.import_module(a.module)
    clock = time.process_time if a.cpu else time.perf_counter
    rng = np.random.default_rng(0)
    steps = {}
    for name in a.models:
        graph, shape = bench_train.MODELS[name]()
        x = rng.standard_normal((a.batch, *shape)).astype(np.float32)
        y = rng.integers(0, 10, a.batch)
        steps[name] = bench_train.dagnet_stepper(dagnet.compile(graph, seed=0), x, y)
    out = {}
    for name, step in steps.items():
        times = {True: [], False: []}
        for _ in range(2):
            step()
        for r in range(a.rounds):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                setattr(mod, a.flag, on)
                step()
                t = clock()
                for _ in range(a.window):
                    step()
                times[on].append((clock() - t) / a.window)
        ratios = [off / on for on, off in zip(times[True], times[False])]
        out[name] = {"on_ms": round(statistics.median(times[True]) * 1e3, 2),
                     "off_ms": round(statistics.median(times[False]) * 1e3, 2),
                     "speedup_median": round(statistics.median(ratios), 3),
                     "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)]}
    setattr(mod, a.flag, True)
    print(json.dumps({"flag": f"{a.module}.{a.flag}", "rounds": a.rounds, "clock": "cpu" if a.cpu else "wall",
                      "threads": dagnet.kernels.NUM_THREADS, "load": os.getloadavg()[0], **out}))


if __name__ == "__main__":
    main()
