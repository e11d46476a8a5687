"""The error catalogue: one case per user-facing failure, each a function that makes the mistake.

tests/reliability/test_errors.py runs every case (the error must be the documented DagnetError
subclass, one line, naming where); docs/errors.md is generated from the messages these cases
really produce:

    python -m tests.reliability.catalogue > docs/errors.md
"""
from __future__ import annotations

import contextlib
import io
import pathlib
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from unittest import mock

import numpy as np

import dagnet
from dagnet import Graph
from dagnet.cli.common import UsageError
from dagnet.errors import (AttrError, CheckpointError, CycleError, DagnetError, DatasetError,
                           DistributedError, DTypeError, FeedError, FusionMismatchError, GraphError,
                           MissingDependencyError, PeerLostError, ShapeError, SpecError,
                           TrainingError, TuneError, UnknownOpError)
from dagnet.onnx.common import NoBatchAxisError, NotConstantError, OnnxError
from dagnet.spec import graph_from_spec, load_spec
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from dagnet.train.solver import Solver
from tests.reliability.helpers import tiny_convnet, tiny_data, tiny_mlp, write_idx


@dataclass
class Case:
    id: str
    category: str
    cls: type
    when: str
    fix: str
    trigger: object  # callable(tmp: pathlib.Path) that raises
    where: str = ""  # a substring the message must hold: the node, key path, step or file


CASES: list[Case] = []


def case(id, category, cls, when, fix, where=""):
    def wrap(fn):
        CASES.append(Case(id, category, cls, when, fix, fn, where))
        return fn
    return wrap


def seq(*layers, **top):
    return {"name": "t", "input": {"shape": [1, 8, 8]}, "layers": list(layers), **top}


def general(*nodes, **top):
    return {"name": "t", "nodes": [{"name": "x", "op": "input", "shape": [2, 8, 8]}, *nodes], **top}


def quiet_solver(plan, data, **kw):
    kw.setdefault("verbose", False)
    kw.setdefault("num_epochs", 1)
    kw.setdefault("batch_size", 4)
    return Solver(plan, data, **kw)


def mlp_plan(dtype="float32", **kw):
    return dagnet.compile(tiny_mlp(), seed=0, dtype=dtype, **kw)


def X(n=4, d=6, dtype=np.float32):
    return np.random.default_rng(0).standard_normal((n, d)).astype(dtype)


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


@case("graph-param-as-data", G, ShapeError, "a param where a batched value belongs",
      "feed the op from an input or an op", "r: op 'relu' input 0")
def _(tmp):
    g = Graph()
    g.input("x", (3,))
    g.param("w", (3, 2))
    g.add_node("relu", ["w"], name="r")
    dagnet.compile(g, outputs=["r"])


@case("graph-int-input-as-data", G, DTypeError, "an integer input feeds an op that needs floats",
      "declare the input float32 (only a loss's labels are integers)", "r: op 'relu'")
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


# -- run time -----------------------------------------------------------------------------------
R = "run time (feeds, labels, datasets)"


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


@case("ckpt-other-settings", F, CheckpointError, "resuming with another update rule or batch size",
      "resume with the same settings, or start a new run elsewhere", "update_rule 'sgd'")
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
    plan.params["fc1.b"][...] = -100.0  # relu1 outputs only zeros: the scores stay finite
    plan.params["scores.w"][:, 0] = 3e38
    plan.params["scores.w"][:, 1:] = -3e38
    data = {"X_train": X(1), "y_train": np.array([0])}
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


# -- saving, loading, predicting -------------------------------------------------------------------
P = "saving, loading and predicting"


def conv_plan():
    return dagnet.compile(tiny_convnet(), seed=0)


@case("save-bad-normalization", P, DatasetError,
      "dagnet.save is given normalisation stats of another image shape",
      "pass the stats fit_normalization gave for the training images", "(1, 3, 1, 1)")
def _(tmp):
    dagnet.save(tmp / "run", conv_plan(), normalization={"mean": np.zeros((1, 3, 1, 1))})


@case("save-class-names", P, DatasetError, "class_names does not have one name per class",
      "give one name per class", "class_names has 2")
def _(tmp):
    dagnet.save(tmp / "run", conv_plan(), class_names=["cat", "dog"])


@case("load-not-a-run", P, CheckpointError, "dagnet.load (or a command) is given a folder "
      "without checkpoint.npz", "give the folder `dagnet train` or dagnet.save wrote",
      "holds no checkpoint.npz")
def _(tmp):
    dagnet.load(tmp)


@case("load-no-data-json", P, CheckpointError, "a run folder lost its data.json, so the "
      "preprocessing is unknown", "save the model again with its normalisation stats", "data.json")
def _(tmp):
    dagnet.save(tmp / "run", conv_plan())
    (tmp / "run" / "data.json").unlink()
    dagnet.load(tmp / "run")


@case("predict-image-shape", P, FeedError, "images of another size than the model was trained on",
      "pass images of the model's input shape", "(4, 9, 9)")
def _(tmp):
    dagnet.load(dagnet.save(tmp / "run", conv_plan())).predict(np.zeros((4, 9, 9), np.uint8))


@case("predict-not-raw", P, FeedError, "float images outside [0, 1]: 0-255 floats, or images "
      "normalised already", "pass uint8 pixels or [0, 1] floats; the model normalises itself",
      "[0, 1]")
def _(tmp):
    model = dagnet.load(dagnet.save(tmp / "run", conv_plan()))
    model.predict(np.full((2, 8, 8), 255.0, np.float32))


@case("evaluate-labels", P, DatasetError, "labels outside the model's classes",
      "give class ids in 0..K-1", "0..3")
def _(tmp):
    from dagnet.train.evaluate import evaluate_arrays

    evaluate_arrays(conv_plan(), np.zeros((2, 1, 8, 8), np.float32), np.array([0, 7]))


@case("gradcheck-float32", P, DTypeError, "gradcheck_plan on a float32 plan",
      "compile with dtype='float64'", "float32")
def _(tmp):
    from dagnet.gradcheck import gradcheck_plan

    plan = conv_plan()
    gradcheck_plan(plan, {"x": np.zeros((2, 1, 8, 8), np.float32), "y": np.zeros(2, np.int64)})


@case("missing-dependency", P, MissingDependencyError,
      "a submodule (dagnet.viz) needs a package that is not installed",
      "pip install the package named", "graphviz")
def _(tmp):
    saved = {k: v for k, v in sys.modules.items() if k == "dagnet.viz" or k.startswith("dagnet.viz.")}
    viz = dagnet.__dict__.pop("viz", None)
    try:
        with mock.patch.dict(sys.modules, {"graphviz": None}):
            for k in saved:
                del sys.modules[k]
            dagnet.viz
    finally:
        sys.modules.update(saved)
        if viz is not None:
            dagnet.viz = viz


@case("cli-unknown-model", P, UsageError, "a command is given a name that is no model, file or "
      "folder", "give a zoo name, a spec, an .onnx file or a run directory", "'lenett'")
def _(tmp):
    from dagnet.cli.common import resolve_model

    resolve_model("lenett")


# -- the plan explorer (HTML pages) ------------------------------------------------------------
P = "the plan explorer (HTML pages)"


@case("explorer-not-a-graph", P, DagnetError, "the explorer is given something that is not a graph",
      "pass a Graph or the ExecutionPlan that dagnet.compile returns", "got a dict")
def _(tmp):
    from dagnet.viz.html import explorer_html

    explorer_html({"name": "lenet"})


@case("explorer-not-html", P, UsageError, "`dagnet render --html` or `dagnet report` is given an "
      "output name that is not .html", "give -o NAME.html", "plan.svg")
def _(tmp):
    from dagnet.cli.main import build_parser

    args = build_parser().parse_args(["render", "lenet", "--html", "-o", str(tmp / "plan.svg")])
    args.func(args)


# -- ONNX models run through dagnet.onnx.backend ---------------------------------------------------
P = "ONNX models run through dagnet.onnx.backend"


def _onnx_model(op, inputs, inits=None):
    """A one-node ONNX model: op reads `inputs` {name: shape} (then the initializers) into 'y',
    declared with the first input's shape."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    node = helper.make_node(op, [*inputs, *(inits or {})], ["y"])
    g = helper.make_graph([node], "m", [helper.make_tensor_value_info(k, f, s) for k, s in inputs.items()],
                          [helper.make_tensor_value_info("y", f, next(iter(inputs.values())))],
                          [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@case("onnx-backend-leading-dims", P, NoBatchAxisError, "the data inputs of a model run by "
      "dagnet.onnx.backend differ in their first dimension (broadcasting across it)",
      "give every data input the same first dimension: the backend feeds it as the batch",
      "'b' (1, 3)")
def _(tmp):
    import dagnet.onnx.backend as backend

    backend.run_model(_onnx_model("Add", {"a": [2, 3], "b": [1, 3]}),
                      [np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32)])


@case("onnx-backend-rank1-data", P, NoBatchAxisError, "a value of rank 1 is data (not a weight) "
      "in a model run by dagnet.onnx.backend", "give it a leading batch dimension, e.g. x[None]",
      "input 'x'")
def _(tmp):
    import dagnet.onnx.backend as backend

    backend.run_model(_onnx_model("Relu", {"x": [3]}), [np.zeros(3, np.float32)])


@case("onnx-computed-weight", P, NotConstantError, "an ONNX model's weight, bias or shape is a "
      "graph input or computed by nodes (dagnet.onnx.load)", "make it an initializer, or run "
      "the model with dagnet.onnx.backend, which freezes inputs to the values given",
      "Conv node 'y'")
def _(tmp):
    from dagnet.onnx import load

    load(_onnx_model("Conv", {"x": ["N", 1, 4, 4], "w": [1, 1, 3, 3]}))


def _onnx_nodes(nodes, inits):
    """An ONNX model of `nodes` reading x of shape (N, 2, 3) and the initializers into 'y'."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", f, ["N", 2, 3])],
                          [helper.make_tensor_value_info("y", f, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@case("onnx-batch-dependent-shape", P, NotConstantError, "an ONNX model computes a shape from "
      "its batch size other than as the batch itself (Reshape to [N * 2, -1]; dagnet.onnx.load "
      "folds Shape chains with the batch symbolic)", "re-export with the batch as the first entry "
      "of the target (x.view(x.size(0), -1)) or a fixed shape", "computed from the batch size")
def _(tmp):
    from onnx import helper

    from dagnet.onnx import load

    load(_onnx_nodes([helper.make_node("Shape", ["x"], ["n"], start=0, end=1),
                      helper.make_node("Mul", ["n", "two"], ["n2"]),
                      helper.make_node("Concat", ["n2", "minus1"], ["target"], axis=0),
                      helper.make_node("Reshape", ["x", "target"], ["y"])],
                     {"two": np.array([2]), "minus1": np.array([-1])}))


@case("onnx-fold-failed", P, OnnxError, "a node of an ONNX model whose inputs are all constants "
      "cannot be evaluated (dagnet.onnx.load folds such nodes with onnx.reference)",
      "fix the model: the message gives ONNX's reason", "evaluating it to fold it failed")
def _(tmp):
    from onnx import helper

    from dagnet.onnx import load

    load(_onnx_nodes([helper.make_node("Reshape", ["k", "shape"], ["w"]),
                      helper.make_node("MatMul", ["x", "w"], ["y"])],
                     {"k": np.zeros(6, np.float32), "shape": np.array([4, -1, 5])}))


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


# -- distributed training -------------------------------------------------------------------------
D = "distributed training (dagnet.dist, dagnet train --ranks)"


class OneRankComm:
    """A stand-in for dagnet.dist.Comm as rank 0 of `size` whose peers' params differ by
    `drift` (in the checksum exchange); every other collective returns its input."""

    def __init__(self, size=2, drift=False):
        self.rank, self.size, self.drift = 0, size, drift

    def bcast(self, a, what, root=0):
        return a

    def allgather(self, a, what):
        out = np.stack([a] * self.size)
        if self.drift:
            out[1, 0] += 1
        return out


@case("dist-no-mpi", D, MissingDependencyError, "data-parallel training without mpi4py or an MPI",
      "pip install -e '.[dist]'", "pip install")
def _(tmp):
    from dagnet.dist.comm import Comm

    with mock.patch.dict(sys.modules, {"mpi4py": None}):
        Comm()


@case("dist-no-buckets", D, DistributedError, "DataParallel over a plan compiled without buckets",
      "compile with bucket_mb=... (e.g. 4)", "bucket_mb")
def _(tmp):
    from dagnet.dist import DataParallel

    DataParallel(mlp_plan(), OneRankComm())


@case("dist-bad-bucket-size", D, DagnetError, "a bucket size of 0 or less",
      "give a positive --bucket-mb", "--bucket-mb")
def _(tmp):
    mlp_plan(bucket_mb=0)


@case("dist-diverged", D, DistributedError,
      "the ranks' params differ (found by the periodic checksum)",
      "restart from the last checkpoint; look for a rank that changes params on its own", "fc1.w")
def _(tmp):
    from dagnet.dist import DataParallel

    DataParallel(mlp_plan(bucket_mb=1), OneRankComm(drift=True)).check_params()


@case("dist-peer-lost", D, PeerLostError,
      "a rank died or hangs: no answer within --comm-timeout (or MPI reports a failure)",
      "look for the other rank's error; resume from the last checkpoint", "rank 0 of 2")
def _(tmp):
    from dagnet.dist.comm import Comm

    comm = Comm.__new__(Comm)  # a communicator whose peer never answers
    comm.MPI = mock.Mock()
    comm.MPI.Request.Testall.return_value = False
    comm.rank, comm.size, comm.host, comm.timeout = 0, 2, "node1", 0.05
    comm.wait([object()], "summing the gradients (allreduce)")


# -- experiments: search spaces, studies, recipes, augmentation, ensembles ---------------------
E = "experiments (tune, recipes, augmentation, ensembles)"


def space_file(tmp, text):
    path = tmp / "space.yaml"
    path.write_text(text)
    return path


@case("tune-space-number-string", E, TuneError, "a space file writes a float without a dot "
      "(YAML 1.1 reads 1e-3 as a string)", "write 1.0e-3", "space.yaml: lr.low")
def _(tmp):
    from dagnet.tune.space import load_space

    load_space(space_file(tmp, "lr: {low: 1e-3, high: 1.0e-1, log: true}\n"))


@case("tune-space-empty-range", E, TuneError, "a range whose low is not below its high",
      "swap or fix the bounds", "space.yaml: lr")
def _(tmp):
    from dagnet.tune.space import load_space

    load_space(space_file(tmp, "lr: {low: 0.1, high: 0.01}\n"))


@case("tune-space-unknown-setting", E, TuneError, "a space key that names no `dagnet train` "
      "setting, update-rule setting, zoo keyword or node attribute",
      "use a name the message lists (optim.momentum for the momentum)", "momentum")
def _(tmp):
    import argparse

    from dagnet.cli.tune_trials import check_space, train_namespace
    from dagnet.tune.space import load_space

    path = space_file(tmp, "momentum: {low: 0.5, high: 0.99}\n")
    base = train_namespace(argparse.Namespace(model="two_layer_net", data=None, epochs=None,
                                              val=None, seed=None))
    check_space(load_space(path), base, str(path))


@case("tune-storage-unusable", E, TuneError, "the --storage URL cannot be opened (no such "
      "folder, server down, wrong password)", "check the URL; the password is never printed",
      "sqlite:///")
def _(tmp):
    from dagnet.tune.study import open_storage

    open_storage(f"sqlite:///{tmp}/no/such/folder/study.db")


@case("recipe-unknown-key", E, SpecError, "a spec's train: recipe names an unknown setting",
      "use a setting the message lists", "train: unknown key 'epoch'")
def _(tmp):
    from dagnet.train.recipe import check_recipe

    check_recipe({"epoch": 3})


@case("recipe-bad-value", E, SpecError, "a recipe setting of the wrong kind",
      "give the kind the message names", "train.batch_size")
def _(tmp):
    from dagnet.train.recipe import check_recipe

    check_recipe({"batch_size": 2.5})


@case("augment-bad-setting", E, DatasetError, "an augmentation setting out of range",
      "give a value in the range the message names", "augment.erase")
def _(tmp):
    from dagnet.data.augment import Augment

    Augment.from_dict({"erase": 1.5})


@case("ensemble-other-classes", E, DatasetError, "ensemble members that score different numbers "
      "of classes", "ensemble models of the same task", "different numbers of classes")
def _(tmp):
    from dagnet.train.ensemble import evaluate_ensemble

    class Scores:
        def __init__(self, k):
            self.k = k

        def predict(self, X, batch_size=256):
            return np.zeros((len(X), self.k), np.float32)

    evaluate_ensemble([Scores(3), Scores(4)], np.zeros((2, 1)), np.array([0, 1]))


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
           "The CLI prints the message as `dagnet COMMAND: message` and exits with code 2.", "",
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
