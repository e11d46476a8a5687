"""Graphs and file checks shared by the viz tests (built with the builder API)."""
from __future__ import annotations

import shutil
import struct
import xml.etree.ElementTree as ET

import pytest

from dagnet import Graph

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def lenet(classes: int = 10) -> Graph:
    """LeNet-5-like: two conv-relu-pool stages, two affine layers, a softmax loss."""
    g = Graph("lenet")
    x = g.input("x", (1, 28, 28))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, 20, 5, name="conv1"), name="relu1"), 2, name="pool1")
    h = g.max_pool2d(g.relu(g.conv2d(h, 50, 5, name="conv2"), name="relu2"), 2, name="pool2")
    h = g.relu(g.affine(h, 500, name="fc1"), name="relu3")
    g.softmax_cross_entropy(g.affine(h, classes, name="fc2"), y)
    return g


def resnet(blocks: int = 8, channels: int = 4, hw: int = 8) -> Graph:
    """A stem, `blocks` identical residual blocks named b1..bN, pooling and a classifier."""
    g = Graph("resnet")
    x = g.input("x", (3, hw, hw))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.batchnorm(g.conv2d(x, channels, 3, pad=1, name="stem"), name="stem_bn"), name="stem_relu")
    for b in range(1, blocks + 1):
        r = g.relu(g.batchnorm(g.conv2d(h, channels, 3, pad=1, name=f"b{b}.conv1"), name=f"b{b}.bn1"),
                   name=f"b{b}.relu1")
        r = g.batchnorm(g.conv2d(r, channels, 3, pad=1, name=f"b{b}.conv2"), name=f"b{b}.bn2")
        h = g.relu(g.add(r, h, name=f"b{b}.add"), name=f"b{b}.relu2")
    g.softmax_cross_entropy(g.affine(g.global_avg_pool(h, name="gap"), 3, name="fc"), y)
    return g


def svg_groups(path, kind: str) -> list[str]:
    """The <title> of every <g class=kind> element of an SVG (node titles are node ids)."""
    root = ET.parse(path).getroot()
    return [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == kind]


def svg_text(path) -> str:
    """All the text drawn in an SVG, one string per <text> element, joined by newlines."""
    root = ET.parse(path).getroot()
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; asserts the PNG signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _bezier_points(pos: str, samples: int = 12) -> list[tuple[float, float]]:
    """Points along an edge from its `pos` spline (graphviz json: 'e,x,y p0 p1 p2 p3 ...',
    cubic Bezier control points), the arrowhead's line to the end point included."""
    ends, ctrl = [], []
    for tok in pos.split():
        if tok.startswith(("e,", "s,")):
            ends.append(tuple(map(float, tok[2:].split(","))))
        else:
            ctrl.append(tuple(map(float, tok.split(","))))
    pts = []
    for i in range(0, len(ctrl) - 3, 3):
        p0, p1, p2, p3 = ctrl[i:i + 4]
        for k in range(samples + 1):
            t = k / samples
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            pts.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                        a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    for end in ends:  # the arrowhead: a straight line from the last control point
        near = ctrl[-1] if end in ends[-1:] else ctrl[0]
        pts += [(near[0] + (end[0] - near[0]) * k / 4, near[1] + (end[1] - near[1]) * k / 4) for k in range(5)]
    return pts


def crossed_titles(dot) -> list[tuple[str, str]]:
    """(cluster, edge) pairs where a visible edge runs through a cluster's title, from graphviz's
    own layout (`dot -Tjson`): the cluster label's box, or a title node's box (id 'title/...')."""
    import json

    layout = json.loads(dot.pipe(format="json"))
    objects = layout.get("objects", [])
    boxes = {}
    for o in objects:
        if o["name"].startswith("cluster") and "lp" in o:
            x, y = map(float, o["lp"].split(","))
            w, h = float(o["lwidth"]) * 72, float(o["lheight"]) * 72
            boxes[o["name"]] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        elif o["name"].startswith("title/") and "pos" in o:
            x, y = map(float, o["pos"].split(","))
            w, h = float(o["width"]) * 72, float(o["height"]) * 72
            boxes[o["name"]] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
    out = []
    for e in layout.get("edges", []):
        if e.get("style") == "invis" or "pos" not in e:
            continue
        name = f"{objects[e['tail']]['name']}->{objects[e['head']]['name']}"
        pts = _bezier_points(e["pos"])
        for key, (x0, y0, x1, y1) in boxes.items():
            if any(x0 <= px <= x1 and y0 <= py <= y1 for px, py in pts):
                out.append((key, name))
    return out
