"""Direct conv forward benchmark: prints one JSON object.

For each conv of resnet_small and LeNet as their inference programs run it (the epilogue:
relu, + skip, 2x2 max pool), the direct kernels' single-thread rates (dagnet/_kernels/
direct.pyx forward, the planes kernel of direct.h, and forward_oc, vectorised along output
channels, direct_oc.h, for the convs without a pool, and forward_wino and forward_wino4, Winograd F(2x2, 3x3) and
F(4x4, 3x3), winograd.h and winograd4.h, for every 3x3 stride-1 conv of more than one channel
whatever ops/winograd.py's rules pick; GFLOP/s of the conv's own
multiply-adds, 2*F*C*kh*kw*Ho*Wo a sample (for Winograd: the direct conv's count, an
effective rate), and oc_speedup / wino_speedup / wino4_speedup: planes time / their time), against
OpenBLAS's single-thread float32 GEMM of a large square matrix (the practical peak of the
same core), all alternating in rounds, medians; and the planes grid's extra positions
(direct.h: rows Wq >= Wo wide, rounded to whole vectors).

Times are the calling thread's CPU time (time.thread_time), one thread: on a machine shared
with other work, wall time counts the waits for a core, CPU time does not.

    python benchmarks/bench_direct.py [--quick]
"""
from __future__ import annotations

import argparse
import functools
import json
import time

import dagnet  # noqa: F401  (before numpy: it tunes OpenBLAS's threads, dagnet/procenv.py)
import numpy as np

from dagnet.ops import direct, direct_oc, winograd

SHAPES = {  # name -> per-example input (C, H, W), weights (F, C, kh, kw), stride, pad, epilogue
    "resnet_small.stem": ((1, 28, 28), (16, 1, 3, 3), (1, 1), (1, 1), "relu"),
    "resnet_small.block_16": ((16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1), "skip+relu"),
    "resnet_small.down_16_32": ((16, 28, 28), (32, 16, 3, 3), (2, 2), (1, 1), "relu"),
    "resnet_small.skip_1x1": ((16, 28, 28), (32, 16, 1, 1), (2, 2), (0, 0), "none"),
    "resnet_small.block_32": ((32, 14, 14), (32, 32, 3, 3), (1, 1), (1, 1), "skip+relu"),
    "lenet.conv1": ((1, 28, 28), (20, 1, 5, 5), (1, 1), (0, 0), "relu+pool"),
    "lenet.conv2": ((20, 12, 12), (50, 20, 5, 5), (1, 1), (0, 0), "relu+pool"),
}


def conv_runner(x_shape, w_shape, stride, pad, epilogue, batch):
    """() -> None running the direct forward of one batch on one thread (planes one row,
    as an inference program lays them out), and its multiply-add FLOPs."""
    ext = direct._ext
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *x_shape)).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    geo = direct.geometry(x_shape, w_shape, stride, pad, ext.lanes(direct.ISA, False))
    wp, bp = direct.packed(w, b, np.float32)
    planes = np.empty((1, geo.size), np.float32)
    grid = np.empty((1, w_shape[0] * geo.qr), np.float32)
    ho, wo, pool = geo.ho, geo.wo, None
    if "pool" in epilogue:
        pool, ho, wo = (geo.ho, geo.wo, 2, 2, 2, 2), geo.ho // 2, geo.wo // 2
    out = np.empty((batch, w_shape[0], ho, wo), np.float32)
    res = rng.standard_normal(out.shape).astype(np.float32) if "skip" in epilogue else None
    relu = "relu" in epilogue

    def run():
        ext.forward(x, planes, geo.slot, geo.off, wp, bp, grid, out, *stride, *pad, geo.hq,
                    geo.wq, geo.qr, direct.ISA, 1, res, relu, pool, 1)
    run_oc = None
    if pool is None:
        oc = direct_oc.oc_geometry_for(x_shape, w_shape, stride, pad, np.float32)
        wq, bq = direct_oc.oc_packed(w, b, np.float32)
        scratch = np.empty((1, oc.size), np.float32)

        def run_oc():
            ext.forward_oc(x, scratch, oc.off, wq, bq, out, oc.nb, *stride, *pad, direct.ISA,
                           1, res, relu)
    run_wino = {}
    if pool is None and tuple(w_shape[2:]) == (3, 3) and stride == (1, 1) and x_shape[0] > 1:
        for m in (2, 4):  # both tile sizes, whatever ops/winograd.py's rules pick
            wg = winograd.geometry(x_shape, w_shape, pad, direct.ISA, False, m)
            u, bu = winograd.packed(w, b, np.float32, m)
            wscratch = np.empty((1, wg.scratch), np.float32)
            run_wino[m] = functools.partial(winograd.kernel(wg), x, wscratch, u, bu, out, *pad,
                                            wg.hq, wg.wq, wg.qr, wg.size, direct.ISA, 1, res,
                                            relu)
    flops = 2 * np.prod(w_shape) * geo.ho * geo.wo * batch
    return run, run_oc, run_wino, float(flops), geo.qr / (geo.ho * geo.wo)


def cpu_seconds(fn, rounds: int) -> list:
    times = []
    for _ in range(rounds):
        t = time.thread_time()
        fn()
        times.append(time.thread_time() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    batch, rounds, n = (4, 3, 128) if a.quick else (a.batch, a.rounds, 1024)
    import threadpoolctl

    rng = np.random.default_rng(1)
    m1, m2 = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    out = {"isa": direct.ISA, "batch": batch, "threads": 1, "convs": {}}
    with threadpoolctl.threadpool_limits(1):
        gemm_s, rows = [], {}
        for name, (xs, ws, st, pd, epi) in SHAPES.items():
            run, run_oc, run_wino, flops, extra = conv_runner(xs, ws, st, pd, epi, batch)
            run()
            conv_s, oc_s, wino_s = [], [], {m: [] for m in run_wino}
            for _ in range(rounds):  # alternating with the GEMM: the same machine state
                conv_s += cpu_seconds(run, 1)
                if run_oc is not None:
                    oc_s += cpu_seconds(run_oc, 1)
                for m, fn in run_wino.items():
                    wino_s[m] += cpu_seconds(fn, 1)
                gemm_s += cpu_seconds(lambda: m1 @ m2, 1)
            rows[name] = (flops, float(np.median(conv_s)), oc_s and float(np.median(oc_s)),
                          {m: float(np.median(t)) for m, t in wino_s.items()}, extra, epi)
        gemm = 2 * n ** 3 / float(np.median(gemm_s))
    for name, (flops, s, s_oc, s_wino, extra, epi) in rows.items():
        row = out["convs"][name] = {"epilogue": epi, "gflop_s": round(flops / s / 1e9, 2),
                                    "of_openblas_gemm": round(flops / s / gemm, 3),
                                    "us_per_sample": round(s / batch * 1e6, 2),
                                    "grid_extra": round(extra, 3)}
        if s_oc:
            row.update(oc_gflop_s=round(flops / s_oc / 1e9, 2),
                       oc_of_openblas_gemm=round(flops / s_oc / gemm, 3),
                       oc_speedup=round(s / s_oc, 3))
        for m, sw in s_wino.items():  # F(2x2): "wino_", F(4x4): "wino4_"
            key = "wino" if m == 2 else "wino4"
            row.update({f"{key}_gflop_s": round(flops / sw / 1e9, 2),
                        f"{key}_speedup": round(s / sw, 3)})
    out["openblas_gemm_gflop_s"] = round(gemm / 1e9, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
