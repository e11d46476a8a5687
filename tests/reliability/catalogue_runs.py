"""Catalogue cases of issue 15: resuming a run, run folders, resource bounds, ONNX files as
untrusted input, API arguments, and the command line's own checks (see catalogue.py)."""
from __future__ import annotations

import errno
import io
import json
import os
import zipfile
from unittest import mock

import numpy as np

import dagnet
from dagnet import Graph
from dagnet.cli.common import UsageError
from dagnet.errors import (ArgumentError, CheckpointError, DatasetError, RunFolderError,
                           ShapeError, SpecError)
from dagnet.onnx.common import OnnxError
from dagnet.spec import graph_from_spec
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from tests.reliability.cases import X, case, mlp_plan, quiet_solver
from tests.reliability.helpers import tiny_data, tiny_mlp, write_idx, write_mnist_like

RUNS = "checkpoint files"


def run_of(tmp, graph=None, data=None, **kw):
    """A one-epoch Solver checkpoint (tmp/run.npz) of `graph` (tiny_mlp)."""
    path = str(tmp / "run.npz")
    plan = dagnet.compile(graph or tiny_mlp(), seed=0)
    quiet_solver(plan, data or tiny_data(8, (6,)), checkpoint=path, **kw).train()
    return path


def act_mlp(act):
    g = Graph("tiny")
    x, y = g.input("x", (6,)), g.input("y", (), dtype="int64")
    h = g.op(act, g.affine(x, 5, name="fc1"), name="act1")
    g.softmax_cross_entropy(g.affine(h, 3, name="scores"), y)
    return g


@case("resume-other-graph", RUNS, CheckpointError,
      "resuming with another graph whose params have the same shapes (relu -> tanh, an added "
      "dropout)", "resume with the graph saved in the checkpoint, or start a new run from its "
      "params (--weights)", "node act1: op relu -> tanh")
def _(tmp):
    path = run_of(tmp, act_mlp("relu"))
    quiet_solver(dagnet.compile(act_mlp("tanh"), seed=0), tiny_data(8, (6,)), checkpoint=path,
                 resume=True)


@case("resume-other-data", RUNS, CheckpointError,
      "resuming on other data (another split, normalisation or data files)",
      "resume on the run's data, or start a new run from its params (--weights)",
      "X_train other values")
def _(tmp):
    path = run_of(tmp)
    data = tiny_data(8, (6,))
    data["X_train"] = data["X_train"] * 2
    quiet_solver(mlp_plan(), data, checkpoint=path, resume=True)


@case("resume-fewer-epochs", RUNS, CheckpointError,
      "resuming with fewer epochs than the run has already trained",
      "give at least as many epochs as it has run", "already run 2 epochs")
def _(tmp):
    path = run_of(tmp, num_epochs=2)
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), checkpoint=path, resume=True, num_epochs=1,
                 allow_changes=["num_epochs"])


@case("ckpt-crafted-arrays", RUNS, CheckpointError,
      "a crafted checkpoint whose best params (or optimizer state) have another shape than the "
      "params", "use a checkpoint written by dagnet; nothing is broadcast", "best_params fc1.w (1,)")
def _(tmp):
    path = run_of(tmp)
    ck = load_checkpoint(path)
    best = {**ck.extra["best_params"], "fc1.w": np.ones(1, np.float32)}
    save_checkpoint(path, ck.params, ck.state, ck.optimizer, ck.solver, ck.spec,
                    {**ck.extra, "best_params": best})
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), checkpoint=path, resume=True)


@case("ckpt-mistyped-solver-state", RUNS, CheckpointError,
      "a checkpoint whose solver state has a field of the wrong type (a string epoch, ...)",
      "use an earlier checkpoint or train again", "solver state epoch = '1'")
def _(tmp):
    path = run_of(tmp)
    ck = load_checkpoint(path)
    save_checkpoint(path, ck.params, ck.state, ck.optimizer, {**ck.solver, "epoch": "1"},
                    ck.spec, ck.extra)
    quiet_solver(mlp_plan(), tiny_data(8, (6,)), checkpoint=path, resume=True)


@case("ckpt-zip-bomb", RUNS, CheckpointError,
      "a small file whose entries claim to inflate to gigabytes (a zip bomb)",
      "use a checkpoint written by dagnet; nothing was inflated", "zip bomb")
def _(tmp):
    path = tmp / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (2 ** 29,)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("params/0.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for _ in range(2 ** 29 // 2 ** 24):
                f.write(bytes(2 ** 24))
    load_checkpoint(path)


@case("run-file-unwritable", RUNS, RunFolderError,
      "a run's side file (history.json, data.json) cannot be written: a full disk, a read-only "
      "folder", "free some space or write elsewhere; the previous file is kept, no temp file "
      "is left", "history.json")
def _(tmp):
    from dagnet.train.runfolder import write_json

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with mock.patch("dagnet.files.os.fsync", full):
        write_json(tmp / "history.json", {"loss_history": [1.0]})


@case("run-file-damaged", RUNS, RunFolderError,
      "a run's data.json or history.json holds a field of the wrong type",
      "re-run `dagnet train` to rewrite it", "num_val = '20'")
def _(tmp):
    from dagnet.train.runfolder import DATA_FIELDS, read_json

    (tmp / "data.json").write_text(json.dumps({"data": "mnist:d", "num_val": "20",
                                               "split_seed": 0, "normalization": {}}))
    read_json(tmp / "data.json", DATA_FIELDS, "re-run `dagnet train` to rewrite it")


BOUNDS = "resource bounds (untrusted files)"


@case("spec-alias-bomb", BOUNDS, SpecError,
      "a YAML spec whose aliases expand to billions of values (a 'billion laughs' bomb)",
      "write the values out; nothing was expanded", "alias bomb")
def _(tmp):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    graph_from_spec("\n".join(lines) + "\nname: bomb\ninput: {shape: [4]}\nlayers: [{type: relu}]")


@case("spec-not-utf8", BOUNDS, SpecError, "a spec file that is not UTF-8 text",
      "save it as UTF-8", "not UTF-8")
def _(tmp):
    (tmp / "latin.yaml").write_bytes("name: caf\xe9\nlayers: []\n".encode("latin-1"))
    graph_from_spec(str(tmp / "latin.yaml"))


@case("idx-huge-header", BOUNDS, DatasetError,
      "an IDX header that claims more data than any data set (a damaged header)",
      "download the file again; nothing was allocated", "more than any IDX data set")
def _(tmp):
    import struct

    from dagnet.data.idx import read_idx

    (tmp / "x-idx3-ubyte").write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, *(2 ** 32 - 1,) * 3))
    read_idx(tmp / "x-idx3-ubyte")


@case("idx-test-size-differs", BOUNDS, DatasetError,
      "the test images have another size than the training images",
      "put the four files of one data set together (caught before training)", "t10k-images")
def _(tmp):
    from dagnet.data.idx import load_mnist_like

    write_mnist_like(str(tmp), n_train=10, n_test=4, size=8)
    write_idx(tmp / "t10k-images-idx3-ubyte.gz", np.zeros((4, 9, 9), np.uint8))
    load_mnist_like(tmp, "mnist")


ONNX = "ONNX files"


def onnx_relu(tmp, extra=(), initializers=(), name="m.onnx"):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r"), *extra]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp / name))
    return tmp / name


@case("onnx-not-a-model", ONNX, OnnxError, "a file that is not an ONNX model (garbage, cut short, "
      "empty)", "export the model again", "not a valid ONNX model")
def _(tmp):
    (tmp / "m.onnx").write_bytes(bytes(range(256)) * 4)
    dagnet.onnx.load(tmp / "m.onnx")


@case("onnx-two-writers", ONNX, OnnxError, "an ONNX model with two nodes writing one value",
      "fix the exporter that wrote it: each value has one writer", "written by")
def _(tmp):
    from onnx import helper

    dagnet.onnx.load(onnx_relu(tmp, [helper.make_node("Sigmoid", ["x"], ["y"], name="s")]))


@case("onnx-external-data-outside", ONNX, OnnxError,
      "an ONNX initializer whose external data lies outside the model's folder",
      "keep the data files next to the model; nothing outside is read", "outside the model's folder")
def _(tmp):
    from onnx import TensorProto

    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    dagnet.onnx.load(onnx_relu(tmp, initializers=[w]))


@case("onnx-initializer-not-numeric", ONNX, OnnxError,
      "an ONNX initializer of strings, or whose data does not fill its declared shape",
      "dagnet imports numeric weights only", "holds STRING values")
def _(tmp):
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.STRING, [2], vals=[b"a", b"b"])
    dagnet.onnx.load(onnx_relu(tmp, initializers=[w]))


API = "API arguments"


@case("api-bad-argument", API, ArgumentError,
      "a public function given an argument of the wrong type or out of range "
      "(predict(batch_size=0), numerical_gradient(h=0), gradcheck_plan(max_entries=-1), ...)",
      "use a value in the range given", "predict: batch_size = 0")
def _(tmp):
    mlp_plan(mode="eval").predict(X(4), batch_size=0)


@case("api-function-arity", API, ArgumentError,
      "numerical_gradient given a function that takes x (it must take no arguments)",
      "pass lambda: loss(x); x is perturbed in place", "numerical_gradient: f")
def _(tmp):
    from dagnet.gradcheck import numerical_gradient

    numerical_gradient(lambda x: float(np.sum(x * x)), np.ones(3))


@case("api-backward-gradient-shape", API, ShapeError,
      "plan.backward given a gradient of another shape than the output it seeds",
      "give a gradient shaped like the forward's output", "gradient for 'scores'")
def _(tmp):
    plan = mlp_plan()
    plan.forward(plan.feeds_for(X(4), np.zeros(4, int)))
    plan.backward({"scores": np.ones((4, 7))})


CLI = "the command line"


def cli_error(tmp, *argv):
    """Run a `dagnet` command's function: the UsageError it raises (main prints it)."""
    from dagnet.cli.main import build_parser

    args = build_parser().parse_args([str(a) for a in argv])
    args.func(args)


def cli_run(tmp):
    """A one-epoch `dagnet train` run folder on tiny IDX data (tmp/run)."""
    from dagnet.cli.main import main

    write_mnist_like(str(tmp), n_train=40, n_test=10, size=8, classes=4)
    (tmp / "net.yaml").write_text("input: {shape: [1, 8, 8]}\nlayers: [{type: fc, hidden: 4}]\n")
    with mock.patch("sys.stdout", io.StringIO()):
        assert main(["train", str(tmp / "net.yaml"), "--data", f"mnist:{tmp}", "--val", "8",
                     "--epochs", "1", "--batch-size", "8", "--out", str(tmp / "run"),
                     "--quiet"]) == 0
    return tmp / "run"


@case("cli-resume-other-flags", CLI, UsageError,
      "`dagnet train --resume` with a flag whose value differs from the run's",
      "leave the flag out (the run's value is used), or change it with --override FLAG=VALUE, "
      "which the run's history records", "--override lr=0.1")
def _(tmp):
    run = cli_run(tmp)
    cli_error(tmp, "train", tmp / "net.yaml", "--out", run, "--resume", "--lr", "0.1")


@case("cli-override-fixed", CLI, UsageError,
      "--override of a data flag (--data, --val, --seed, --dtype)",
      "start a new run from the run's params: --weights RUN/checkpoint.npz --out NEW",
      "fixed for the life of a run")
def _(tmp):
    run = cli_run(tmp)
    cli_error(tmp, "train", tmp / "net.yaml", "--out", run, "--resume", "--override", "val=4")


@case("cli-output-is-a-folder", CLI, UsageError,
      "-o names a folder (or --passes a file)", "give a file name (a folder for --passes)",
      "is a folder")
def _(tmp):
    cli_error(tmp, "render", "lenet", "-o", tmp)


@case("cli-maps-of-a-param", CLI, UsageError,
      "`dagnet maps --node` names a param or an input, not a layer",
      "give a layer: the message lists them", "is a param, not a layer")
def _(tmp):
    run = cli_run(tmp)
    cli_error(tmp, "maps", run, "--node", "scores.w", "-o", tmp / "m.png")


@case("cli-input-shape", CLI, UsageError,
      "`dagnet import --input-shape` with a zero, negative or unparsable size",
      "give NAME=C,H,W with positive sizes (no batch dimension)", "--input-shape")
def _(tmp):
    cli_error(tmp, "import", tmp / "m.onnx", "--input-shape", "x=0,0,0")
