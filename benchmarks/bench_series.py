"""Scaling series (issue 18 item 4): prints one JSON object and draws benchmarks/plots/series.png.

Images/s against the batch size (1 to 512) for LeNet and resnet_small, training steps (dagnet's
fused plan, torch eager) and inference (dagnet's eval plan, onnxruntime, torch eager), and
against the depth of convnet_deep (1 to 5 blocks of 16 filters on 1x32x32, batch 32), training
and inference; every contender in a process of its own (torch with its own thread defaults, as
bench_train's and bench_infer's headline figures), the same weights, float32. Each point is the
median of repeats sized to ~1.5 s of work; the contenders run one after another, not
alternating, so they feel the machine's drift apart: read the curves' shapes and the ratios at
each point, and bench_train / bench_infer (alternating, medians) for the headline ratios.

    python benchmarks/bench_series.py [--quick] [--plots benchmarks/plots]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # bench_train's and bench_infer's runners, also in the children

import dagnet  # noqa: E402  (before numpy: it tunes OpenBLAS's threads, dagnet/procenv.py)
import numpy as np  # noqa: E402

from bench_infer import have_ort, make_runner  # noqa: E402
from bench_train import (child_json, dagnet_stepper, have_torch, median_times, ratio,  # noqa: E402
                         torch_stepper)
from dagnet import models as zoo  # noqa: E402

BATCHES = (1, 4, 16, 64, 256, 512)
DEPTHS = (1, 2, 3, 4, 5)  # each block halves H and W: 32x32 allows 5
DEPTH_BATCH = 32
FAMILIES = {  # name -> x -> (graph, per-example input shape, batch)
    "lenet": lambda b: (zoo.lenet(), (1, 28, 28), b),
    "resnet_small": lambda b: (zoo.resnet_small(), (1, 28, 28), b),
    "convnet_deep": lambda d: (zoo.convnet_deep(input_shape=(1, 32, 32), n=d, m=1, filters=16),
                               (1, 32, 32), DEPTH_BATCH),
}
CONTENDERS = {"train": ("dagnet", "torch"), "infer": ("dagnet", "onnxruntime", "torch")}


def runner(contender: str, task: str, graph, shape, batch: int, folder: str):
    """A no-argument callable doing one training step or one inference of a batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    plan = dagnet.compile(graph, seed=0)
    if task == "train":
        y = rng.integers(0, 10, batch)
        if contender == "dagnet":
            return dagnet_stepper(plan, x, y)
        return torch_stepper(graph, plan, x, y)
    scores = graph.losses[0].inputs[0]
    run = make_runner(contender, graph, scores, plan.params, plan.state, folder)
    return lambda: run(x)


def _child(contender: str, task: str, family: str, xs, budget: float) -> None:
    """img/s of one contender at each x of one family, in this (fresh) process."""
    if contender == "torch":
        have_torch()
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for x in xs:
            graph, shape, batch = FAMILIES[family](x)
            step = runner(contender, task, graph, shape, batch, folder)
            step()
            t = time.perf_counter()
            step()
            once = time.perf_counter() - t
            repeats = int(min(21, max(3, budget / max(once, 1e-6))))
            out[str(x)] = batch / median_times({contender: step}, repeats, warmup=1)[contender]
    print(json.dumps(out))


def own_process(contender: str, task: str, family: str, xs, budget: float) -> dict:
    """_child's figures from a fresh process ({"error": ...} if it failed); torch imported
    first there, with the environment without what dagnet set (its own thread defaults)."""
    return child_json(__file__, ["--child", contender, task, family, "--xs", *xs, "--budget", budget],
                      contender == "torch", 3600)


def series(task: str, family: str, xs, budget: float, available: set) -> dict:
    """{contender: [img/s per x]} and the ratios dagnet / contender per x."""
    got = {c: own_process(c, task, family, xs, budget) for c in CONTENDERS[task] if c in available}
    out = {"x": list(xs), "img_s": {}, "ratio_of_dagnet_to": {}, "errors": {}}
    for c, r in got.items():
        if "error" in r:
            out["errors"][c] = r["error"]
            continue
        out["img_s"][c] = [r[str(x)] for x in xs]
    for c, v in out["img_s"].items():
        if c != "dagnet" and "dagnet" in out["img_s"]:
            out["ratio_of_dagnet_to"][c] = [ratio(d, o) for d, o in zip(out["img_s"]["dagnet"], v)]
    return out


def plot(results: dict, path: str) -> str:
    from matplotlib.figure import Figure

    panels = [k for k in results if results[k]["img_s"]]
    fig = Figure(figsize=(5.5 * 2, 4 * ((len(panels) + 1) // 2)), dpi=100)
    axes = fig.subplots((len(panels) + 1) // 2, 2, squeeze=False).ravel()
    styles = {"dagnet": "o-", "torch": "s--", "onnxruntime": "^:"}
    for ax, key in zip(axes, panels):
        task, family = key.split(":")
        r = results[key]
        for c, v in r["img_s"].items():
            ax.plot(r["x"], v, styles.get(c, "o-"), label=c)
        depth = family == "convnet_deep"
        ax.set(xscale="linear" if depth else "log", yscale="log", ylabel="images / s",
               xlabel=f"blocks (batch {DEPTH_BATCH})" if depth else "batch size",
               title=f"{family}, {'training step' if task == 'train' else 'inference'}")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    return path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    ap.add_argument("--plots", default=os.path.join(HERE, "plots"), help="where series.png goes")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--xs", type=int, nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, default=1.5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(*args.child, args.xs, args.budget)
    available = {"dagnet"} | ({"torch"} if have_torch() else set()) | ({"onnxruntime"} if have_ort() else set())
    batches, depths, budget = ((1, 4), (1, 2), 0.05) if args.quick else (BATCHES, DEPTHS, 1.5)
    panels = [(t, f) for t in ("train", "infer") for f in ("lenet", "resnet_small", "convnet_deep")]
    if args.quick:  # one panel of each kind
        panels = [("train", "lenet"), ("infer", "lenet"), ("train", "convnet_deep")]
    results = {f"{t}:{f}": series(t, f, depths if f == "convnet_deep" else batches, budget, available)
               for t, f in panels}
    report = {"quick": args.quick, "series": results, "load_average": os.getloadavg(),
              "plot": plot(results, os.path.join(args.plots, "series.png"))}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
