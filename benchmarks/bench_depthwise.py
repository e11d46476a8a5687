"""Depthwise / grouped conv benchmark: prints one JSON object.

Per op: every depthwise conv shape of MobileNet-v2 on Fashion-MNIST (1 x 28 x 28, the zoo's
cifar stem), float32, forward and forward + backward, the shifted-planes kernel
(ops/depthwise.py) against the im2col + batched-matmul path it replaced (depthwise.ENABLED =
False), alternating in one process, medians; ratios old / new (above 1: the planes are
faster), and the total over the network's convs (each shape times its count).
Per model: MobileNet-v2's training step (forward, backward, SGD-momentum) and eval forward
at batch 8 and 64, dagnet with and without the planes alternating in this process, and torch
eager in a process of its own (bench_train's torch module, torch's best case); the depthwise
convs' share of the step's time (the step profiler's per-step times) with each path.
Also how the grouped matmul path compares per channels-per-group (the MAX_GROUP_CHANNELS rule).

    python benchmarks/bench_depthwise.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # bench_train's runners, also in the torch child

import dagnet  # noqa: E402  (before numpy: it tunes OpenBLAS's threads, dagnet/procenv.py)
import numpy as np  # noqa: E402

from bench_train import (child_json, dagnet_stepper, have_torch, median_times,  # noqa: E402
                         torch_module, torch_stepper)
from dagnet.models import mobilenet_v2  # noqa: E402
from dagnet.ops import depthwise  # noqa: E402
from dagnet.ops.conv import conv_backward, conv_forward  # noqa: E402

SHAPE = (1, 28, 28)


def model(quick: bool):
    return mobilenet_v2(input_shape=SHAPE, width=0.25 if quick else 1.0)


def depthwise_convs(graph) -> dict:
    """{(C, H, W, stride): count} of the graph's grouped convs (all depthwise 3x3, pad 1)."""
    out = {}
    for n in graph:
        if n.op == "conv2d" and n.attrs.get("groups", 1) > 1:
            key = (*graph.shape_of(n.inputs[0]), n.attrs.get("stride", 1))
            out[key] = out.get(key, 0) + 1
    return out


def with_planes(enabled: bool, f):
    """f run with the planes kernel on or off (the dispatch reads the flag per call)."""
    def run():
        saved = depthwise.ENABLED
        depthwise.ENABLED = enabled
        try:
            return f()
        finally:
            depthwise.ENABLED = saved
    return run


def per_op(graph, batch: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    rows, totals = {}, {"fwd": {"new": 0.0, "old": 0.0}, "train": {"new": 0.0, "old": 0.0}}
    for (c, h, w, s), count in depthwise_convs(graph).items():
        x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        b = np.zeros(c, np.float32)

        def fwd():
            return conv_forward(x, wt, b, s, 1, groups=c)

        def train():
            out, cache = fwd()
            return conv_backward(out, cache)
        calls = {"fwd_new": with_planes(True, fwd), "fwd_old": with_planes(False, fwd),
                 "train_new": with_planes(True, train), "train_old": with_planes(False, train)}
        t = median_times(calls, repeats)
        key = f"{c}x{h}x{w}/s{s}"
        rows[key] = {"count": count, **{k + "_ms": v * 1e3 for k, v in t.items()},
                     "fwd_ratio_old_new": t["fwd_old"] / t["fwd_new"],
                     "train_ratio_old_new": t["train_old"] / t["train_new"]}
        for kind in ("fwd", "train"):
            for path in ("new", "old"):
                totals[kind][path] += count * t[f"{kind}_{path}"]
    return {"batch": batch, "shapes": rows,
            "net_fwd_ms": {k: v * 1e3 for k, v in totals["fwd"].items()},
            "net_train_ms": {k: v * 1e3 for k, v in totals["train"].items()},
            "net_fwd_ratio_old_new": totals["fwd"]["old"] / totals["fwd"]["new"],
            "net_train_ratio_old_new": totals["train"]["old"] / totals["train"]["new"]}


def group_width_sweep(batch: int, repeats: int) -> dict:
    """old / new train-op time of a 3x3 grouped conv, 64 channels at 14 x 14, per channels
    per group: where the planes stop paying (MAX_GROUP_CHANNELS)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 64, 14, 14)).astype(np.float32)
    out = {}
    for cg in (1, 2, 4, 8, 16, 32):
        g = 64 // cg
        w = rng.standard_normal((64, cg, 3, 3)).astype(np.float32)
        b = np.zeros(64, np.float32)

        def train(w=w, b=b, g=g):
            y, cache = conv_forward(x, w, b, 1, 1, groups=g)
            return conv_backward(y, cache)
        saved = depthwise.MAX_GROUP_CHANNELS
        depthwise.MAX_GROUP_CHANNELS = 64  # time the planes past the rule as well
        try:
            t = median_times({"new": with_planes(True, train), "old": with_planes(False, train)},
                             repeats)
        finally:
            depthwise.MAX_GROUP_CHANNELS = saved
        out[str(cg)] = t["old"] / t["new"]
    return out


def dw_share(plan, x, y) -> float:
    """The grouped convs' part of the profiled step time (forward + backward)."""
    times = plan.profile(x, y, repeats=3)
    total = sum(t["forward"] + t["backward"] for t in times.values())
    grouped = sum(t["forward"] + t["backward"] for s in plan.steps if s.name in times
                  and s.op_name == "conv2d" and s.attrs.get("groups", 1) > 1
                  for t in [times[s.name]])
    return grouped / total


def per_model(graph, batch: int, repeats: int, torch_ok: bool, quick: bool) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 10, batch)
    out = {}
    for mode in ("train", "eval"):
        plans = {}
        for enabled in (True, False):
            # the plan's workspaces are sized for the path chosen at compile time
            plans[enabled] = with_planes(enabled, lambda: dagnet.compile(
                graph, seed=0, mode=mode,
                outputs=None if mode == "train" else [graph.node("loss").inputs[0]]))()
        if mode == "train":
            calls = {"new": dagnet_stepper(plans[True], x, y), "old": dagnet_stepper(plans[False], x, y)}
        else:
            feeds = {"x": x}
            calls = {"new": lambda: plans[True].forward(feeds), "old": lambda: plans[False].forward(feeds)}
        t = median_times({k: with_planes(k == "new", f) for k, f in calls.items()}, repeats)
        row = {"new_img_s": batch / t["new"], "old_img_s": batch / t["old"],
               "ratio_new_old": t["old"] / t["new"]}
        if mode == "train":
            row["dw_share_new"] = with_planes(True, lambda: dw_share(plans[True], x, y))()
            row["dw_share_old"] = with_planes(False, lambda: dw_share(plans[False], x, y))()
        if torch_ok:
            torch_t = torch_own_process(batch, repeats, mode, quick)
            if torch_t:
                row["torch_img_s"] = torch_t["torch_img_s"]
                row["ratio_vs_torch"] = row["new_img_s"] / torch_t["torch_img_s"]
        out[mode] = row
    return out


def torch_own_process(batch: int, repeats: int, mode: str, quick: bool) -> dict:
    """{"torch_img_s"} of torch eager in a child process that loads torch first, without the
    environment dagnet set (torch's own thread defaults); {} if the child failed."""
    args = ["--torch-only", mode, "--batch", batch, "--repeats", repeats] + (["--quick"] if quick else [])
    out = child_json(__file__, args, True, 3600)
    return {} if "error" in out else out


def _torch_only(mode: str, batch: int, repeats: int, quick: bool) -> None:
    import torch

    have_torch()
    graph = model(quick)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 10, batch)
    plan = dagnet.compile(graph, seed=0)
    if mode == "train":
        step = torch_stepper(graph, plan, x, y)
    else:
        net = torch_module(graph, plan, state=plan.state, output=graph.node("loss").inputs[0])
        net.eval()
        feeds = {"x": torch.from_numpy(x)}

        def step():
            with torch.no_grad():
                net(feeds)
    t = median_times({"torch": step}, repeats)
    print(json.dumps({"torch_img_s": batch / t["torch"]}))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    ap.add_argument("--torch-only", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per contender")
    args = ap.parse_args(argv)
    if args.torch_only:
        return _torch_only(args.torch_only, args.batch, args.repeats, args.quick)
    repeats = args.repeats or (2 if args.quick else 9)
    graph = model(args.quick)
    torch_ok = have_torch()
    t0 = time.perf_counter()
    ops = per_op(graph, 4 if args.quick else 64, repeats)
    sweep = group_width_sweep(2 if args.quick else 64, repeats)
    models = {str(b): per_model(graph, b, repeats, torch_ok, args.quick)
              for b in ((2,) if args.quick else (8, 64))}
    big = models[max(models, key=int)]
    out = {"isa": depthwise.ISA, "per_op": ops, "channels_per_group_ratio_old_new": sweep,
           "mobilenet_v2": models, "torch": torch_ok,
           "summary": {"depthwise_train_op_ratio_old_new": ops["net_train_ratio_old_new"],
                       "mobilenet_train_ratio_new_old": big["train"]["ratio_new_old"],
                       "mobilenet_train_ratio_vs_torch": big["train"].get("ratio_vs_torch"),
                       "mobilenet_eval_ratio_vs_torch": big["eval"].get("ratio_vs_torch"),
                       "dw_share_old": big["train"]["dw_share_old"],
                       "dw_share_new": big["train"]["dw_share_new"]},
           "seconds": time.perf_counter() - t0}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
