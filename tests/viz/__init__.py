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
