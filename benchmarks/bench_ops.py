"""Time conv2d and max_pool2d: dagnet vs the loop-based reference vs PyTorch; print one JSON object.

    python benchmarks/bench_ops.py            # the issue's shapes, float32 (a few minutes)
    python benchmarks/bench_ops.py --quick    # tiny shapes, to see that the script still works

For each conv shape: forward, and forward + backward with every gradient (dx, dw, db), of
conv2d; then forward and forward + backward of a 2x2 / stride 2 max_pool2d on that conv's
output. Times are medians in milliseconds after warm-up. The reference is timed on a small
batch and scaled linearly to the full batch (its loops are linear in N); the JSON says so.
PyTorch runs in the same process with 2 threads where it is installed; dagnet is imported
first, so both share the one libgomp, with the OMP_WAIT_POLICY dagnet sets (see kernels.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import dagnet  # noqa: F401  (before numpy: it tunes OpenBLAS's threads, see dagnet/procenv.py)
import numpy as np

from dagnet import kernels
from dagnet import reference as ref
from dagnet.ops import get_op

# (N, C, H, W), filters, kernel, stride, pad
SHAPES = [
    ((100, 3, 32, 32), 32, 3, 1, 1),
    ((64, 1, 28, 28), 20, 5, 1, 0),
    ((64, 20, 12, 12), 50, 5, 1, 0),
    ((100, 3, 31, 31), 25, 3, 2, 1),
]
QUICK_SHAPES = [((4, 3, 8, 8), 4, 3, 1, 1), ((4, 3, 9, 9), 5, 3, 2, 1)]
SEED_SHAPE = (100, 3, 31, 31)
POOL = {"size": 2, "stride": 2, "floor": True}


def median_ms(fn, repeats, warmup):
    """Median wall time of fn() in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


def time_dagnet(x, w, b, attrs, repeats, warmup):
    conv, pool = get_op("conv2d"), get_op("max_pool2d")
    y, _ = conv.forward([x, w, b], attrs)
    dy = np.ones_like(y)
    p, _ = pool.forward([y], POOL)
    dp = np.ones_like(p)

    def conv_fb():
        out, cache = conv.forward([x, w, b], attrs)
        conv.backward(dy, cache, attrs)

    def conv_fb_no_dx():
        out, cache = conv.forward([x, w, b], attrs)
        conv.backward(dy, cache, attrs, needs=(False, True, True))

    def pool_fb():
        out, cache = pool.forward([y], POOL)
        pool.backward(dp, cache, POOL)

    return {
        "conv_fwd_ms": median_ms(lambda: conv.forward([x, w, b], attrs), repeats, warmup),
        "conv_fwd_bwd_ms": median_ms(conv_fb, repeats, warmup),
        "conv_fwd_bwd_no_dx_ms": median_ms(conv_fb_no_dx, repeats, warmup),
        "pool_fwd_ms": median_ms(lambda: pool.forward([y], POOL), repeats, warmup),
        "pool_fwd_bwd_ms": median_ms(pool_fb, repeats, warmup),
    }


def time_reference(x, w, b, stride, pad, batch):
    """One run of the reference on the first `batch` samples, scaled to the full batch."""
    scale = x.shape[0] / batch
    xs = x[:batch]
    y = ref.conv_forward(xs, w, b, stride, pad)
    p = ref.maxpool_forward(y, 2, 2)

    def once(fn):
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3 * scale

    fwd = once(lambda: ref.conv_forward(xs, w, b, stride, pad))
    bwd = once(lambda: ref.conv_backward(np.ones_like(y), xs, w, stride, pad))
    pool_fwd = once(lambda: ref.maxpool_forward(y, 2, 2))
    pool_bwd = once(lambda: ref.maxpool_backward(np.ones_like(p), y, 2, 2))
    return {
        "conv_fwd_ms": round(fwd, 1),
        "conv_fwd_bwd_ms": round(fwd + bwd, 1),
        "pool_fwd_ms": round(pool_fwd, 1),
        "pool_fwd_bwd_ms": round(pool_fwd + pool_bwd, 1),
        "scaled_from_batch": batch,
    }


def time_torch(torch, x, w, b, stride, pad, repeats, warmup):
    fn = torch.nn.functional
    xt = torch.from_numpy(x).requires_grad_(True)
    x_data = torch.from_numpy(x)
    wt = torch.from_numpy(w).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    with torch.no_grad():
        y = fn.conv2d(x_data, wt, bt, stride=stride, padding=pad)
    dy = torch.ones_like(y)
    yt = y.clone().requires_grad_(True)
    dp = torch.ones_like(fn.max_pool2d(y, 2, 2))

    def conv_fwd():
        with torch.no_grad():
            fn.conv2d(xt, wt, bt, stride=stride, padding=pad)

    def conv_fb(inp):
        xt.grad = wt.grad = bt.grad = None
        fn.conv2d(inp, wt, bt, stride=stride, padding=pad).backward(dy)

    def pool_fwd():
        with torch.no_grad():
            fn.max_pool2d(yt, 2, 2)

    def pool_fb():
        yt.grad = None
        fn.max_pool2d(yt, 2, 2).backward(dp)

    return {
        "conv_fwd_ms": median_ms(conv_fwd, repeats, warmup),
        "conv_fwd_bwd_ms": median_ms(lambda: conv_fb(xt), repeats, warmup),
        "conv_fwd_bwd_no_dx_ms": median_ms(lambda: conv_fb(x_data), repeats, warmup),
        "pool_fwd_ms": median_ms(pool_fwd, repeats, warmup),
        "pool_fwd_bwd_ms": median_ms(pool_fb, repeats, warmup),
    }


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"threadpoolctl": "not installed"}
    return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "prefix")}
            for i in threadpool_info()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure")
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats = args.repeats or (2 if args.quick else 20)
    warmup = 1 if args.quick else 3
    ref_batch = 1 if args.quick else 2

    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        torch = None

    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    results = []
    for x_shape, filters, k, stride, pad in shapes:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = (rng.standard_normal((filters, x_shape[1], k, k)) * 0.1).astype(np.float32)
        b = rng.standard_normal(filters).astype(np.float32)
        attrs = {"stride": stride, "pad": pad, "floor": True}
        row = {
            "x": list(x_shape), "filters": filters, "kernel": k, "stride": stride, "pad": pad,
            "pool_input": [x_shape[0], filters, *get_op("conv2d").infer_shape(
                [x_shape[1:], w.shape, b.shape], attrs)[1:]],
            "dagnet": time_dagnet(x, w, b, attrs, repeats, warmup),
            "reference": time_reference(x, w, b, stride, pad, ref_batch),
        }
        if torch is not None:
            row["torch"] = time_torch(torch, x, w, b, stride, pad, repeats, warmup)
            row["conv_ratio_vs_torch"] = round(
                row["dagnet"]["conv_fwd_bwd_ms"] / row["torch"]["conv_fwd_bwd_ms"], 3)
            row["pool_ratio_vs_torch"] = round(
                row["dagnet"]["pool_fwd_bwd_ms"] / row["torch"]["pool_fwd_bwd_ms"], 3)
        row["conv_speedup_vs_reference"] = round(
            row["reference"]["conv_fwd_bwd_ms"] / row["dagnet"]["conv_fwd_bwd_ms"], 1)
        results.append(row)

    seed = next((r for r in results if tuple(r["x"]) == SEED_SHAPE), results[-1])
    pool_row = next((r for r in results if r["pool_input"] == [100, 32, 32, 32]), results[0])
    report = {
        "benchmark": "bench_ops",
        "quick": args.quick,
        "dtype": "float32",
        "timing": f"median of {repeats} runs after {warmup} warm-up runs, ms; forward+backward "
                  f"computes every gradient (dx, dw, db) unless the key says no_dx",
        "reference_note": f"the loop-based reference is timed once on the first {ref_batch} "
                          f"sample(s) of each batch and scaled linearly to the full batch",
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "pool": "max_pool2d 2x2 stride 2 on each conv's output (pool_input)",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "torch": getattr(torch, "__version__", None),
                    "have_cython": kernels.HAVE_CYTHON, "dagnet_threads": kernels.NUM_THREADS,
                    "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                    "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                    "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                    "malloc_tuned": dagnet.procenv.MALLOC_TUNED,
                    "blas": blas_info()},
        "shapes": results,
        "summary": {
            "conv_speedup_vs_reference_seed_shape": seed["conv_speedup_vs_reference"],
            "worst_conv_ratio_vs_torch": (max(r["conv_ratio_vs_torch"] for r in results)
                                          if torch is not None else None),
            "pool_ratio_vs_torch": pool_row.get("pool_ratio_vs_torch"),
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
