"""In-process A/B of module flags on dagnet's training step: one compiled plan per model, the
flags flipped together between alternating windows of steps; per model the median over rounds
of the off/on time ratio (the speedup the flags give). Prints one JSON line.

    python benchmarks/ab_flag.py dagnet.ops.winograd.DX_ENABLED [more.module.FLAG ...]
                                 [--rounds 9] [--window 5]
                                 [--models resnet20 resnet_small convnet_deep] [--cpu] [--quick]
                                 [--plan-each]

--plan-each compiles a plan for each setting, for flags plans read when they are compiled
(workspace sizes: ops/direct.py ENABLED, ops/conv.py FWD_DIRECT).
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
    ap.add_argument("flags", nargs="+", help="module.FLAG: booleans, True when on")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="one round of one step, batch 4, "
                    "resnet_small: the script runs (tests)")
    ap.add_argument("--cpu", action="store_true", help="the process's CPU time, not the wall "
                    "clock: the work done, robust to load (the pools sleep when idle)")
    ap.add_argument("--models", nargs="+", default=["resnet20", "resnet_small", "convnet_deep"])
    ap.add_argument("--plan-each", action="store_true", help="a plan compiled with the flags "
                    "on, one with them off: for flags read when compiling")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.window, a.batch, a.models = 1, 1, 4, ["resnet_small"]
    flags = [(importlib.import_module(f.rsplit(".", 1)[0]), f.rsplit(".", 1)[1]) for f in a.flags]

    def set_flags(on):
        for mod, name in flags:
            setattr(mod, name, on)
    clock = time.process_time if a.cpu else time.perf_counter
    rng = np.random.default_rng(0)
    steps = {}
    for name in a.models:
        graph, shape = bench_train.MODELS[name]()
        x = rng.standard_normal((a.batch, *shape)).astype(np.float32)
        y = rng.integers(0, 10, a.batch)
        plans = {}
        for on in (False, True):  # the flags left on
            set_flags(on)
            plans[on] = bench_train.dagnet_stepper(dagnet.compile(graph, seed=0), x, y)
        steps[name] = plans if a.plan_each else {False: plans[True], True: plans[True]}
    out = {}
    for name, step in steps.items():
        times = {True: [], False: []}
        for on in (True, False):
            set_flags(on)
            step[on]()
            step[on]()
        for r in range(a.rounds):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                set_flags(on)
                step[on]()
                t = clock()
                for _ in range(a.window):
                    step[on]()
                times[on].append((clock() - t) / a.window)
        ratios = [off / on for on, off in zip(times[True], times[False])]
        out[name] = {"on_ms": round(statistics.median(times[True]) * 1e3, 2),
                     "off_ms": round(statistics.median(times[False]) * 1e3, 2),
                     "speedup_median": round(statistics.median(ratios), 3),
                     "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)]}
    set_flags(True)
    print(json.dumps({"flags": a.flags, "rounds": a.rounds, "clock": "cpu" if a.cpu else "wall",
                      "threads": dagnet.kernels.NUM_THREADS, "load": os.getloadavg()[0], **out}))


if __name__ == "__main__":
    main()
