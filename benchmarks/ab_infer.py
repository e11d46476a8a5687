"""In-process A/B of module flags on dagnet's eval forward (the inference program): a plan
compiled and bound with the flags off, one with them on, timed in alternating windows of
calls (the order swapped each round); per model the median over rounds of the off/on ratio
of each window's median call (wall clock) and of the calling thread's CPU time. Prints one
JSON line.

    python benchmarks/ab_infer.py dagnet.runtime.calls.CHAIN [more.module.FLAG ...]
                                  [--models resnet_small lenet] [--batch 1] [--rounds 21]
                                  [--window 64] [--quick]
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

import bench_infer  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("flags", nargs="+", help="module.FLAG: booleans, True when on")
    ap.add_argument("--models", nargs="+", default=["resnet_small", "lenet"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--window", type=int, default=64, help="timed calls a window")
    ap.add_argument("--quick", action="store_true", help="one round of 2 calls (tests)")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.window = 1, 2
    flags = [(importlib.import_module(f.rsplit(".", 1)[0]), f.rsplit(".", 1)[1]) for f in a.flags]

    def set_flags(on):
        for mod, name in flags:
            setattr(mod, name, on)
    out = {"flags": a.flags, "batch": a.batch, "rounds": a.rounds, "window": a.window,
           "load_before": os.getloadavg()}
    for model in a.models:
        graph, shape, _, scores, params, state = bench_infer.model_setup(model)
        x = bench_infer.inputs(shape, a.batch)
        runs, got = {}, {}
        for on in (False, True):
            set_flags(on)
            runs[on] = bench_infer.dagnet_runner(graph, scores, params, state)
            got[on] = runs[on](x)
        wall = {False: [], True: []}
        cpu = {False: [], True: []}
        for r in range(a.rounds):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                set_flags(on)
                run = runs[on]
                run(x)
                ws, cs = [], []
                for _ in range(a.window):
                    t, c = time.perf_counter_ns(), time.thread_time_ns()
                    run(x)
                    cs.append(time.thread_time_ns() - c)
                    ws.append(time.perf_counter_ns() - t)
                wall[on].append(statistics.median(ws) / 1e3)
                cpu[on].append(statistics.median(cs) / 1e3)
        set_flags(True)
        out[model] = {
            "off_us": statistics.median(wall[False]), "on_us": statistics.median(wall[True]),
            "speedup": statistics.median(o / n for o, n in zip(wall[False], wall[True])),
            "cpu_off_us": statistics.median(cpu[False]), "cpu_on_us": statistics.median(cpu[True]),
            "cpu_speedup": statistics.median(o / n for o, n in zip(cpu[False], cpu[True])),
            "same_bits": bool((got[False] == got[True]).all()),
            "max_diff": float(abs(got[False] - got[True]).max())}
    out["load_after"] = os.getloadavg()
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
