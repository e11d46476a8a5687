"""What every command shares: one resolver for the models commands take, data and run folders,
argument types, JSON files.

A user's mistake (bad path, unknown model, bad flag value) is a UsageError: one line, exit 2.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dagnet.errors import DagnetError

if TYPE_CHECKING:
    from dagnet.graph import Graph

DATA_HELP = ("fashion-mnist (Debian's dataset-fashion-mnist), mnist:DIR, fashion-mnist:DIR, "
             "or cifar10:DIR (the CIFAR-10 python batches)")
MODEL_HELP = ("a model-zoo name (lenet, ...), a spec file (.yaml/.json), an .onnx file or a run "
              "directory")

#: class names of the datasets that have them (MNIST's are its digits)
CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}


class UsageError(DagnetError):
    """A bad command line: printed as one line, exit code 2."""


def at_least(low: int):
    """An argparse type: an integer >= low (a bad value is one line, exit 2, naming the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


@dataclass
class ModelSource:
    """A model named on the command line: its graph and, from a run directory, a checkpoint or
    an .onnx file, the weights that came with it (None: fresh ones)."""

    graph: Graph
    params: dict | None = None
    state: dict | None = None

    def compile(self, mode: str = "train", dtype=None, seed: int = 0):
        """A plan of the model with its own weights (cast to dtype), or fresh ones."""
        import dagnet

        if self.params is None:
            return dagnet.compile(self.graph, mode=mode, dtype=dtype or "float32", seed=seed)
        dtype = np.dtype(dtype or next(iter(self.params.values())).dtype)
        params = {k: v.astype(dtype) for k, v in self.params.items()}
        state = {n: {k: v.astype(dtype) for k, v in st.items()} for n, st in (self.state or {}).items()}
        return dagnet.compile(self.graph, mode=mode, dtype=dtype, seed=seed, params=params,
                              state=state)


def resolve_model(target: str, input_shape=None, num_classes=None) -> ModelSource:
    """What a command's MODEL argument names: a model-zoo name (sized for the data when given),
    a spec file, an .onnx file, a checkpoint (.npz) or a run directory."""
    from dagnet.graph import Graph
    from dagnet.models import MODELS, get_model
    from dagnet.saving import read_run

    if os.path.isdir(target) or target.endswith(".npz"):
        if not os.path.exists(target):
            raise UsageError(f"checkpoint not found: {target}")
        run = read_run(target)
        return ModelSource(run.graph, run.params, run.state)
    if target.endswith(".onnx"):
        m = load_onnx(target)
        return ModelSource(m.graph, m.params, m.state)
    if os.path.exists(target):
        return ModelSource(Graph.from_spec(target))
    if target.endswith((".yaml", ".yml", ".json")):
        raise UsageError(f"spec file not found: {target}")
    if target not in MODELS:
        close = difflib.get_close_matches(target, MODELS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        kinds = MODEL_HELP.replace("lenet, ...", ", ".join(MODELS))
        raise UsageError(f"unknown model '{target}': {hint}give {kinds}")
    kw = {}
    if input_shape is not None:
        kw.update(input_shape=tuple(input_shape), num_classes=num_classes)
    return ModelSource(get_model(target, **kw))


def resolve_graph(target: str, input_shape=None, num_classes=None):
    """The Graph of a command's MODEL argument (see resolve_model)."""
    return resolve_model(target, input_shape, num_classes).graph


def load_onnx(path: str, input_shapes=None):
    from dagnet import onnx

    if not os.path.exists(path):
        raise UsageError(f"ONNX file not found: {path}")
    m = onnx.load(path, input_shapes=input_shapes or None)
    for note in m.notes:  # what the import assumed or converted
        print(f"note: {note}", file=sys.stderr)
    return m


def load_data(spec: str, num_val: int, seed: int, preprocessing: str = "channel"):
    """Train/val/test arrays normalised with train statistics (per channel by default; see
    fit_normalization), and a JSON-able description (to reload the same data for `evaluate`)."""
    return _load_data(spec, num_val, seed, preprocessing, _files_stamp(spec))


def _files_stamp(spec: str) -> tuple:
    """(name, size, mtime) of the data folder's files: files rewritten since are read again."""
    directory = spec.partition(":")[2]
    try:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                            for e in os.scandir(directory))) if directory else ()
    except OSError:
        return ()  # the loader names the folder and what is wrong with it


@functools.lru_cache(maxsize=1)  # a tune's trials in one worker share the arrays
def _load_data(spec: str, num_val: int, seed: int, preprocessing: str, stamp: tuple):
    from dagnet.data.idx import load_mnist_like
    from dagnet.data.preprocess import fit_normalization, normalize, split_train_val

    kind, _, directory = spec.partition(":")
    if kind in ("fashion-mnist", "mnist"):
        raw = load_mnist_like(directory or None, kind)
    elif kind == "cifar10":
        from dagnet.data.cifar import load_cifar10

        if not directory:
            raise UsageError("cifar10 needs a directory: --data cifar10:DIR")
        raw = load_cifar10(directory)
    else:
        raise UsageError(f"unknown dataset '{spec}': use {DATA_HELP}")
    X, y, Xv, yv = split_train_val(raw["X_train"], raw["y_train"], num_val, seed)
    stats = fit_normalization(X, preprocessing)
    data = {"X_train": normalize(X, stats), "y_train": y, "X_val": normalize(Xv, stats), "y_val": yv,
            "X_test": normalize(raw["X_test"], stats), "y_test": raw["y_test"]}
    info = {"data": spec, "num_val": num_val, "split_seed": seed, "preprocessing": preprocessing,
            "normalization": {k: np.asarray(v).tolist() for k, v in stats.items()},
            "pixel_scale": 255.0}
    if kind in CLASS_NAMES:
        info["class_names"] = CLASS_NAMES[kind]
    return data, info


def with_loss(graph):
    """The graph itself if it has a loss; else (e.g. an imported ONNX model) a softmax
    cross-entropy loss on its single output, with an int64 label input `y`."""
    if graph.losses:
        return graph
    outs = graph.outputs
    if len(outs) != 1 or len(graph.shape_of(outs[0])) != 1:
        raise UsageError(f"the model has no loss and its outputs {outs} are not one vector of "
                         f"class scores; add a loss node (e.g. softmax_cross_entropy) to the spec")
    labels = "y" if "y" not in graph else "labels"
    graph.softmax_cross_entropy(outs[0], graph.input(labels, (), dtype="int64"), name="loss")
    graph.outputs = None
    return graph


def write_json(path: str, obj) -> None:
    """Write JSON atomically: a kill mid-write leaves the old file, never half of one."""
    from dagnet.files import write_json as write

    write(path, obj, error=UsageError)


def read_json(path: str, what: str, fields: dict | None = None):
    """A run folder's JSON file, its `fields` ({key: (check, what it must be)}) checked."""
    from dagnet.train.runfolder import read_json as read_checked

    return read_checked(path, fields or {}, what, error=UsageError)


def load_run(run_dir: str, mode: str = "eval", best: bool = True):
    """(graph, plan, checkpoint) of a run directory written by `dagnet train` or dagnet.save;
    the plan holds the best-validation params (or the last epoch's with best=False)."""
    from dagnet.saving import read_run

    if not os.path.isdir(run_dir):
        raise UsageError(f"no run directory {run_dir}")
    run = read_run(run_dir, best)
    return run.graph, ModelSource(run.graph, run.params, run.state).compile(mode), run.checkpoint


def load_graph_or_plan(target: str, plan: bool, mode: str = "train"):
    """A command's MODEL argument (see resolve_model) as a Graph or a compiled plan (with the
    weights of a run, checkpoint or .onnx file)."""
    source = resolve_model(target)
    return source.compile(mode) if plan else source.graph
