"""The explorer's speed: prints one JSON object.

Python side: seconds to build the page (compile and param init included) of LeNet,
resnet_small, a chain of 1,000 ops, the zoo's ResNet-50 (not in --quick) and (with torch and onnx installed, not in --quick) a ResNet-50 written in torch,
exported to ONNX and imported (random weights: the architecture is what the page shows), and
Graphviz's `dot` on the chain (what a static layout of it would cost). Browser
side (headless Chromium, the [browser] extra): for each page, the open time (navigation to the
explorer's first picture, in the page's own clock, and wall time as Playwright sees it), then on
the chain the time to unfold all 1,000 ops (relayout and redraw) and to find and show a node
deep inside the folded run. Medians over alternating rounds (this VM's speed drifts).

    python benchmarks/bench_explorer.py [--quick] [--rounds N]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import tempfile
import time

import dagnet  # before numpy: it tunes OpenBLAS's threads (dagnet/procenv.py)
from dagnet import Graph
from dagnet.models import get_model
from dagnet.viz import render_graph
from dagnet.viz.html import browser, explorer_html, write_html


def chain(blocks: int) -> Graph:
    g = Graph("chain")
    h = g.input("x", (16,))
    for i in range(blocks):
        h = g.relu(g.affine(h, 16, name=f"l{i}.fc"), name=f"l{i}.relu")
    g.softmax_cross_entropy(h, g.input("y", (), dtype="int64"), name="loss")
    return g


def resnet50():
    """ResNet-50 (bottleneck blocks 3-4-6-3, 25.6M params) from torch through ONNX, with a loss;
    None without torch or onnx."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None:
        return None
    import torch
    from torch import nn

    from dagnet import onnx

    class Bottleneck(nn.Module):
        def __init__(self, cin, mid, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
            self.c2, self.b2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid)
            self.c3, self.b3 = nn.Conv2d(mid, 4 * mid, 1, bias=False), nn.BatchNorm2d(4 * mid)
            self.down = (nn.Sequential(nn.Conv2d(cin, 4 * mid, 1, stride, bias=False), nn.BatchNorm2d(4 * mid))
                         if stride != 1 or cin != 4 * mid else None)

        def forward(self, x):
            h = torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))
            return torch.relu(self.b3(self.c3(h)) + (x if self.down is None else self.down(x)))

    layers, cin = [], 64
    for mid, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(n):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
            cin = 4 * mid
    model = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.MaxPool2d(3, 2, 1), *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2048, 1000)).eval()
    path = os.path.join(tempfile.mkdtemp(prefix="bench_explorer_"), "resnet50.onnx")
    import contextlib, io, warnings  # noqa: E401

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), path, dynamo=False, input_names=["x"],
                          output_names=["scores"], dynamic_axes={"x": {0: "N"}, "scores": {0: "N"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    graph, params, state = onnx.load(path)
    graph.softmax_cross_entropy("scores", graph.input("y", (), dtype="int64"))
    return graph, params, state


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a 100-op chain, 1 round (for the tests)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    blocks, rounds = (50, 1) if args.quick else (500, args.rounds)
    graphs = {"lenet": (get_model("lenet"), None, None), "resnet_small": (get_model("resnet_small"), None, None),
              "chain": (chain(blocks), None, None)}
    if not args.quick:
        graphs["resnet50_zoo"] = (get_model("resnet50"), None, None)
    imported = None if args.quick else resnet50()
    if imported:
        graphs["resnet50_onnx"] = imported
    out = {"ops_in_chain": 2 * blocks, "build_s": {}, "page_kb": {}}
    folder = tempfile.mkdtemp(prefix="bench_explorer_")
    pages = {}
    for name, (g, params, state) in graphs.items():
        html, seconds = timed(lambda: explorer_html(dagnet.compile(g, params=params, state=state)))
        out["build_s"][name] = round(seconds, 3)
        out["page_kb"][name] = round(len(html) / 1024)
        pages[name] = write_html(html, os.path.join(folder, f"{name}.html"))
    _, out["dot_chain_s"] = timed(lambda: render_graph(graphs["chain"][0], blocks=None).pipe(format="svg"))
    out["dot_chain_s"] = round(out["dot_chain_s"], 3)
    why = browser.missing()
    if why:
        out["browser"] = f"not measured: {why}"
        print(json.dumps(out))
        return
    opened = {name: {"ready_ms": [], "wall_s": []} for name in pages}
    unfold, find = [], []
    with browser.chromium() as b:
        for _ in range(rounds):
            for name, path in pages.items():  # alternating pages, round after round
                t = time.perf_counter()
                page, watch = browser.open_page(b, path)
                opened[name]["wall_s"].append(time.perf_counter() - t)
                opened[name]["ready_ms"].append(page.evaluate("window.__dagnet.readyAt"))
                if name == "chain":
                    page.click("#expand-all")
                    unfold.append(page.evaluate("window.__dagnet.lastRenderMs"))
                    page.click("#collapse-all")
                    t = time.perf_counter()
                    page.fill("#search", f"l{blocks * 4 // 5}.relu")
                    page.press("#search", "Enter")
                    page.locator("#details h2").wait_for()
                    find.append(time.perf_counter() - t)
                assert not watch.errors and not watch.requests, (watch.errors, watch.requests)
                page.close()
    med = statistics.median
    out["browser"] = {name: {"open_ms_in_page": round(med(v["ready_ms"])), "open_s_wall": round(med(v["wall_s"]), 3)}
                      for name, v in opened.items()}
    out["chain_unfold_all_ms"] = round(med(unfold))
    out["chain_find_deep_node_s"] = round(med(find), 3)
    out["rounds"] = rounds
    print(json.dumps(out))


if __name__ == "__main__":
    main()
