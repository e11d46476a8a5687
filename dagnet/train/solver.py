"""Solver: trains an ExecutionPlan on train/val arrays.

The constructor takes the classic course keyword names, so notebooks port with few changes:

    solver = Solver(plan, {"X_train": ..., "y_train": ..., "X_val": ..., "y_val": ...},
                    update_rule="sgd_momentum", optim_config={"learning_rate": 1e-2},
                    lr_decay=0.95, batch_size=64, num_epochs=2, print_every=100, verbose=True)
    solver.train()
    solver.loss_history, solver.train_acc_history, solver.val_acc_history, solver.best_params

Each epoch visits every training example once in a seeded shuffled order. With `checkpoint`
set, the run is written atomically after every epoch and `resume=True` continues it ending
with bitwise the same params as an uninterrupted run (the batch order, dropout rng, optimizer
state and histories are all restored).

Reliability: the data is checked against the plan before the first step (DatasetError for
missing or empty splits, X/y length or shape mismatches, labels outside the model's classes).
Every step checks the loss and one sum per gradient for NaN/Inf; on the first non-finite one
training stops with a TrainingError before any param is updated, naming the iteration and -
found by replaying that batch with every value checked (runtime.locate_nonfinite) - the first
step and node that produced it. A checkpoint is never written with non-finite params, so the
file on disk always holds the last good epoch. Resuming refuses (CheckpointError) a checkpoint
of another graph, dtype or state, or trained with another update rule, batch size, weight decay
or seed.
"""
from __future__ import annotations

import copy
import math
import os
import time

import numpy as np

from dagnet import runtime
from dagnet.data.augment import augment_key, augment_rng
from dagnet.data.preprocess import batch_indices
from dagnet.errors import CheckpointError, DatasetError, TrainingError
from dagnet.train import optim
from dagnet.train.callbacks import notify
from dagnet.train.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from dagnet.train.schedules import make_schedule


class Solver:
    """Minibatch training of a compiled train-mode plan with a chosen update rule."""

    def __init__(self, model, data: dict, *, update_rule: str = "sgd", optim_config: dict | None = None,
                 lr_decay: float = 1.0, lr_schedule=None, batch_size: int = 100, num_epochs: int = 10,
                 weight_decay: float = 0.0, num_train_samples: int | None = 1000,
                 num_val_samples: int | None = None, print_every: int = 10, verbose: bool = True,
                 progress: bool | None = None, checkpoint: str | None = None, resume: bool = False,
                 seed: int = 0, on_epoch=None, callbacks=(), augment=None):
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = _check_data(model, data)
        self.update_rule_name = update_rule
        self.update_rule = optim.get_update_rule(update_rule)
        self.optim_config = dict(optim_config or {})
        self.batch_size = int(batch_size)
        self.num_epochs = int(num_epochs)
        self.weight_decay = float(weight_decay)
        self.num_train_samples = num_train_samples
        self.num_val_samples = num_val_samples
        self.print_every = print_every
        self.verbose = verbose
        self.progress = verbose if progress is None else progress
        self.checkpoint = checkpoint
        self.on_epoch = on_epoch
        self.callbacks = list(callbacks)  # see dagnet.train.callbacks
        self.augment = augment  # X_batch, rng -> X_batch (dagnet.data.augment.Augment)
        lr0 = self.optim_config.get("learning_rate", 1e-2)
        if lr_schedule is None:
            lr_schedule = {"name": "step", "lr_decay": lr_decay} if lr_decay != 1.0 else "constant"
        self.schedule = make_schedule(lr_schedule, lr0, total=self.num_epochs)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._saved_epoch = None  # the epoch the checkpoint file holds (None: none written/read)
        self._reset()
        if resume:
            if not checkpoint:
                raise CheckpointError("resume=True needs checkpoint=PATH")
            if os.path.exists(checkpoint):
                self.load(checkpoint)

    def _reset(self):
        self.epoch = 0
        self.best_val_acc = -1.0
        self._keep_best()
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.epoch_times: list[float] = []
        # deep copies: state arrays in a user's optim_config must not be shared between params
        self.optim_configs = {p: copy.deepcopy(self.optim_config) for p in self.model.params}

    def _keep_best(self):
        """Copy the current params and state (batchnorm statistics belong with their params)."""
        self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        self.best_state = {n: {k: v.copy() for k, v in st.items()} for n, st in self.model.state.items()}

    # -- one step ---------------------------------------------------------------------------
    def _step(self, idx) -> float:
        rng_state = self.model.rng.bit_generator.state  # to replay the batch if it goes wrong
        X, y = self.X_train[idx], self.y_train[idx]
        if self.augment:
            X = self.augment(X, augment_rng(self.seed, len(self.loss_history)))
        loss, grads = self.model.loss_and_grads(X, y, reg=self.weight_decay)
        if not math.isfinite(loss) or _first_nonfinite(grads, self.model.params) is not None:
            # Nothing is updated: the params (and the checkpoint on disk) stay the last good ones.
            raise self._nonfinite_error(loss, grads, X, y, rng_state)
        for p, w in self.model.params.items():
            next_w, self.optim_configs[p] = self.update_rule(w, grads[p], self.optim_configs[p])
            if next_w is not w:
                w[...] = next_w  # the plan holds these arrays: update them in place
        self.last_grads = grads  # for callbacks (e.g. TensorBoard's gradient histograms)
        return loss

    def _nonfinite_error(self, loss, grads, X, y, rng_state) -> TrainingError:
        """A TrainingError naming the iteration, what was not finite, and (by replaying the
        batch with every value checked) the first step and node that produced a NaN/Inf."""
        where = f"at epoch {self.epoch + 1}, iteration {len(self.loss_history) + 1}"
        if not math.isfinite(loss):
            what = f"loss is {loss} {where}"
        else:
            p = _first_nonfinite(grads, self.model.params)
            what = (f"gradient of '{p}' holds {runtime.nonfinite_kind(grads[p])} {where} (the loss, "
                    f"{loss:.6g}, is finite)")
        try:
            found = runtime.locate_nonfinite(self.model, self.model.feeds_for(X, y), rng_state)
        except Exception as e:  # the diagnosis must never hide the error it explains
            found = f"(the batch could not be replayed: {type(e).__name__}: {e})"
        if found is None:
            found = ("replaying the batch gave only finite values: the weight-decay term "
                     "overflowed, or a kernel is not deterministic")
        if self._saved_epoch is not None:
            kept = (f"the checkpoint {self.checkpoint} still holds the last good params (after "
                    f"epoch {self._saved_epoch}): resume from it with a lower learning rate")
        elif self.checkpoint:
            kept = "no checkpoint was written yet (the first epoch had not ended)"
        else:
            kept = "no checkpoint is kept (pass checkpoint=PATH to keep one per epoch)"
        return TrainingError(f"{what}; training stopped, the params were not updated. First "
                             f"non-finite value: {found}. {kept[0].upper() + kept[1:]}")

    # -- accuracy ---------------------------------------------------------------------------
    def check_accuracy(self, X, y, num_samples: int | None = None, batch_size: int = 256) -> float:
        """Accuracy of eval-mode predictions, in batches; subsample (seeded) if num_samples."""
        if num_samples is not None and len(X) > num_samples:
            idx = np.random.default_rng(self.seed + self.epoch).choice(len(X), num_samples, replace=False)
            X, y = X[idx], y[idx]
        scores = self.model.predict(X, batch_size=batch_size)
        return float(np.mean(np.argmax(scores, axis=1) == y))

    # -- training ---------------------------------------------------------------------------
    def train(self):
        """Run the remaining epochs; at the end the model holds the best-validation params."""
        from tqdm.auto import tqdm

        while self.epoch < self.num_epochs:
            self._epoch(tqdm)
        for k, v in self.best_params.items():
            self.model.params[k][...] = v
        for n, st in self.best_state.items():
            for k, v in st.items():
                self.model.state[n][k][...] = v
        return self

    def _epoch(self, tqdm):
        """One epoch: its minibatch steps, then accuracy, best params and the checkpoint."""
        per_step = self.schedule.per == "step"
        lr = None if per_step else self._set_learning_rate(self.epoch)
        batches = batch_indices(len(self.X_train), self.batch_size, self.rng)
        start = time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{self.num_epochs}", unit="batch",
                   disable=not self.progress, leave=True, dynamic_ncols=True)
        try:
            for i, idx in enumerate(bar):
                if per_step:
                    lr = self._set_learning_rate(len(self.loss_history))
                loss = self._step(idx)
                self.loss_history.append(loss)
                notify(self.callbacks, "on_step_end", self)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                if self.verbose and not self.progress and self.print_every and \
                        len(self.loss_history) % self.print_every == 0:
                    print(f"(iteration {len(self.loss_history)}) loss: {loss:.6f}")
        finally:
            bar.close()
        self.epoch_times.append(time.perf_counter() - start)
        self.epoch += 1
        self._end_of_epoch()

    def _set_learning_rate(self, t: int) -> float:
        """The schedule's rate at t (epoch or step, as the schedule counts) into every config."""
        lr = self.schedule(t)
        for cfg in self.optim_configs.values():
            cfg["learning_rate"] = lr
        return lr

    def _end_of_epoch(self):
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        self.train_acc_history.append(train_acc)
        val_acc = None
        if self.X_val is not None and len(self.X_val):
            val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples)
            self.val_acc_history.append(val_acc)
        score = val_acc if val_acc is not None else train_acc
        if score > self.best_val_acc:
            self.best_val_acc = score
            self._keep_best()
        if self.verbose:
            n = len(self.X_train) / self.epoch_times[-1]
            val = f", val acc {val_acc:.4f}" if val_acc is not None else ""
            print(f"epoch {self.epoch}/{self.num_epochs}: loss {self.loss_history[-1]:.4f}, "
                  f"train acc {train_acc:.4f}{val}, {self.epoch_times[-1]:.1f} s ({n:,.0f} images/s)")
        if self.checkpoint:
            self.save(self.checkpoint)
        if self.on_epoch:
            self.on_epoch(self)
        notify(self.callbacks, "on_epoch_end", self)

    # -- checkpoints ------------------------------------------------------------------------
    def history(self) -> dict:
        return {"loss_history": self.loss_history, "train_acc_history": self.train_acc_history,
                "val_acc_history": self.val_acc_history, "epoch_times": self.epoch_times,
                "best_val_acc": self.best_val_acc, "epoch": self.epoch}

    def save(self, path: str) -> None:
        """Write params, state, optimizer, solver state and the graph spec atomically.

        Refuses (TrainingError) to write params or state holding NaN/Inf, so the file on disk
        always holds the last good params."""
        bad = [name for name, a in self.model.params.items() if not np.isfinite(a).all()]
        bad += [f"{node}.{key}" for node, st in self.model.state.items() for key, a in st.items()
                if not np.isfinite(a).all()]
        if bad:
            kept = (f"{path} still holds epoch {self._saved_epoch}" if self._saved_epoch is not None
                    else f"nothing was written to {path}")
            raise TrainingError(f"NaN/Inf in {', '.join(bad)} after epoch {self.epoch}: an update "
                                f"overflowed (learning rate too high?); the checkpoint was not "
                                f"overwritten ({kept})")
        solver = {
            **self.history(),
            "update_rule": self.update_rule_name,
            "schedule": self.schedule.to_dict(),
            "batch_size": self.batch_size, "num_epochs": self.num_epochs,
            "weight_decay": self.weight_decay, "seed": self.seed,
            "augment": augment_key(self.augment),
            "rng": self.rng.bit_generator.state,
            "plan_rng": self.model.rng.bit_generator.state,
        }
        save_checkpoint(path, params=self.model.params, state=self.model.state,
                        optimizer=optim.state_to_arrays(self.optim_configs), solver=solver,
                        spec=self.model.source.to_spec(),
                        extra={"best_params": self.best_params, "best_state": self.best_state})
        self._saved_epoch = self.epoch

    def load(self, path: str) -> None:
        """Restore a run saved by save(): continue with train()."""
        ck = load_checkpoint(path)
        check_compatible(ck, {k: v.shape for k, v in self.model.params.items()},
                         {k: v.dtype for k, v in self.model.params.items()})
        self._check_resumable(path, ck)
        for k, v in ck.params.items():
            self.model.params[k][...] = v
        for node, st in ck.state.items():
            for key, v in st.items():
                self.model.state[node][key][...] = v
        self.optim_configs = optim.state_from_arrays(ck.optimizer)
        for p in self.model.params:
            self.optim_configs.setdefault(p, copy.deepcopy(self.optim_config))
        s = ck.solver
        self.epoch = int(s["epoch"])
        self.loss_history = [float(v) for v in s["loss_history"]]
        self.train_acc_history = list(s["train_acc_history"])
        self.val_acc_history = list(s["val_acc_history"])
        self.epoch_times = list(s["epoch_times"])
        self.best_val_acc = float(s["best_val_acc"])
        self.best_params = {k: np.array(v) for k, v in ck.extra["best_params"].items()}
        self.best_state = {n: {k: np.array(v) for k, v in st.items()}
                           for n, st in ck.extra.get("best_state", {}).items()}
        self.rng.bit_generator.state = s["rng"]
        self.model.rng.bit_generator.state = s["plan_rng"]
        self._saved_epoch = self.epoch

    def _check_resumable(self, path: str, ck) -> None:
        """CheckpointError unless `ck` is a Solver checkpoint of this model and these settings."""
        s = ck.solver
        missing = [k for k in _SOLVER_KEYS if k not in s]
        if missing or "best_params" not in ck.extra:
            raise CheckpointError(
                f"{path} holds no solver state (missing {', '.join(missing or ['best_params'])}): "
                f"it was not written by Solver.save, so it cannot be resumed; load its params "
                f"with load_checkpoint() and compile(graph, params=...) instead")
        mine = {n: {k: (v.shape, v.dtype) for k, v in st.items()} for n, st in self.model.state.items()}
        theirs = {n: {k: (np.shape(v), np.asarray(v).dtype) for k, v in st.items()}
                  for n, st in ck.state.items()}
        if mine != theirs:
            raise CheckpointError(
                f"{path}: its state (nodes {sorted(theirs)}) does not fit this plan's state "
                f"(nodes {sorted(mine)}); build the graph from the spec saved with it "
                f"(checkpoint.spec) or train from scratch")
        wanted = {"update_rule": self.update_rule_name, "batch_size": self.batch_size,
                  "weight_decay": self.weight_decay, "seed": self.seed,
                  "augment": augment_key(self.augment)}
        differ = [f"{k} {s[k]!r} in the checkpoint vs {v!r} now" for k, v in wanted.items()
                  if k in s and s[k] != v]
        if differ:
            raise CheckpointError(
                f"{path} was trained with other settings ({'; '.join(differ)}); resume with "
                f"the same settings to continue that run, or choose another checkpoint path "
                f"to start a new one")


#: what Solver.save writes into the checkpoint's solver section and load needs back
_SOLVER_KEYS = ("epoch", "loss_history", "train_acc_history", "val_acc_history", "epoch_times",
                "best_val_acc", "rng", "plan_rng")


def _first_nonfinite(grads: dict, params: dict) -> str | None:
    """The first param whose gradient holds a NaN or Inf, else None. One sum per gradient
    (NaN/Inf propagate into it); only a non-finite sum, which a huge finite gradient can also
    give, pays for the exact element-wise test."""
    for p in params:
        g = grads[p]
        if not math.isfinite(float(np.sum(g))) and not np.isfinite(g).all():
            return p
    return None


def _check_data(model, data) -> tuple:
    """(X_train, y_train, X_val, y_val) as arrays, checked against the plan: DatasetError for
    missing or empty splits, X/y length mismatches, per-example shapes the plan cannot take,
    and labels that are not class indices of the model's loss."""
    if not isinstance(data, dict):
        raise DatasetError(f"data must be a dict with 'X_train' and 'y_train' (and optionally "
                           f"'X_val', 'y_val'), got {type(data).__name__}")
    missing = [k for k in ("X_train", "y_train") if k not in data]
    if missing:
        raise DatasetError(f"data has no {' or '.join(repr(k) for k in missing)}; give a dict with "
                           f"'X_train' and 'y_train' (and optionally 'X_val', 'y_val')")
    if ("X_val" in data) != ("y_val" in data):
        raise DatasetError("data gives one of 'X_val' and 'y_val' but not the other; give both or "
                           "neither")
    specs = getattr(model, "input_specs", {})
    floats = [s for s in specs.values() if np.dtype(s["dtype"]).kind == "f"]
    classes = _num_classes(model)
    out = []
    for split in ("train", "val"):
        X, y = data.get(f"X_{split}"), data.get(f"y_{split}")
        if X is None and split == "val":
            out += [None, None]
            continue
        try:
            X, y = np.asarray(X), np.asarray(y)
        except (TypeError, ValueError) as e:
            raise DatasetError(f"X_{split}/y_{split} cannot be made into arrays ({e})") from None
        if X.ndim == 0 or y.ndim != 1:
            raise DatasetError(f"X_{split} must be (N, ...) and y_{split} (N,), got shapes "
                               f"{X.shape} and {y.shape}")
        if len(X) != len(y):
            raise DatasetError(f"X_{split} has {len(X)} examples but y_{split} has {len(y)} "
                               f"labels; they must match")
        if split == "train" and len(X) == 0:
            raise DatasetError("the training set is empty (X_train has 0 examples): nothing to "
                               "train on; check the data files and the train/val split")
        if len(floats) == 1 and X.shape[1:] != tuple(floats[0]["shape"]):
            raise DatasetError(f"X_{split} examples have shape {X.shape[1:]} but the model's input "
                               f"takes {tuple(floats[0]['shape'])}; resize the data or build the "
                               f"model for this input shape")
        if len(y) and y.dtype.kind not in "iu":
            raise DatasetError(f"y_{split} must hold integer class indices, got {y.dtype}; convert "
                               f"with y.astype(np.int64)")
        if classes and len(y):
            bad = np.flatnonzero((y < 0) | (y >= classes))
            if bad.size:
                raise DatasetError(
                    f"y_{split}[{int(bad[0])}] = {y[bad[0]]} is not a class index in [0, "
                    f"{classes}): the model has {classes} classes ({bad.size} of {len(y)} labels "
                    f"out of range); build the model with num_classes={int(y.max()) + 1} or "
                    f"fix the labels")
        out += [X, y]
    return tuple(out)


def _num_classes(model) -> int | None:
    """How many classes the (first) loss of a plan scores, or None."""
    try:
        step = next(s for s in model.steps if s.op.kind == "loss")
        return int(model.graph.node(step.inputs[0]).meta["shape"][-1])
    except (AttributeError, StopIteration, KeyError, IndexError):
        return None
