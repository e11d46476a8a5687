"""What every command shares: resolving a model, loading data and run folders, JSON files.

A user's mistake (bad path, unknown model, bad flag value) is a UsageError: one line, exit 2.
"""
from __future__ import annotations

import os

import numpy as np

from dagnet.errors import DagnetError

DATA_HELP = ("fashion-mnist (Debian's dataset-fashion-mnist), mnist:DIR, fashion-mnist:DIR, "
             "or cifar10:DIR (the CIFAR-10 python batches)")


class UsageError(DagnetError):
    """A bad command line: printed as one line, exit code 2."""


def resolve_graph(target: str, input_shape=None, num_classes=None):
    """A Graph from a spec file path or a model-zoo name (sized for the data when given)."""
    from dagnet.graph import Graph
    from dagnet.models import MODELS, get_model

    if target.endswith(".onnx"):
        return load_onnx(target).graph
    if os.path.exists(target):
        return Graph.from_spec(target)
    if target.endswith((".yaml", ".yml", ".json")):
        raise UsageError(f"spec file not found: {target}")
    if target not in MODELS:
        raise UsageError(f"unknown model '{target}': give a spec file or one of {', '.join(MODELS)}")
    kw = {}
    if input_shape is not None:
        kw.update(input_shape=tuple(input_shape), num_classes=num_classes)
    return get_model(target, **kw)


def load_onnx(path: str, input_shapes=None):
    from dagnet import onnx

    if not os.path.exists(path):
        raise UsageError(f"ONNX file not found: {path}")
    return onnx.load(path, input_shapes=input_shapes or None)


def load_data(spec: str, num_val: int, seed: int):
    """Train/val/test arrays standardised per channel with train statistics, and a JSON-able
    description (to reload the same data for `evaluate`)."""
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
    stats = fit_normalization(X, "channel")
    data = {"X_train": normalize(X, stats), "y_train": y, "X_val": normalize(Xv, stats), "y_val": yv,
            "X_test": normalize(raw["X_test"], stats), "y_test": raw["y_test"]}
    info = {"data": spec, "num_val": num_val, "split_seed": seed,
            "normalization": {k: np.asarray(v).tolist() for k, v in stats.items()}}
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
    """(graph, plan, checkpoint) of a run directory written by `dagnet train`; the plan holds
    the best-validation params (or the last epoch's with best=False)."""
    import dagnet
    from dagnet.graph import Graph
    from dagnet.train.checkpoint import load_checkpoint

    if not os.path.isdir(run_dir):
        raise UsageError(f"no run directory {run_dir}")
    ck = load_checkpoint(os.path.join(run_dir, "checkpoint.npz"))
    params, state = ck.params, ck.state
    if best and ck.extra.get("best_params"):
        params, state = ck.extra["best_params"], ck.extra.get("best_state", state)
    if not params:
        raise UsageError(f"{run_dir}/checkpoint.npz holds no params: it is not a training checkpoint")
    graph = Graph.from_spec(ck.spec)
    plan = dagnet.compile(graph, mode=mode, params=params, state=state,
                          dtype=next(iter(params.values())).dtype)
    return graph, plan, ck


def load_graph_or_plan(target: str, plan: bool, mode: str = "train"):
    """A model name, spec file, run directory or (with the onnx extra) .onnx file, as a Graph
    or a compiled plan."""
    import dagnet

    if os.path.isdir(target):
        graph, run_plan, _ = load_run(target, mode="eval")
        return run_plan if plan else graph
    if target.endswith(".onnx"):
        m = load_onnx(target)
        return dagnet.compile(m.graph, mode=mode, params=m.params, state=m.state) if plan else m.graph
    graph = resolve_graph(target)
    return dagnet.compile(graph, mode=mode) if plan else graph
