"""Which kernel of the fused conv + relu + max-pool pays on this CPU: prints one JSON object.

For the zoo's conv + relu + 2x2 max-pool layers (float32), the forward + backward of the fused
step (dagnet/ops/fused.py ConvReLUPool) with each kernel: the row layout's sparse backward in
every variant of its sums this CPU runs (kernels.ROW_ISAS) and the im2col columns' dense one.
Medians in ms, the contenders alternating round by round in one process (this VM's speed
drifts), and for each layer the kernel the rule (ConvReLUPool.uses_rows) picks, and what that
choice costs against the faster one.

    python benchmarks/bench_rows.py [--quick] [--rounds N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import dagnet  # before numpy: it tunes OpenBLAS's threads (dagnet/procenv.py)
import numpy as np

from dagnet import kernels
from dagnet.ops.fused import ConvReLUPool

# name: (x shape at batch 64, w shape, conv pad, whether the plan needs dx)
LAYERS = {
    "lenet.conv1": ((64, 1, 28, 28), (20, 1, 5, 5), 0, False),
    "lenet.conv2": ((64, 20, 12, 12), (50, 20, 5, 5), 0, True),
    "three_layer_convnet.conv1": ((64, 3, 32, 32), (32, 3, 7, 7), 3, False),
    "convnet_deep16.conv2": ((32, 16, 32, 32), (16, 16, 3, 3), 1, True),
    "convnet_deep32.conv2": ((32, 32, 32, 32), (32, 32, 3, 3), 1, True),
    "convnet_deep64.conv2": ((32, 64, 16, 16), (64, 64, 3, 3), 1, True),
}
QUICK = {"tiny": ((4, 3, 8, 8), (4, 3, 3, 3), 1, True)}


def stepper(x, w, b, pad, need_dx, kernel, isa):
    """forward + backward of the fused step with kernel 'rows' (sums in variant isa) or
    'columns'."""
    op = ConvReLUPool()
    op.ROWS_FROM = 0 if kernel == "rows" else float("inf")  # this instance only
    attrs = {"members": [{"name": "conv", "op": "conv2d", "attrs": {"pad": pad}},
                         {"name": "relu", "op": "relu", "attrs": {}},
                         {"name": "pool", "op": "max_pool2d", "attrs": {"size": 2}}]}
    dout = None
    # the patch rows or im2col columns go in a workspace made once, as the plan's memory pass
    # does (a fresh 38 MB array page-faulted in anew each call)
    workspace = np.empty(x.shape[0] * (w[0].size + 1) * x[0, 0].size * x.itemsize, np.uint8)

    def step():
        nonlocal dout
        kernels.ROW_ISA = isa
        out, cache = op.forward([x, w, b], attrs, workspace=workspace)
        if dout is None:
            dout = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
        op.backward(dout, cache, attrs, needs=[need_dx, True, True])
    return step


def time_layer(x_shape, w_shape, pad, need_dx, rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) * np.sqrt(2 / np.prod(w_shape[1:]))).astype(np.float32)
    b = np.zeros(w_shape[0], np.float32)
    best = kernels.ROW_ISA
    steps = {f"rows_{kernels.ROW_ISAS[i]}": stepper(x, w, b, pad, need_dx, "rows", i)
             for i in range(best + 1)}
    steps["columns"] = stepper(x, w, b, pad, need_dx, "columns", best)
    try:
        for s in steps.values():
            for _ in range(2):
                s()
        times = {k: [] for k in steps}
        names = list(steps)
        for r in range(rounds):
            for k in names[r % len(names):] + names[:r % len(names)]:  # rotate the order too
                t = time.perf_counter()
                steps[k]()
                times[k].append(time.perf_counter() - t)
    finally:
        kernels.ROW_ISA = best
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    rows_ms = ms[f"rows_{kernels.ROW_ISAS[best]}"]
    picked = "rows" if ConvReLUPool().uses_rows(w_shape) else "columns"
    k = int(np.prod(w_shape[1:]))
    return {"K": k, "F": w_shape[0], "KF/(K+F)": round(k * w_shape[0] / (k + w_shape[0]), 1),
            "ms": {k: round(v, 3) for k, v in ms.items()},
            "columns_over_rows": round(ms["columns"] / rows_ms, 3), "rule_picks": picked,
            # > 1: the picked kernel is slower than the other by this factor
            "rule_cost": round((rows_ms if picked == "rows" else ms["columns"])
                               / min(rows_ms, ms["columns"]), 3)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tiny layer, to check the script runs")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds per layer")
    args = ap.parse_args(argv)
    layers = QUICK if args.quick else LAYERS
    rounds = args.rounds or (2 if args.quick else 31)
    results = {name: time_layer(*spec, rounds) for name, spec in layers.items()}
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for i in threadpool_info()]
    except ImportError:
        blas = "threadpoolctl not installed"
    report = {"quick": args.quick, "row_isa": kernels.ROW_ISAS[kernels.ROW_ISA],
              "rows_from": ConvReLUPool.ROWS_FROM, "threads": kernels.NUM_THREADS, "blas": blas,
              "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "DAGNET_NUM_THREADS")},
              "layers": results,
              "summary": {"worst_rule_cost": max(r["rule_cost"] for r in results.values())}}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
