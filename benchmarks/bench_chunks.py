"""In-process A/B of the chunked inference program (dagnet/runtime/chunks.py): a model's eval
forward at one batch size run whole (chunks.ENABLED off) and by chunks of each size given,
alternating in rounds of `window` calls each; per contender the median time per call (wall
clock, and the process's CPU time: the work done, robust to load), and the medians of the
rounds' ratios whole / chunked. Prints one JSON line.

    DAGNET_NUM_THREADS=1 python benchmarks/bench_chunks.py --models resnet_small --chunks 8 16 32
                                                            [--batch 256] [--rounds 9] [--window 3]
                                                            [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_infer  # noqa: E402
import numpy as np  # noqa: E402

from dagnet import kernels  # noqa: E402
from dagnet.runtime import chunks  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet_small", "lenet"])
    ap.add_argument("--chunks", type=int, nargs="+", default=[chunks.CHUNK])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--window", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one round, batch 24, chunks of 8: "
                    "the script runs (tests)")
    a = ap.parse_args(argv)
    if a.quick:
        a.batch, a.chunks, a.rounds, a.window = 24, [8], 1, 1
    report = {"threads": kernels.NUM_THREADS, "batch": a.batch, "rounds": a.rounds, "models": {}}
    for name in a.models:
        graph, shape, _, scores, params, state = bench_infer.model_setup(name)
        run = bench_infer.dagnet_runner(graph, scores, params, state)
        x = bench_infer.inputs(shape, a.batch)
        contenders = {"whole": (False, chunks.CHUNK)} | {f"chunk{c}": (True, c) for c in a.chunks}
        want, wall, cpu = None, {k: [] for k in contenders}, {k: [] for k in contenders}
        for _ in range(a.rounds + 1):  # the first round warms up (binds), not counted
            for k, (on, size) in contenders.items():
                chunks.ENABLED, chunks.CHUNK = on, size
                got = run(x)
                if want is None:
                    want = got
                assert np.array_equal(got, want), f"{name} {k}: scores differ from the whole batch's"
                t, c = time.perf_counter(), time.process_time()
                for _ in range(a.window):
                    run(x)
                wall[k].append((time.perf_counter() - t) / a.window)
                cpu[k].append((time.process_time() - c) / a.window)
        row = {}
        for k in contenders:
            row[k] = {"wall_ms": 1e3 * statistics.median(wall[k][1:]),
                      "cpu_ms": 1e3 * statistics.median(cpu[k][1:])}
            if k != "whole":
                row[k]["wall_ratio"] = statistics.median(
                    w / c for w, c in zip(wall["whole"][1:], wall[k][1:]))
                row[k]["cpu_ratio"] = statistics.median(
                    w / c for w, c in zip(cpu["whole"][1:], cpu[k][1:]))
        report["models"][name] = row
    report["load_average"] = os.getloadavg()
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
