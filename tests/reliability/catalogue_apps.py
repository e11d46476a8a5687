"""Catalogue cases of saving and loading, the plan explorer, distributed training and
experiments (tune, recipes, augmentation, ensembles); catalogue.py runs them and writes
docs/errors.md."""
from __future__ import annotations

import sys
from unittest import mock

import numpy as np

import dagnet
from dagnet.cli.common import UsageError
from dagnet.errors import (CheckpointError, DagnetError, DatasetError, DistributedError,
                           DTypeError, FeedError, MissingDependencyError, PeerLostError, SpecError,
                           TuneError)
from tests.reliability.cases import case, mlp_plan
from tests.reliability.helpers import tiny_convnet


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

    DataParallel(mlp_plan(bucket_mb=1), OneRankComm(drift=True), shared_memory=False).check_params()


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
