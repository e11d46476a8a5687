"""Error cases of the shape ops (reshape, flatten, concat, slice, split, pad, tile, gather):
registered into the catalogue (tests/reliability/catalogue.py imports this module)."""
from __future__ import annotations

import numpy as np

from dagnet import Graph
from dagnet.errors import AttrError, FeedError, ShapeError
from tests.reliability.cases import case

#: the category the cases appear under in docs/errors.md
H = "shape ops (reshape, flatten, concat, slice, split, pad, tile, gather)"


@case("shape-reshape-copies-missing-axis", H, ShapeError,
      "a reshape's 0 (copy the input's size) at a position x has no axis for",
      "give the size there", "r (reshape, inputs u (2, 3))")
def _(tmp):
    g = Graph()
    g.reshape(g.input("u", (2, 3), batched=False), [0, 0, 0], name="r")


@case("shape-flatten-mixes-batch", H, ShapeError,
      "a flatten of a batched value at an axis other than 1 (it would mix the examples)",
      "flatten at axis 1, or reshape each example", "f (flatten, inputs x (N, 3, 4))")
def _(tmp):
    g = Graph()
    g.flatten(g.input("x", (3, 4)), axis=2, name="f")


@case("shape-concat-batched-and-not", H, ShapeError,
      "a concat of a batched value and one without the batch axis",
      "join batched values with batched ones (expand the other first)", "c (concat")
def _(tmp):
    g = Graph()
    g.concat(g.input("x", (3,)), g.input("u", (2, 3), batched=False), axis=1, name="c")


@case("shape-slice-batch-axis", H, ShapeError, "a slice, split, pad, tile or gather along the "
      "batch axis of a batched value (the batch size is not known when the graph is built)",
      "work on the axes of each example (1 and up)", "s (slice, inputs x (N, 5))")
def _(tmp):
    g = Graph()
    g.slice(g.input("x", (5,)), starts=[0], ends=[2], axes=[0], name="s")


@case("shape-slice-lengths", H, AttrError,
      "a slice whose starts, ends, axes and steps differ in length (or hold a step 0)",
      "give one entry per sliced axis in each; steps are non-zero", "s (slice")
def _(tmp):
    g = Graph()
    g.slice(g.input("x", (5, 4)), starts=[0, 1], ends=[2], axes=[1], name="s")


@case("shape-split-sizes", H, ShapeError,
      "a split whose sizes do not sum to the axis (or parts that leave the last one empty)",
      "make the sizes sum to the axis's size", "s.0 (split")
def _(tmp):
    g = Graph()
    g.split(g.input("x", (5, 4)), sizes=[2, 2], axis=1, name="s")


@case("shape-pad-reflect-too-far", H, ShapeError,
      "a reflect pad wider than the mirrored positions (n - 1), or pads that crop everything",
      "pad at most n - 1 there, or use mode edge", "p (pad, inputs x (N, 3, 4))")
def _(tmp):
    g = Graph()
    g.pad(g.input("x", (3, 4)), pads=[3, 0], axes=[1], mode="reflect", name="p")


@case("shape-tile-repeats", H, AttrError,
      "a tile whose repeats do not give one number per axis", "one repeat per axis of x, 1 for "
      "the batch axis", "t (tile")
def _(tmp):
    g = Graph()
    g.tile(g.input("x", (3,)), repeats=[2], name="t")


@case("shape-gather-batched-indices", H, ShapeError,
      "batched indices gathering along an axis other than 0, or from a batched x (the batch "
      "axis would land inside the result)", "look batched indices up in an unbatched x along "
      "axis 0", "ga (gather")
def _(tmp):
    g = Graph()
    g.gather(g.input("x", (5, 4)), g.input("i", (3,), dtype="int64"), axis=1, name="ga")


@case("shape-gather-index-range", H, FeedError, "a gather index outside the axis it picks from "
      "(found when the batch runs)", "give indices in -n..n-1", "'ga' (gather): index 9")
def _(tmp):
    import dagnet

    g = Graph()
    table = g.input("t", (4, 2), batched=False)
    g.outputs = [g.gather(table, g.input("i", (3,), dtype="int64"), name="ga")]
    plan = dagnet.compile(g)
    plan.forward({"t": np.zeros((4, 2), np.float32), "i": np.array([[0, 9, 1]], np.int64)})


@case("shape-onnx-split-batch", H, ShapeError,
      "an ONNX Split (Slice, Pad, Gather, ...) along the batch axis of a batched input",
      "load the input unbatched (load(..., unbatched=[name])), or split another axis",
      "a (split, inputs x (N, 4))")
def _(tmp):
    from onnx import TensorProto, helper

    from dagnet.onnx import load

    f = TensorProto.FLOAT
    graph = helper.make_graph([helper.make_node("Split", ["x"], ["a", "b"], axis=0)], "m",
                              [helper.make_tensor_value_info("x", f, ["N", 4])],
                              [helper.make_tensor_value_info(k, f, None) for k in "ab"])
    load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
