"""Generic elementwise fusion A/B: prints one JSON object.

The same graphs compiled with the elementwise grouping on and off (compiler/fuse.py ELEMENTWISE;
the hand-written patterns fire in both), timed in one process with the runs alternating after
warm-up; medians, and ratios off/on (above 1: the grouping is faster). Covers the zoo models
it changes (resnet_small, resnet20: add+relu in eval; in train the registered batchnorm+add+relu
takes their residual joins, ops/fused.py), one it must
leave alone (lenet), chains at sizes from 16 to 65,536 elements per example (bias-add+gelu,
residual add+relu, batchnorm+relu in eval, a 4-op tanh-GELU), and compile time.

    python benchmarks/bench_fusion_ab.py [--quick]
"""
from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time

import dagnet  # before numpy: it tunes OpenBLAS's threads (dagnet/procenv.py)
import numpy as np

from bench_plan import chain_graph, residual_graph
from dagnet import Graph
from dagnet.models import lenet, resnet20, resnet_small

fuse_module = importlib.import_module("dagnet.compiler.fuse")


def compile_ab(graph, **kw) -> dict:
    """{"on": plan, "off": plan}: the same params, the grouping on and off."""
    saved = fuse_module.ELEMENTWISE
    try:
        fuse_module.ELEMENTWISE = True
        on = dagnet.compile(graph, seed=0, **kw)
        fuse_module.ELEMENTWISE = False
        off = dagnet.compile(graph, seed=0, params=on.params, state=on.state, **kw)
    finally:
        fuse_module.ELEMENTWISE = saved
    return {"on": on, "off": off}


def alternate(calls: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds per callable, runs alternating (the VM's speed drifts)."""
    for f in calls.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in calls}
    for _ in range(repeats):
        for k, f in calls.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def ab(graph, feeds: dict, mode: str, repeats: int) -> dict:
    outputs = None if mode == "train" else [graph.node("loss").inputs[0]]  # eval: the scores
    plans = compile_ab(graph, mode=mode, outputs=outputs)
    if mode == "train":
        calls = {k: (lambda p=p: p.loss_and_grads(feeds)) for k, p in plans.items()}
    else:
        calls = {k: (lambda p=p: p.forward(feeds)) for k, p in plans.items()}
    t = alternate(calls, repeats)
    steps = {k: sum(1 for s in p.steps if s.pattern and s.pattern.startswith("elementwise("))
             for k, p in plans.items()}
    return {"on_s": t["on"], "off_s": t["off"], "ratio_off_on": t["off"] / t["on"],
            "generic_steps": steps["on"]}


def chain(kind: str, elements: int) -> Graph:
    """One chain on a batch of (elements,) or (C, H, W) values, ending in a loss."""
    g = Graph(kind)
    y = g.input("y", (), dtype="int64")
    if kind == "bn_relu":  # batchnorm (eval: an affine map per channel) + relu on (C, H, W)
        hw = max(1, int(round((elements / 16) ** 0.5)))
        h = g.relu(g.batchnorm(g.input("x", (16, hw, hw)), name="bn"), name="r")
    else:
        x = g.input("x", (elements,))
        if kind == "bias_gelu":
            h = g.gelu(g.add(x, g.param("b", (elements,), init="ones"), name="bias"), name="act")
        elif kind == "add_relu":
            h = g.relu(g.add(g.tanh(x, name="t"), x, name="sum"), name="r")
        else:  # tanh-GELU written out: 0.5 x (1 + tanh(c (x + 0.044715 x^3)))
            t = g.tanh(g.mul(g.add(x, g.mul(g.pow(x, 3.0, name="cube"), 0.044715, name="k"),
                                   name="inner"), 0.7978845608, name="c"), name="t")
            h = g.mul(g.mul(x, 0.5, name="half"), g.add(t, 1.0, name="one"), name="gelu")
    g.softmax_cross_entropy(g.sum(h, axes=[-1], keepdims=True, name="pool")
                            if kind != "bn_relu" else g.global_avg_pool(h, name="pool"), y)
    return g


def feeds_for(graph, batch, rng):
    x = next(n for n in graph.inputs if n.name == "x")
    return {"x": rng.standard_normal((batch,) + tuple(x.attrs["shape"])).astype(np.float32),
            "y": np.zeros(batch, dtype=np.int64)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = ap.parse_args(argv)
    repeats, batch = (3, 4) if args.quick else (31, 64)
    rng = np.random.default_rng(0)
    models = {"lenet": (lenet(), (1, 28, 28), batch), "resnet_small": (resnet_small(), (1, 28, 28), batch),
              "resnet20": (resnet20(), (3, 32, 32), min(batch, 16))}
    out = {"quick": args.quick, "models": {}, "chains": {}, "compile": {}}
    for name, (g, shape, b) in models.items():
        feeds = {"x": rng.standard_normal((b,) + shape).astype(np.float32),
                 "y": rng.integers(0, 10, b)}
        for mode in ("train", "eval"):
            f = feeds if mode == "train" else {"x": feeds["x"]}
            r = repeats if name != "resnet20" else max(3, repeats // 3)
            out["models"][f"{name}.{mode}"] = dict(ab(g, f, mode, r), batch=b)
    for kind in ("bias_gelu", "add_relu", "bn_relu", "gelu_tanh_ops"):
        for elements in ((16, 4096) if args.quick else (16, 256, 4096, 65536)):
            g = chain(kind, elements)
            feeds = feeds_for(g, batch, rng)
            for mode in ("train", "eval"):
                f = feeds if mode == "train" else {"x": feeds["x"]}
                out["chains"][f"{kind}.{elements}.{mode}"] = ab(g, f, mode, repeats)
    for name, g in (("chain_1000", chain_graph(1000)), ("residual_1000", residual_graph(1000))):
        out["compile"][name] = alternate({k: (lambda on=on: compile_ab_one(g, on)) for k, on in
                                          (("on", True), ("off", False))}, max(3, repeats // 4), 1)
    out["summary"] = {k: round(v["ratio_off_on"], 3) for part in ("models", "chains")
                      for k, v in out[part].items()}
    print(json.dumps(out, indent=2))
    return out


def compile_ab_one(graph, on: bool):
    saved = fuse_module.ELEMENTWISE
    try:
        fuse_module.ELEMENTWISE = on
        return dagnet.compile(graph, outputs=graph.outputs)
    finally:
        fuse_module.ELEMENTWISE = saved


if __name__ == "__main__":
    main()
