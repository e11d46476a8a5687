"""Save a trained model as a run folder and load it back for prediction, in one line each.

    dagnet.save("runs/mine", solver, normalization=stats)   # or a plan, or a loaded Model
    model = dagnet.load("runs/mine")                         # also a folder `dagnet train` wrote
    model.predict(images)                                    # raw images: see dagnet.inference

The folder is the one `dagnet train` writes, so every command reads either:
    checkpoint.npz  params, state and graph spec (a Solver's: also optimizer state and the
                    best-validation params), see dagnet.train.checkpoint
    data.json       the preprocessing: {"normalization": {"mean": ..., "std": ...},
                    "pixel_scale": 255, "class_names": [...]}; `dagnet train` adds the dataset
                    and its split ("data", "num_val", "split_seed") for `dagnet evaluate`
    history.json    the loss and accuracy curves (from a Solver)

This module compiles (load returns a ready plan), so it sits with the facade above the core
(tests/test_layering.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dagnet import arguments, files
from dagnet.compiler import ExecutionPlan
from dagnet.compiler import compile as compile_graph
from dagnet.errors import CheckpointError, DagnetError, DatasetError
from dagnet.graph import Graph
from dagnet.inference import Model
from dagnet.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dagnet.train.solver import Solver

CHECKPOINT = "checkpoint.npz"
DATA = "data.json"
HISTORY = "history.json"
#: what dagnet's loaders divide uint8 pixels by (they give [0, 1] images)
PIXEL_SCALE = 255.0


@dataclass
class Run:
    """What a run folder (or a checkpoint file) holds: the graph, the params and state to use
    (the best-validation ones where kept), the checkpoint, and data.json (None if absent)."""

    graph: Graph
    params: dict
    state: dict
    checkpoint: Checkpoint
    info: dict | None
    path: str


def read_run(path, best: bool = True) -> Run:
    """The Run in a folder written by `dagnet train` or save(), or in one checkpoint file.
    best: the best-validation params where the checkpoint keeps them, else the last ones."""
    path = arguments.path("dagnet.load", "path", path, error=CheckpointError)
    info_path = None
    if os.path.isdir(path):
        ckpt = os.path.join(path, CHECKPOINT)
        if not os.path.exists(ckpt):
            raise CheckpointError(f"{path} is not a run folder: it holds no {CHECKPOINT} (written "
                                  f"by `dagnet train` or dagnet.save)")
        info_path = os.path.join(path, DATA)
    elif os.path.exists(path):
        ckpt = path
        if os.path.basename(path) == CHECKPOINT:  # inside a run folder: its data.json belongs to it
            info_path = os.path.join(os.path.dirname(path), DATA)
    else:
        raise CheckpointError(f"no run folder or checkpoint file at {path}")
    ck = load_checkpoint(ckpt)
    params, state = ck.params, ck.state
    if best and ck.extra.get("best_params"):
        params, state = ck.extra["best_params"], ck.extra.get("best_state", state)
    if not params or not ck.spec:
        raise CheckpointError(f"{ckpt} holds no {'params' if not params else 'graph spec'}: it is "
                              f"not a model checkpoint (save one with dagnet.save)")
    info = _read_info(info_path) if info_path and os.path.exists(info_path) else None
    return Run(Graph.from_spec(ck.spec), params, state, ck, info, path)


def _read_info(path: str) -> dict:
    from dagnet.train.runfolder import INFO_FIELDS, read_json

    return read_json(path, INFO_FIELDS, "save the model again to rewrite it", error=CheckpointError,
                     optional=tuple(INFO_FIELDS))


def load(path, best: bool = True) -> Model:
    """A Model from a run folder (or a checkpoint file: then with no normalisation), ready to
    predict on raw images with the preprocessing it was trained with."""
    run = read_run(path, best)
    if run.info is None and os.path.isdir(run.path):
        raise CheckpointError(f"{run.path} has no {DATA}, so the preprocessing the model was "
                              f"trained with is unknown; save it with dagnet.save(folder, plan, "
                              f"normalization=stats) (normalization=None if it had none)")
    dtype = next(iter(run.params.values())).dtype
    plan = compile_graph(run.graph, mode="eval", params=run.params, state=run.state, dtype=dtype)
    return Model(plan, **preprocessing(run.info or {}))


def preprocessing(info: dict) -> dict:
    """Model keyword arguments (normalization, pixel_scale, class_names) from data.json."""
    return {"normalization": {k: np.asarray(v, dtype=np.float64)
                              for k, v in (info.get("normalization") or {}).items()},
            "pixel_scale": info.get("pixel_scale", PIXEL_SCALE),
            "class_names": info.get("class_names")}


def save(path, model, normalization: dict | None = None, pixel_scale: float | None = None,
         class_names=None) -> str:
    """Write a run folder for a trained model: a Solver (resumable checkpoint and curves), an
    ExecutionPlan, or a Model (its preprocessing is kept unless given). Returns the folder.

    normalization: the stats the training data was normalised with, as fit_normalization gives
    them ({"mean", "std"} of shape (1, C, 1, 1) or (1, C, H, W)); None: none. pixel_scale: what
    integer pixels were divided by (255: the [0, 1] images of dagnet's loaders). class_names:
    one name per class, shown by `dagnet predict`."""
    path = arguments.path("dagnet.save", "path", path)
    if class_names is not None and (isinstance(class_names, str) or not isinstance(
            class_names, (list, tuple, np.ndarray))):
        raise arguments.bad("dagnet.save", "class_names", class_names, "None or a list of names, "
                            "one per class", DatasetError)
    if pixel_scale is not None:
        arguments.number("dagnet.save", "pixel_scale", pixel_scale, positive=True,
                         error=DatasetError)
    solver = model if isinstance(model, Solver) else None
    if isinstance(model, Model):
        normalization = model.normalization if normalization is None else normalization
        pixel_scale = model.pixel_scale if pixel_scale is None else pixel_scale
        class_names = model.class_names if class_names is None else class_names
        plan = model.plan
    else:
        plan = solver.model if solver else model
    if not isinstance(plan, ExecutionPlan):
        raise DagnetError(f"dagnet.save takes a Solver, an ExecutionPlan (dagnet.compile) or a "
                          f"Model (dagnet.load), got {type(model).__name__}")
    shown = Model(plan, _checked_normalization(normalization, plan), 1.0)
    pixel_scale = PIXEL_SCALE if pixel_scale is None else float(pixel_scale)
    if not pixel_scale > 0:
        raise DatasetError(f"pixel_scale must be > 0, got {pixel_scale}")
    if class_names is not None and len(class_names) != shown.num_classes:
        raise DatasetError(f"class_names has {len(class_names)} names but the model scores "
                           f"{shown.num_classes} classes")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create the run folder {path}: {e.strerror}") from None
    ckpt = os.path.join(path, CHECKPOINT)
    if solver:
        solver.save(ckpt)
        write_json(os.path.join(path, HISTORY), solver.history())
    else:
        save_checkpoint(ckpt, params=plan.params, state=plan.state, optimizer={}, solver={},
                        spec=plan.source.to_spec())
    info = {"normalization": {k: v.tolist() for k, v in shown.normalization.items()},
            "pixel_scale": pixel_scale}
    if class_names is not None:
        info["class_names"] = [str(c) for c in class_names]
    write_json(os.path.join(path, DATA), info)
    return path


def _checked_normalization(stats, plan) -> dict:
    """stats as float arrays, or DatasetError if they cannot normalise the plan's input."""
    if not stats:
        return {}
    shape = Model(plan).input_shape
    if not isinstance(stats, dict) or not set(stats) <= {"mean", "std"}:
        keys = sorted(stats) if isinstance(stats, dict) else type(stats).__name__
        raise DatasetError(f"normalization must be a dict with 'mean' and/or 'std' (as "
                           f"fit_normalization returns), got {keys}")
    out = {}
    for key, value in stats.items():
        a = np.asarray(value, dtype=np.float64)
        fits = len(shape) == 3 and a.shape in ((1, shape[0], 1, 1), (1,) + shape)
        if not fits:
            raise DatasetError(f"normalization {key} of shape {a.shape} does not fit the model's "
                               f"input {shape}: give per-channel (1, C, 1, 1) or per-pixel "
                               f"(1, C, H, W) stats of image inputs (C, H, W)")
        out[key] = a
    return out


def write_json(path: str, obj) -> None:
    """Write JSON atomically: a kill mid-write leaves the old file, never half of one (a temp
    file created exclusively, never through a planted symlink: dagnet.files.write_json)."""
    files.write_json(path, obj, error=CheckpointError)
