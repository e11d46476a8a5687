"""The error catalogue: one case per user-facing failure, each a function that makes the mistake.

tests/reliability/test_errors.py runs every case (the error must be the documented DagnetError
subclass, one line, naming where); docs/errors.md is generated from the messages these cases
really produce:

    python -m tests.reliability.catalogue > docs/errors.md
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
import sys
import tempfile
import zipfile
from unittest import mock

import numpy as np

import dagnet
from dagnet import Graph
from dagnet.cli.common import UsageError
from dagnet.errors import (AttrError, CheckpointError, CycleError, DagnetError, DatasetError,
                           DTypeError, FeedError, FusionMismatchError, GraphError, RunFolderError,
                           ShapeError, SpecError, TrainingError, UnknownOpError)
from dagnet.spec import graph_from_spec, load_spec
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from tests.reliability.cases import CASES, Case, X, case, mlp_plan, quiet_solver
from tests.reliability.helpers import tiny_convnet, tiny_data, tiny_mlp, write_idx


def seq(*layers, **top):
    return {"name": "t", "input": {"shape": [1, 8, 8]}, "layers": list(layers), **top}


def general(*nodes, **top):
    return {"name": "t", "nodes": [{"name": "x", "op": "input", "shape": [2, 8, 8]}, *nodes], **top}


# -- spec files -----------------------------------------------------------------------------
S = "spec files"


@case("spec-not-yaml", S, SpecError, "spec text or file that is not YAML",
      "fix the syntax at the line and column given", "line 1")
def _(tmp):
    graph_from_spec("name: [unclosed")


@case("spec-not-json", S, SpecError, "a .json spec file that is not JSON",
      "fix the JSON (double quotes, no trailing commas)", "bad.json")
def _(tmp):
    (tmp / "bad.json").write_text("{'single': 'quotes'}")
    load_spec(tmp / "bad.json")


@case("spec-not-mapping", S, SpecError, "the top level is not a mapping",
      "write `name:`, `input:` and `layers:` (or `nodes:`) at the top level", "spec")
def _(tmp):
    graph_from_spec("- just\n- a list")


@case("spec-file-missing", S, SpecError, "the spec path does not exist", "check the path",
      "missing.yaml")
def _(tmp):
    graph_from_spec(str(tmp / "missing.yaml"))


@case("spec-extension", S, SpecError, "a spec file with another extension",
      "name it .yaml, .yml or .json", "spec.txt")
def _(tmp):
    (tmp / "spec.txt").write_text("name: t")
    load_spec(tmp / "spec.txt")


@case("spec-unknown-key", S, SpecError, "a misspelt or unsupported key",
      "use the suggested key; the message lists the allowed ones", "layers[0]")
def _(tmp):
    graph_from_spec(seq({"type": "conv", "num_filtres": 20, "filter_size": 5}))


@case("spec-duplicate-key", S, SpecError, "the same key twice in one YAML/JSON mapping",
      "keep one of them (YAML would silently keep the last)", "line 2")
def _(tmp):
    graph_from_spec("input: {shape: [1, 8, 8]}\ninput: {shape: [1, 4, 4]}\nlayers: [{type: relu}]")


@case("spec-wrong-type", S, SpecError, "a value of the wrong type (here a quoted number)",
      "write the value as the message says (numbers unquoted, 1.0e-5 not 1e-5 in YAML)",
      "layers[0].num_filters")
def _(tmp):
    graph_from_spec(seq({"type": "conv", "num_filters": "20", "filter_size": 5}))


@case("spec-negative-size", S, SpecError, "a zero or negative size", "give a positive size",
      "layers[0].num_filters")
def _(tmp):
    graph_from_spec(seq({"type": "conv", "num_filters": -2, "filter_size": 5}))


@case("spec-zero-input-dim", S, SpecError, "an input shape with a zero dimension",
      "give the per-example shape, positive sizes only", "input.shape")
def _(tmp):
    graph_from_spec({"input": {"shape": [0, 28, 28]}, "layers": [{"type": "relu"}]})


@case("spec-unknown-layer", S, SpecError, "an unknown layer type (sequential form)",
      "use the suggested type; the message lists them all", "layers[0].type")
def _(tmp):
    graph_from_spec(seq({"type": "rleu"}))


@case("spec-unknown-op", S, SpecError, "an unknown op (general form)",
      "use the suggested op; the message lists them all", "nodes[1] (h).op")
def _(tmp):
    graph_from_spec(general({"name": "h", "op": "cnov2d", "inputs": ["x"]}))


@case("spec-missing-key", S, SpecError, "a required key is missing",
      "add the key (its aliases are listed)", "layers[0]")
def _(tmp):
    graph_from_spec(seq({"type": "conv", "filter_size": 3}))


@case("spec-missing-inputs", S, SpecError, "a general-form op node without `inputs`",
      "list the node's inputs", "nodes[1] (h)")
def _(tmp):
    graph_from_spec(general({"name": "h", "op": "relu"}))


@case("spec-dangling-input", S, SpecError, "an input names no node",
      "fix the name (the closest one is suggested)", "nodes[1] (h).inputs[0]")
def _(tmp):
    graph_from_spec(general({"name": "h", "op": "relu", "inputs": ["xx"]}))


@case("spec-duplicate-name", S, SpecError, "two nodes with one name", "rename one of them",
      "nodes[1] (x).name")
def _(tmp):
    graph_from_spec(general({"name": "x", "op": "relu", "inputs": ["x"]}))


@case("spec-shape-cannot-work", S, ShapeError, "a kernel larger than its input",
      "use a smaller kernel or pad, as the message computes", "layers[0]: conv1")
def _(tmp):
    graph_from_spec(seq({"type": "conv", "num_filters": 2, "filter_size": 9}, loss="none"))


@case("spec-stride-does-not-tile", S, ShapeError, "a stride that does not tile the input",
      "use the pad or stride the message suggests, or floor: true", "layers[0]: conv1")
def _(tmp):
    graph_from_spec(seq({"type": "conv", "num_filters": 2, "filter_size": 2, "stride": 4},
                        loss="none"))


@case("spec-absurd-size", S, ShapeError, "a size no machine can hold (a typo such as extra zeros)",
      "check the size", "layers[0]: fc1.w")
def _(tmp):
    graph_from_spec(seq({"type": "fc", "hidden": 10 ** 13}, {"type": "fc", "hidden": 3}))


@case("spec-absurd-window", S, SpecError, "a size, stride or pad larger than any image",
      "check the value", "layers[0].stride")
def _(tmp):
    graph_from_spec(seq({"type": "conv", "num_filters": 2, "filter_size": 3, "stride": 10 ** 9},
                        loss="none"))


@case("spec-bad-attr-value", S, AttrError, "an attr value the op cannot take",
      "keep pad at most half the window", "layers[0]: pool1")
def _(tmp):
    graph_from_spec(seq({"type": "pool", "size": 2, "pad": 2}, loss="none"))


@case("spec-python-tag", S, SpecError, "a YAML tag that would build Python objects (!!python/...)",
      "specs are plain data: remove the tag", "python/object/apply:os.system")
def _(tmp):
    graph_from_spec("name: !!python/object/apply:os.system ['echo pwned']\n"
                    "input: {shape: [1, 8, 8]}\nlayers: [{type: relu}]\n")


@case("spec-too-deep", S, SpecError, "text nested thousands of levels deep", "give a real spec",
      "spec text")
def _(tmp):
    graph_from_spec("[" * 100000)


# -- graphs -----------------------------------------------------------------------------------
G = "graphs (builder and compiler)"


@case("graph-cycle", G, CycleError, "the graph has a cycle", "remove one of the printed edges",
      "cycle: ")
def _(tmp):
    g = Graph("loop")
    g.input("x", (3,))
    g.add_node("relu", ["b"], name="a")
    g.add_node("add", ["a", "x"], name="b")
    dagnet.compile(g)


@case("graph-dangling-input", G, GraphError, "a node reads a value no node makes",
      "add the missing node or fix the name", "r: input 0")
def _(tmp):
    g = Graph()
    g.input("x", (3,))
    g.add_node("relu", ["nope"], name="r")
    dagnet.compile(g)


@case("graph-unknown-op", G, UnknownOpError, "add_node with an op that is not registered",
      "use the suggested op", "unknown op 'rleu'")
def _(tmp):
    Graph().add_node("rleu", ["x"])


@case("graph-arity", G, GraphError, "an op gets too many or too few inputs",
      "give the listed inputs", "r: op 'relu'")
def _(tmp):
    g = Graph()
    g.input("x", (3,))
    g.add_node("relu", ["x", "x"], name="r")
    dagnet.compile(g)


@case("graph-duplicate-name", G, GraphError, "a builder call reuses a name", "choose another name",
      "'x'")
def _(tmp):
    g = Graph()
    g.input("x", (3,))
    g.input("x", (4,))


@case("graph-shape-mismatch", G, ShapeError, "shapes that do not fit (channels)",
      "give w the shape the message computes", "conv2 (conv2d")
def _(tmp):
    g = Graph()
    x = g.input("x", (1, 8, 8))
    g.conv2d(x, 4, 3, name="conv1")
    g.param("w2", (4, 3, 3, 3))
    g.param("b2", (4,))
    g.add_node("conv2d", ["conv1", "w2", "b2"], {"stride": 1, "pad": 0}, name="conv2")
    dagnet.compile(g, outputs=["conv2"])


@case("graph-groups-do-not-divide", G, ShapeError,
      "a grouped conv whose groups do not divide its channels or filters",
      "use the divisor the message suggests (groups = channels: depthwise)", "conv2d: groups=4")
def _(tmp):
    g = Graph()
    g.conv2d(g.input("x", (6, 8, 8)), 8, 3, groups=4, name="dw")


@case("graph-dilated-kernel-too-large", G, ShapeError,
      "a dilated kernel that spans more than the padded input",
      "a smaller dilation or kernel, or the pad the message computes", "dilated kernel 3x3")
def _(tmp):
    g = Graph()
    g.conv2d(g.input("x", (1, 6, 6)), 2, 3, dilation=3, name="atrous")


@case("graph-output-padding", G, AttrError,
      "conv_transpose's output_padding not below its stride (or dilation)",
      "give output_padding < stride: it picks one of the sizes a strided conv maps back",
      "up (conv_transpose")
def _(tmp):
    g = Graph()
    g.conv_transpose(g.input("x", (2, 4, 4)), 3, 3, stride=2, output_padding=2, name="up")


@case("graph-resize-scale-and-size", G, AttrError, "a resize given both a scale and a size "
      "(or neither)", "give exactly one", "resize: give exactly one of scale and size")
def _(tmp):
    g = Graph()
    g.resize(g.input("x", (2, 4, 4)), scale=2, size=(8, 8), name="up")


@case("graph-param-as-data", G, ShapeError, "a param where a batched value belongs",
      "feed the op from an input or an op", "r: op 'max_pool2d' input 0")
def _(tmp):
    g = Graph()
    g.input("x", (3,))
    g.param("w", (3, 2))
    g.add_node("max_pool2d", ["w"], {"size": 2}, name="r")
    dagnet.compile(g, outputs=["r"])


@case("graph-int-input-as-data", G, DTypeError, "an integer input feeds an op that needs floats",
      "declare the input float32 (only index ports: a loss's labels, indices take integers)", "r: op 'relu'")
def _(tmp):
    g = Graph()
    g.input("x", (3,), dtype="int64")
    g.add_node("relu", ["x"], name="r")
    dagnet.compile(g)


@case("graph-float-labels", G, DTypeError, "a loss's labels come from a float input",
      "declare the labels input int64", "loss: op 'softmax_cross_entropy' input 1")
def _(tmp):
    g = Graph()
    x = g.input("x", (3,))
    y = g.input("y", ())
    g.softmax_cross_entropy(x, y)
    dagnet.compile(g)


@case("graph-bad-builder-arg", G, AttrError, "a builder argument of the wrong type",
      "pass a positive integer", "fc1 (affine): units")
def _(tmp):
    g = Graph()
    x = g.input("x", (4,))
    g.affine(x, "10", name="fc1")


@case("graph-bad-shape-arg", G, ShapeError, "an input shape that is not a list of integers",
      "give the per-example shape as a tuple of ints", "x (input): shape")
def _(tmp):
    Graph().input("x", 784)


@case("graph-bad-attr-type", G, AttrError, "an attr of the wrong type given to add_node/op",
      "give a number", "drop (dropout): p")
def _(tmp):
    g = Graph()
    x = g.input("x", (4,))
    g.op("dropout", x, p="0.5", name="drop")


@case("graph-unknown-attr", G, AttrError, "an attr the op does not declare (a typo)",
      "use the suggested attr; the message lists the op's attrs", "pool (max_pool2d): no attr")
def _(tmp):
    g = Graph()
    g.input("x", (1, 8, 8))
    g.add_node("max_pool2d", ["x"], {"size": 2, "strdie": 2}, name="pool")
    dagnet.compile(g)


@case("graph-empty", G, GraphError, "compiling a graph without nodes", "add an input and some ops",
      "graph 'graph'")
def _(tmp):
    dagnet.compile(Graph())


@case("compile-unknown-output", G, GraphError, "compile(outputs=...) names no node",
      "use a node name (the closest is suggested)", "'socres'")
def _(tmp):
    dagnet.compile(tiny_mlp(), outputs=["socres"])


@case("compile-bad-dtype", G, DTypeError, "compile(dtype=...) is not float32/float64",
      "use float32 or float64", "dtype")
def _(tmp):
    dagnet.compile(tiny_mlp(), dtype="float16")


@case("compile-params-shape", G, ShapeError, "compile(params=...) with arrays of other shapes",
      "build the graph the params were made for", "param 'fc1.w'")
def _(tmp):
    params = {k: v[..., :1] for k, v in mlp_plan().params.items()}
    dagnet.compile(tiny_mlp(), params=params)


@case("compile-params-dtype", G, DTypeError, "compile(params=...) of another dtype than the plan's",
      "pass dtype= matching the params", "param 'fc1.w'")
def _(tmp):
    dagnet.compile(tiny_mlp(), params=mlp_plan("float64").params)


@case("compile-fusion-mismatch", G, FusionMismatchError,
      "compile(check=True) finds a fused kernel that disagrees with the unfused chain",
      "a kernel bug: compile with fuse=False and report it", "fused group fc1+relu1")
def _(tmp):
    op = dagnet.ops.get_op("affine+relu")
    real = type(op).forward

    def broken(self, inputs, attrs, **kw):
        out, cache = real(self, inputs, attrs, **kw)
        return out * 1.01, cache

    with mock.patch.object(type(op), "forward", broken):
        dagnet.compile(tiny_mlp(), dtype="float64", check=True)


@case("jvp-no-rule", G, GraphError, "forward mode through an op that has no forward-mode rule",
      "differentiate in reverse mode (dagnet.jacobian(..., strategy='reverse'))", "s: op 'softmax'")
def _(tmp):
    g = Graph()
    x = g.input("x", (3,))
    g.softmax(g.exp(x, name="e"), name="s")
    dagnet.jvp(g, {"x": np.ones((2, 3))}, {"x": np.ones((2, 3))})


@case("jacobian-strategy", G, AttrError, "dagnet.jacobian with a strategy it does not know",
      "strategy='forward' or 'reverse'", "jacobian: strategy")
def _(tmp):
    g = Graph()
    g.exp(g.input("x", (), batched=False), name="y")
    dagnet.jacobian(g, {"x": np.array(1.0)}, of="y", wrt="x", strategy="fwd")


# -- run time -----------------------------------------------------------------------------------
R = "run time (feeds, labels, datasets)"


@case("jvp-tangent-shape", R, FeedError, "a tangent whose shape is not its input's feed's",
      "give each tangent its input's feed shape", "tangent 'x'")
def _(tmp):
    g = Graph()
    g.exp(g.input("x", (3,)), name="y")
    dagnet.jvp(g, {"x": np.ones((2, 3))}, {"x": np.ones(3)})


@case("feed-shape", R, FeedError, "a feed of the wrong shape", "reshape the data as expected",
      "feed 'x'")
def _(tmp):
    mlp_plan().loss_and_grads(np.zeros((4, 7), np.float32), np.zeros(4, int))


@case("feed-dtype", R, FeedError, "integer pixels fed where floats are expected",
      "convert, e.g. x.astype(np.float32) / 255", "feed 'x'")
def _(tmp):
    mlp_plan().loss_and_grads(np.zeros((4, 6), np.uint8), np.zeros(4, int))


@case("feed-ragged", R, FeedError, "a feed that is not an array (ragged lists)",
      "give a numpy array", "feed 'x'")
def _(tmp):
    mlp_plan().loss_and_grads([[1.0, 2.0], [3.0]], np.zeros(2, int))


@case("feed-empty", R, FeedError, "a batch of zero examples", "give at least one example",
      "feed 'x'")
def _(tmp):
    mlp_plan().loss_and_grads(np.zeros((0, 6), np.float32), np.zeros(0, int))


@case("feed-batch-mismatch", R, FeedError, "feeds with different batch sizes",
      "give as many labels as examples", "'y'")
def _(tmp):
    mlp_plan().loss_and_grads(X(4), np.zeros(3, int))


@case("feed-missing", R, FeedError, "a feed the requested outputs need is missing",
      "pass every input the message lists", "step 2 'loss'")
def _(tmp):
    mlp_plan().loss_and_grads(X(4))


@case("feed-unknown", R, FeedError, "a feed for an input the plan does not have",
      "use the plan's input names", "'z'")
def _(tmp):
    mlp_plan().forward({"x": X(4), "y": np.zeros(4, int), "z": X(4)})


@case("labels-out-of-range", R, FeedError, "a label outside [0, classes) in a batch",
      "fix the labels or build the model with more classes", "step 2 'loss'")
def _(tmp):
    mlp_plan().loss_and_grads(X(4), np.array([0, 1, 2, 7]))


@case("feed-out-of-memory", R, FeedError, "a batch too large for the memory",
      "use a smaller batch size", "step 0 'fc1+relu1'")
def _(tmp):
    op = dagnet.ops.get_op("affine+relu")

    def too_big(self, inputs, attrs, **kw):
        raise MemoryError  # what numpy raises when the batch's arrays do not fit

    with mock.patch.object(type(op), "forward", too_big):
        mlp_plan().loss_and_grads(X(4), np.zeros(4, int))


@case("labels-float", R, FeedError, "float labels", "convert with y.astype(np.int64)", "feed 'y'")
def _(tmp):
    mlp_plan().loss_and_grads(X(4), np.zeros(4))


@case("predict-two-inputs", R, FeedError, "predict() given labels too", "pass only the images",
      "predict()")
def _(tmp):
    mlp_plan().predict({"x": X(4), "y": np.zeros(4, int)})


@case("eval-plan-training", R, DagnetError, "training steps on an eval-mode plan",
      "compile with mode='train'", "mode='eval'")
def _(tmp):
    mlp_plan(mode="eval").loss_and_grads(X(4), np.zeros(4, int))


@case("data-empty", R, DatasetError, "a Solver given an empty training set",
      "check the data files and the split", "X_train")
def _(tmp):
    quiet_solver(mlp_plan(), {"X_train": X(0), "y_train": np.zeros(0, int)})


@case("data-labels-out-of-range", R, DatasetError, "training labels outside the model's classes",
      "build the model with num_classes as suggested, or fix the labels", "y_train[3]")
def _(tmp):
    quiet_solver(mlp_plan(), {"X_train": X(4), "y_train": np.array([0, 1, 2, 5])})


@case("data-length-mismatch", R, DatasetError, "X and y of different lengths",
      "give one label per example", "X_val")
def _(tmp):
    quiet_solver(mlp_plan(), {"X_train": X(4), "y_train": np.zeros(4, int), "X_val": X(4),
                              "y_val": np.zeros(3, int)})


@case("data-shape-mismatch", R, DatasetError, "examples of another shape than the model's input",
      "resize the data or build the model for it", "X_train")
def _(tmp):
    quiet_solver(mlp_plan(), {"X_train": X(4, d=5), "y_train": np.zeros(4, int)})


@case("data-unknown-key", R, DatasetError, "the data dict has a key the Solver does not read "
      "(a typo such as X_valid)", "use the key suggested", "'X_valid'")
def _(tmp):
    quiet_solver(mlp_plan(), {"X_train": X(4), "y_train": np.zeros(4, int), "X_valid": X(4),
                              "y_val": np.zeros(4, int)})


@case("data-missing-split", R, DatasetError, "the data dict lacks y_train", "give X_train and y_train",
      "'y_train'")
def _(tmp):
    quiet_solver(mlp_plan(), {"X_train": X(4)})


@case("idx-missing", R, DatasetError, "the MNIST-like files are not in the directory",
      "install the dataset or pass the directory holding the four files", "not found in")
def _(tmp):
    from dagnet.data.idx import load_mnist_like
    load_mnist_like(tmp, "mnist")


@case("idx-truncated", R, DatasetError, "an IDX file cut short", "download it again", "truncated")
def _(tmp):
    from dagnet.data.idx import read_idx
    write_idx(tmp / "images.gz", np.zeros((5, 4, 4), np.uint8))
    import gzip
    raw = gzip.decompress((tmp / "images.gz").read_bytes())
    (tmp / "images").write_bytes(raw[:-7])
    read_idx(tmp / "images")


# -- files ------------------------------------------------------------------------------------
F = "checkpoint files"


def saved_run(tmp, name="run.npz", **kw):
    """A one-epoch Solver checkpoint of tiny_mlp."""
    path = str(tmp / name)
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), checkpoint=path, **kw).train()
    return path


@case("ckpt-missing", F, CheckpointError, "no file at the checkpoint path",
      "check the path, or train first", "nope.npz")
def _(tmp):
    load_checkpoint(tmp / "nope.npz")


@case("ckpt-truncated", F, CheckpointError, "a checkpoint cut short (a copy interrupted)",
      "use an earlier checkpoint or train again", "run.npz")
def _(tmp):
    path = saved_run(tmp)
    data = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(data[: len(data) // 2])
    load_checkpoint(path)


@case("ckpt-empty", F, CheckpointError, "an empty checkpoint file", "use an earlier checkpoint",
      "empty.npz")
def _(tmp):
    (tmp / "empty.npz").write_bytes(b"")
    load_checkpoint(tmp / "empty.npz")


@case("ckpt-not-npz", F, CheckpointError, "a file that is not a checkpoint at all",
      "pass a file written by dagnet", "text.npz")
def _(tmp):
    (tmp / "text.npz").write_text("hello")
    load_checkpoint(tmp / "text.npz")


@case("ckpt-corrupt", F, CheckpointError, "bytes of the checkpoint changed (disk or copy error)",
      "use an earlier checkpoint or train again", "run.npz")
def _(tmp):
    path = saved_run(tmp)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    name = "params/0.npy"
    body = bytearray(members[name])
    body[-1] ^= 0x01  # one bit of one weight; the zip's own CRC is recomputed below
    members[name] = bytes(body)
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    load_checkpoint(path)


@case("ckpt-pickle", F, CheckpointError, "a checkpoint entry holding pickled objects",
      "only load checkpoints written by dagnet; nothing was executed", "evil.npz")
def _(tmp):
    np.savez(tmp / "evil.npz", __dagnet__=np.array([{"a": 1}], dtype=object))
    load_checkpoint(tmp / "evil.npz")


@case("ckpt-other-graph", F, CheckpointError, "resuming a checkpoint of another graph",
      "build the graph from checkpoint.spec", "fc1.w checkpoint")
def _(tmp):
    path = saved_run(tmp)
    plan = dagnet.compile(tiny_mlp(hidden=7), seed=0)
    quiet_solver(plan, tiny_data(8, (6,)), checkpoint=path, resume=True)


@case("ckpt-other-dtype", F, CheckpointError, "resuming a float32 checkpoint in a float64 plan",
      "compile with the checkpoint's dtype", "fc1.w checkpoint float32")
def _(tmp):
    path = saved_run(tmp)
    quiet_solver(mlp_plan("float64"), tiny_data(8, (6,), dtype=np.float64), checkpoint=path,
                 resume=True)


@case("ckpt-other-settings", F, CheckpointError,
      "resuming with another recipe (update rule, learning rate, schedule, epochs, batch size, ...)",
      "resume with the same settings, or allow the change (allow_changes=[...], dagnet train "
      "--override KEY=VALUE): the run's history records it", "update_rule 'sgd'")
def _(tmp):
    path = saved_run(tmp)
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), checkpoint=path, resume=True, update_rule="adam")


@case("ckpt-not-resumable", F, CheckpointError, "resuming a checkpoint not written by Solver",
      "load its params with load_checkpoint and compile(params=...)", "bare.npz")
def _(tmp):
    plan = mlp_plan()
    save_checkpoint(tmp / "bare.npz", params=plan.params, state={}, optimizer={}, solver={},
                    spec={})
    quiet_solver(plan, tiny_data(8, (6,)), checkpoint=str(tmp / "bare.npz"), resume=True)


@case("ckpt-unwritable", F, CheckpointError, "the checkpoint directory does not exist",
      "create the directory or choose another --out", "no/such")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), checkpoint=str(tmp / "no/such/ck.npz")).train()


@case("ckpt-disk-full", F, CheckpointError, "the disk fills up (or the folder is read-only) "
      "while a checkpoint is written", "free some space or write elsewhere; the previous "
      "checkpoint is kept and no temp file is left", "No space left on device (ENOSPC)")
def _(tmp):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with mock.patch("dagnet.files.os.fsync", full):
        save_checkpoint(tmp / "run.npz", params={}, state={}, optimizer={}, solver={}, spec={})


@case("run-in-use", F, RunFolderError,
      "a second process trains into a run (or checkpoint) another process is writing",
      "wait for it to finish or stop it, or write to another folder", "in use by another process")
def _(tmp):
    import fcntl
    import json

    with open(tmp / "run.npz.lock", "w") as holder:  # as another process's lock would be
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write(json.dumps({"pid": 4242, "host": "lab-7", "started": "2026-11-24T09:15:02",
                                 "command": "dagnet train lenet --out runs/lenet"}))
        holder.flush()
        quiet_solver(mlp_plan(), tiny_data(8, (6,)), checkpoint=str(tmp / "run.npz")).train()


# -- training -----------------------------------------------------------------------------------
P = "pictures"


@case("plot-affine-not-an-image", P, ShapeError,
      "an affine layer's weights are drawn as images of a shape its rows are not",
      "give the (C, H, W) of the image the layer reads", "(1, 20, 20)")
def _(tmp):
    from dagnet.viz import plot_affine_weights

    plot_affine_weights(np.zeros((784, 10)), (1, 20, 20))


T = "training"


@case("train-nan-loss", T, TrainingError, "the loss becomes NaN/Inf (learning rate too high)",
      "lower the learning rate", "forward of step 1 'scores' (affine)")
def _(tmp):
    data = tiny_data(20, (6,))
    quiet_solver(mlp_plan(), data, update_rule="sgd", optim_config={"learning_rate": 1e30},
                 batch_size=10, num_epochs=5).train()


def blow_up_after_first_epoch(solver):
    if solver.epoch == 1:  # as a far too large update would: weights of 1e30
        for w in solver.model.params.values():
            w *= 1e30


@case("train-nan-keeps-checkpoint", T, TrainingError,
      "the loss becomes NaN/Inf after a checkpoint was written",
      "resume from the checkpoint named, which holds the last good params, with a lower rate",
      "after epoch 1")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(20, (6,)), batch_size=10, num_epochs=3,
                 checkpoint=str(tmp / "run.npz"), on_epoch=blow_up_after_first_epoch).train()


@case("train-nan-gradient", T, TrainingError,
      "a gradient overflows while the loss is still finite",
      "lower the learning rate or clip the gradients",
      "backward of step 1 'scores' (affine)")
def _(tmp):
    plan = mlp_plan()
    plan.params["fc1.w"][...] = 0.0
    plan.params["fc1.b"][...] = 1e-30  # relu1 passes tiny values: the scores stay finite
    plan.params["scores.w"][:, 0] = 3e38
    plan.params["scores.w"][:, 1:] = -3e38
    # the wrong class: dscores (1, -1, 0) meets +-3e38 in scores' backward, 6e38 overflows
    data = {"X_train": X(1), "y_train": np.array([1])}
    quiet_solver(plan, data, batch_size=1).train()


@case("train-nan-data", T, TrainingError, "the data holds NaN/Inf", "clean the data",
      "the feed 'x' itself")
def _(tmp):
    data = tiny_data(8, (6,))
    data["X_train"][5, 2] = np.nan
    quiet_solver(mlp_plan(), data, batch_size=8).train()


@case("train-save-nonfinite", T, TrainingError,
      "an update left NaN/Inf in the params just before a checkpoint",
      "lower the learning rate; the checkpoint on disk was not overwritten", "fc1.w")
def _(tmp):
    solver = quiet_solver(mlp_plan(), tiny_data(8, (6,)))
    solver.model.params["fc1.w"][0, 0] = np.inf
    solver.save(str(tmp / "run.npz"))


@case("train-bad-update-rule", T, TrainingError, "an unknown update rule", "use a listed rule",
      "'adamx'")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), update_rule="adamx")


@case("optim-unknown-key", T, TrainingError,
      "an optim_config key the update rule does not take (a typo, or another rule's key)",
      "use one of the keys listed ('lr' is accepted for learning_rate)", "'learnig_rate'")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), update_rule="sgd_momentum",
                 optim_config={"learnig_rate": 0.1})


@case("optim-out-of-range", T, TrainingError,
      "a hyperparameter outside its valid range (momentum 5.0, beta1 2.0, a learning rate <= 0)",
      "use a value in the range given", "['momentum'] = 5.0")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), update_rule="sgd_momentum",
                 optim_config={"momentum": 5.0})


@case("optim-config-not-dict", T, TrainingError, "optim_config is not a dict",
      "pass a dict such as {'learning_rate': 1e-2}", "optim_config")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), optim_config="fast")


@case("optim-state-shape", T, ShapeError,
      "an update rule given a state array (velocity, cache, m, v) of another shape than w",
      "keep one config per parameter", "'velocity'")
def _(tmp):
    from dagnet.train.optim import sgd_momentum
    sgd_momentum(np.ones((3, 4)), np.ones((3, 4)), {"velocity": np.zeros(4)})


@case("solver-bad-argument", T, TrainingError,
      "a Solver argument of the wrong type or out of range (num_epochs=-1, batch_size=0, ...)",
      "use a value in the range given", "num_epochs = -1")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), num_epochs=-1)


@case("solver-not-a-plan", T, TrainingError, "a Graph given to the Solver instead of a plan",
      "compile the graph first: dagnet.compile(graph)", "Graph")
def _(tmp):
    quiet_solver(tiny_mlp(), tiny_data(8, (6,)))


@case("solver-two-schedules", T, TrainingError, "both lr_decay and lr_schedule given",
      "give one of them", "lr_decay = 0.9")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), lr_decay=0.9, lr_schedule="cosine")


@case("solver-adamw-l2", T, TrainingError, "AdamW with the Solver's L2 weight_decay",
      "give AdamW's decoupled decay in optim_config", "weight_decay = 0.01")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), update_rule="adamw", weight_decay=0.01)


@case("solver-patience-without-val", T, TrainingError,
      "early stopping (patience, or monitor='val_loss') without a validation set",
      "give X_val and y_val", "patience = 3")
def _(tmp):
    quiet_solver(mlp_plan(), {"X_train": X(4), "y_train": np.zeros(4, int)}, patience=3)


@case("solver-bad-monitor", T, TrainingError, "an unknown monitor for early stopping",
      "monitor 'val_acc' or 'val_loss'", "'val_accuracy'")
def _(tmp):
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), monitor="val_accuracy", patience=2)


# -- activations and normalisation layers ------------------------------------------------------
L = "activations and normalisation layers"


@case("uniform-bounds", L, GraphError, "a uniform param's low/high are given one without the "
      "other, not in order, with scale, or for another initializer",
      "give low < high with init uniform, or scale alone for (-scale, scale)", "u")
def _(tmp):
    Graph().param("u", (3,), init="uniform", low=1.0, high=0.5)


@case("softmax-batch-axis", L, AttrError, "softmax or log_softmax over the batch axis (0) or an "
      "axis the value does not have", "give an axis in 1..rank or a negative one (-1, the last)",
      "probs (softmax")
def _(tmp):
    g = Graph()
    g.softmax(g.input("x", (10,)), axis=0, name="probs")


@case("prelu-slope-shape", L, ShapeError, "a prelu node lists a slope param that does not "
      "broadcast against one example", "give the slope shape (C, 1, ..., 1) or (1,), or let the "
      "builder make it", "prelu1 (prelu")
def _(tmp):
    g = Graph()
    g.op("prelu", g.input("x", (3, 4, 4)), g.param("s", (5,)), name="prelu1")


@case("group-norm-groups", L, ShapeError, "group_norm with a number of groups that does not "
      "divide the channels", "give groups one of the channels' divisors (listed)", "gn1: group_norm")
def _(tmp):
    g = Graph()
    g.group_norm(g.input("x", (6, 4, 4)), groups=4, name="gn1")


@case("instance-norm-no-positions", L, ShapeError, "instance_norm of values without positions "
      "((C,) features: one value per channel)", "give (C, L) or (C, H, W) values, or use "
      "layer_norm", "in1: instance_norm")
def _(tmp):
    g = Graph()
    g.instance_norm(g.input("x", (6,)), name="in1")


@case("embedding-id-range", L, FeedError, "an embedding fed an id outside its table's rows",
      "give ids in [0, num), or a table with more rows", "'emb' (embedding): id 12")
def _(tmp):
    g = Graph()
    g.embedding(g.input("t", (3,), dtype="int64"), num=10, dim=4, name="emb")
    plan = dagnet.compile(g)
    plan.forward({"t": np.array([[1, 12, 3]])})


# saving and loading, the explorer, distributed training, experiments (catalogue_apps.py);
# the cases of issue 15: runs, resource bounds, the command line, API arguments (catalogue_runs.py);
# ONNX import and the ONNX backend (catalogue_onnx.py)
from tests.reliability import catalogue_apps  # noqa: E402,F401 - registers its cases
from tests.reliability import catalogue_onnx  # noqa: E402,F401 - registers its cases
from tests.reliability import catalogue_runs  # noqa: E402,F401 - registers its cases
from tests.reliability import catalogue_shapes  # noqa: E402,F401 - the shape ops' cases


# -- the model zoo and fine-tuning -------------------------------------------------------------
Z = "the model zoo and fine-tuning (dagnet train --replace-head, --freeze)"


@case("zoo-input-too-small", Z, DagnetError, "a zoo model is sized for images smaller than its "
      "pools allow", "pass a larger input_shape (the message gives the smallest) or resize the "
      "images", "vgg11")
def _(tmp):
    from dagnet.models import vgg11

    vgg11(input_shape=(1, 28, 28))


@case("zoo-width", Z, DagnetError, "a zoo model's width multiplier is not positive",
      "give width > 0 (1.0 is the published network)", "resnet50")
def _(tmp):
    from dagnet.models import resnet50

    resnet50(width=0)


@case("zoo-variant", Z, DagnetError, "a zoo model's form option names no form it has "
      "(resnet18's and mobilenet_v2's stem, googlenet's variant)",
      "give one of the forms the message lists", "variant must be 'torchvision'")
def _(tmp):
    from dagnet.models import googlenet

    googlenet(variant="caffe")


@case("zoo-patch-size", Z, DagnetError, "a patch model's (vit_tiny, mixer_tiny) patch size does "
      "not divide the image", "pick a patch size that divides the height and the width",
      "mixer_tiny")
def _(tmp):
    from dagnet.models import mixer_tiny

    mixer_tiny(input_shape=(3, 32, 32), patch=7)


@case("zoo-heads", Z, DagnetError, "vit_tiny's attention heads do not divide its width",
      "give heads that divide dim (each head takes dim / heads features)", "vit_tiny")
def _(tmp):
    from dagnet.models import vit_tiny

    vit_tiny(dim=64, heads=6)


@case("freeze-unknown-node", Z, GraphError, "compile(freeze=...) names no node of the graph",
      "use the suggested name: a param or an op node (its params)", "'conv9'")
def _(tmp):
    dagnet.compile(tiny_convnet(), freeze=["conv9"])


@case("freeze-an-input", Z, GraphError, "compile(freeze=...) or --freeze names an input",
      "name a param or a layer: freezing covers params", "'x'")
def _(tmp):
    dagnet.compile(tiny_convnet(), freeze="x")


@case("head-not-found", Z, GraphError, "replace_head / --replace-head on a graph whose scores do "
      "not come from an affine or conv layer (through relu, dropout, flatten, pooling)",
      "replace the classifier by hand in the spec", "'bn'")
def _(tmp):
    from dagnet.models.finetune import replace_head

    g = Graph("bn_head")
    h = g.batchnorm(g.affine(g.input("x", (5,)), 3, name="fc"), name="bn")
    g.softmax_cross_entropy(h, g.input("y", (), dtype="int64"))
    replace_head(g, 2)


def _finetune_args(**flags):
    import argparse

    base = {"model": "lenet", "data": "mnist:DIR", "weights": None, "replace_head": None,
            "freeze": None, "seed": 0}
    return argparse.Namespace(**{**base, **flags})


@case("cli-head-too-small", Z, UsageError, "--replace-head gives fewer outputs than the data has "
      "classes", "give at least the number of classes the message names", "--replace-head 5")
def _(tmp):
    from dagnet.cli import finetune
    from dagnet.cli.common import resolve_model, with_loss
    from dagnet.models import lenet

    source = resolve_model("lenet", (1, 28, 28), 10)
    finetune.start(_finetune_args(replace_head=5), source, with_loss(lenet()), (1, 28, 28), 10,
                   "float32")


@case("cli-freeze-everything", Z, UsageError, "--freeze names the last layer (or the loss): "
      "every param would be frozen", "name an earlier layer; the ones after it train",
      "--freeze scores")
def _(tmp):
    from dagnet.cli import finetune
    from dagnet.cli.common import resolve_model

    source = resolve_model("lenet", (1, 28, 28), 10)
    finetune.start(_finetune_args(freeze="scores"), source, source.graph, (1, 28, 28), 10,
                   "float32")


# -- running the catalogue ------------------------------------------------------------------------
def run_case(c: Case, tmp: pathlib.Path) -> BaseException | None:
    """The exception the case raises (None if it raises nothing)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            c.trigger(tmp)
    except Exception as e:  # noqa: BLE001 - the test checks the class
        return e
    return None


def normalise(message: str, tmp) -> str:
    """The message as documented: the temporary directory shown as <dir>."""
    return message.replace(str(tmp), "<dir>")


def numbers_blurred(text: str) -> str:
    """Numbers replaced by '#': the doc's freshness test ignores digits that vary by machine."""
    return re.sub(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)


def collect() -> list[tuple[Case, str]]:
    rows = []
    for c in CASES:
        with tempfile.TemporaryDirectory() as d:
            e = run_case(c, pathlib.Path(d))
            rows.append((c, normalise(f"{e}", d) if e is not None else "(no error)"))
    return rows


def markdown(rows) -> str:
    out = ["# dagnet error catalogue", "",
           "Every user-facing failure is a `DagnetError` subclass (`dagnet/errors.py`) whose "
           "message says what went wrong, where (key path, node, step, file) and the fix. The "
           "messages below are not written by hand: `python -m tests.reliability.catalogue > "
           "docs/errors.md` regenerates this file from the cases in "
           "`tests/reliability/catalogue.py`, and `tests/reliability/test_errors.py` checks that "
           "every case raises the class shown, on one line, naming where, and that this file is "
           "current. `<dir>` stands for the directory the case ran in.", "",
           "The CLI prints the message as `dagnet COMMAND: message` and exits with code 2. A "
           "file or folder the system refuses (a full disk, a read-only folder, a missing path) "
           "is one line too, naming the path and the errno's meaning, exit 2. Anything else is "
           "a bug in dagnet: one line naming it and the file that holds the full traceback, "
           "exit 1 (dagnet/cli/failures.py). Ctrl-C exits with 130 (`dagnet train` says which "
           "epoch its checkpoint holds); a closed stdout (`dagnet summary lenet | head`) ends "
           "quietly with 0.", "",
           "Class hierarchy:", "", "```"]
    import dagnet.errors as errors
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, DagnetError)]
    for cls in classes:
        depth = len([b for b in cls.__mro__ if issubclass(b, DagnetError)]) - 1
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        out.append(f"{'    ' * depth}{cls.__name__:<{26 - 4 * depth}} {doc}")
    out += ["```", ""]
    categories = []
    for c, _ in rows:
        if c.category not in categories:
            categories.append(c.category)
    for cat in categories:
        out += [f"## {cat[0].upper() + cat[1:]}", "", "| class | when | example message | fix |",
                "|---|---|---|---|"]
        for c, msg in rows:
            if c.category == cat:
                cell = msg.replace("|", "\\|").replace("`", "'").replace("\n", " ")
                out.append(f"| `{c.cls.__name__}` | {c.when} | `{cell}` ({c.id}) | {c.fix} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(markdown(collect()))
