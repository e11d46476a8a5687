"""Compiler and plan benchmark: prints one JSON object.

Compile time of a 1,000-node chain and a 1,000-node residual graph; for LeNet (batch 64,
float32) the train-step time of the fused vs the unfused plan (medians, alternating runs after
warm-up), and eval-mode peak bytes with and without buffer reuse.

    python benchmarks/bench_plan.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import dagnet  # before numpy: it tunes OpenBLAS's threads (dagnet/procenv.py)
import numpy as np

from dagnet import Graph, kernels
from dagnet.models import lenet


def blas_info():
    """Which BLAS kernel ran (OpenBLAS picks one per CPU at load): threadpoolctl's view."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info()]


def chain_graph(n: int) -> Graph:
    """input -> n element-wise ops (n + 1 nodes)."""
    g = Graph("chain")
    h = g.input("x", (16,))
    ops = ("relu", "tanh", "sigmoid", "elu")
    for i in range(n - 1):
        h = g.op(ops[i % 4], h, name=f"op{i}")
    return g


def residual_graph(n: int) -> Graph:
    """Residual blocks h = relu(h + affine(relu(affine(h)))) until about n nodes (params
    included), then a loss."""
    g = Graph("residual")
    h = g.input("x", (8,))
    y = g.input("y", (), dtype="int64")
    i = 0
    while len(g) < n - 4:
        t = g.relu(g.affine(h, 8, name=f"b{i}.fc1"), name=f"b{i}.relu1")
        t = g.affine(t, 8, name=f"b{i}.fc2")
        h = g.relu(g.add(h, t, name=f"b{i}.add"), name=f"b{i}.relu2")
        i += 1
    g.softmax_cross_entropy(g.affine(h, 4, name="head"), y)
    return g


def time_compile(graph: Graph, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        dagnet.compile(graph, outputs=graph.outputs)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_steps(plans: dict, x, y, repeats: int, warmup: int = 2) -> dict:
    """Median train-step seconds per plan, runs alternating between plans."""
    for plan in plans.values():
        for _ in range(warmup):
            plan.loss_and_grads(x, y)
    times = {k: [] for k in plans}
    for _ in range(repeats):
        for k, plan in plans.items():
            t = time.perf_counter()
            plan.loss_and_grads(x, y)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = ap.parse_args(argv)
    n_nodes, repeats, batch = (100, 2, 8) if args.quick else (1000, 5, 64)

    chain, res = chain_graph(n_nodes), residual_graph(n_nodes)
    compile_chain = time_compile(chain, repeats)
    compile_res = time_compile(res, repeats)

    g = lenet()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    fused = dagnet.compile(g, seed=0)
    unfused = dagnet.compile(g, seed=0, fuse=False)
    steps = time_steps({"fused": fused, "unfused": unfused}, x, y, 3 if args.quick else 61)

    peaks = {}
    for name, fuse in (("fused", True), ("unfused", False)):
        ev = dagnet.compile(g, mode="eval", fuse=fuse)
        peaks[name] = {
            "activations_reuse": ev.peak_bytes(batch, workspace=False),
            "activations_no_reuse": ev.peak_bytes(batch, reuse=False, workspace=False),
            "with_workspace_reuse": ev.peak_bytes(batch),
            "with_workspace_no_reuse": ev.peak_bytes(batch, reuse=False),
        }
    u = peaks["unfused"]
    result = {
        "quick": args.quick,
        "blas": blas_info(),
        "row_isa": kernels.ROW_ISAS[kernels.ROW_ISA],  # the fused conv+relu+pool's sparse sums
        "compile": {"chain_nodes": len(chain), "chain_s": compile_chain,
                    "residual_nodes": len(res), "residual_s": compile_res},
        "lenet_train_step_s": {**steps, "batch": batch},
        "lenet_eval_peak_bytes": peaks,
        "summary": {
            "compile_1000_chain_s": compile_chain,
            "compile_1000_residual_s": compile_res,
            "fused_speedup_lenet": steps["unfused"] / steps["fused"],
            # buffer reuse alone: the unfused plan's activations (fusion already removes the
            # inner values, which is a separate saving)
            "eval_peak_ratio_lenet": u["activations_reuse"] / u["activations_no_reuse"],
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
