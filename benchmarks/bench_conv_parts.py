"""Per-op conv timings, forward / dx / dw apart, dagnet or torch (one library per process):
the training convs of resnet20 and resnet_small at batch 64. Prints one JSON line of (min, median) ms;
DAGNET_NUM_THREADS sets both libraries' threads.

    python benchmarks/bench_conv_parts.py dagnet|torch [--reps 15] [--cpu] [--quick]
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

SHAPES = [  # (name, C, F, H, stride)
    ("r20 16ch 32x32", 16, 16, 32, 1),
    ("r20 32ch 16x16", 32, 32, 16, 1),
    ("r20 64ch 8x8", 64, 64, 8, 1),
    ("r20 16->32 s2", 16, 32, 32, 2),
    ("r20 32->64 s2", 32, 64, 16, 2),
    ("rs 16ch 28x28", 16, 16, 28, 1),
    ("rs 32ch 14x14", 32, 32, 14, 1),
]
N = 2 if "--quick" in sys.argv else 64  # --quick: the script runs (tests)
#: --cpu: the process's CPU time instead of the wall clock (with one thread, robust to load)
CLOCK = time.process_time if "--cpu" in sys.argv else time.perf_counter


def med(fn, reps):
    fn()
    fn()
    ts = []
    for _ in range(reps):
        t = CLOCK()
        fn()
        ts.append(CLOCK() - t)
    return round(min(ts) * 1e3, 3), round(statistics.median(ts) * 1e3, 3)


def run_dagnet(reps):
    import numpy as np
    from dagnet.ops.conv import conv_backward, conv_forward, takes_direct
    from dagnet.ops.conv_planes import fwd_by_direct
    rng = np.random.default_rng(0)
    out = {}
    for name, c, f, h, s in SHAPES:
        x = rng.standard_normal((N, c, h, h), dtype=np.float32)
        w = rng.standard_normal((f, c, 3, 3), dtype=np.float32) * 0.1
        b = np.zeros(f, np.float32)
        y, cache = conv_forward(x, w, b, s, 1)
        dout = rng.standard_normal(y.shape, dtype=np.float32)
        fwd = med(lambda: conv_forward(x, w, b, s, 1), reps)
        both = med(lambda: conv_backward(dout, cache, True), reps)
        dw = med(lambda: conv_backward(dout, cache, False), reps)
        # the path conv_forward takes (ops/conv.py asks in this order)
        kind = ("direct" if takes_direct((c, h, h), w.shape, s, 1)
                else "planes" if fwd_by_direct((c, h, h), w.shape, s, 1) else "im2col")
        out[name] = {"kind": kind, "fwd": fwd, "dx": [round(a - b, 3) for a, b in zip(both, dw)], "dw": dw, "bwd": both}
    return out


def run_torch(reps):
    import torch
    torch.manual_seed(0)
    if os.environ.get("DAGNET_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["DAGNET_NUM_THREADS"]))
    out = {}
    cb = torch.ops.aten.convolution_backward
    with torch.no_grad():
        for name, c, f, h, s in SHAPES:
            x = torch.randn(N, c, h, h)
            w = torch.randn(f, c, 3, 3) * 0.1
            b = torch.zeros(f)
            y = torch.nn.functional.conv2d(x, w, b, s, 1)
            dout = torch.randn_like(y)
            args = ([f], [s, s], [1, 1], [1, 1], False, [0, 0], 1)
            fwd = med(lambda: torch.nn.functional.conv2d(x, w, b, s, 1), reps)
            dx = med(lambda: cb(dout, x, w, *args, [True, False, False]), reps)
            dw = med(lambda: cb(dout, x, w, *args, [False, True, True]), reps)
            both = med(lambda: cb(dout, x, w, *args, [True, True, True]), reps)
            out[name] = {"fwd": fwd, "dx": dx, "dw": dw, "bwd": both}
    return out


if __name__ == "__main__":
    lib = "torch" if "torch" in sys.argv[1:] else "dagnet"
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 15
    print(json.dumps({"lib": lib, **(run_dagnet(reps) if lib == "dagnet" else run_torch(reps))}))
