"""Solver: trains an ExecutionPlan on train/val arrays.

The constructor takes the classic course keyword names, so notebooks port with few changes:

    solver = Solver(plan, {"X_train": ..., "y_train": ..., "X_val": ..., "y_val": ...},
                    update_rule="sgd_momentum", optim_config={"learning_rate": 1e-2},
                    lr_decay=0.95, batch_size=64, num_epochs=2, print_every=100, verbose=True)
    solver.train()
    solver.loss_history, solver.train_acc_history, solver.val_acc_history, solver.best_params

Each epoch visits every training example once in a seeded shuffled order. At the end the model
holds the params of the best epoch: the highest validation accuracy, or with
monitor="val_loss" the lowest validation loss (the training accuracy when there is no
validation set). With patience=P training stops early once P epochs pass without the monitored
value improving by more than min_delta (Keras's EarlyStopping with restore_best_weights).
With `checkpoint` set, the run is written atomically after every epoch and `resume=True`
continues it ending with bitwise the same params as an uninterrupted run (the batch order,
dropout rng, optimizer state, histories and early-stopping state are all restored).

Output: with verbose, one line per epoch (the epoch's mean training loss, accuracies, val loss,
time). progress=None shows a tqdm bar per epoch on a terminal or in a notebook; off a terminal
(a log file, CI) there is no bar - only the epoch lines, plus the course's
"(iteration k) loss" line every print_every steps.

Reliability: every argument is checked before training (TrainingError naming the argument and
its valid range; optim_config keys must be the update rule's, with `lr` accepted for
learning_rate). The data is checked against the plan (DatasetError for unknown keys, missing
or empty splits, X/y length or shape mismatches, labels outside the model's classes). Every
step checks the loss and one sum per gradient for NaN/Inf; on the first non-finite one
training stops with a TrainingError before any param is updated, naming the iteration and -
found by replaying that batch with every value checked (runtime.locate_nonfinite) - the first
step and node that produced it. A checkpoint is never written with non-finite params, so the
file on disk always holds the last good epoch.

Resuming checks what it resumes (dagnet.train.resume): a checkpoint of another graph (a
structural diff: relu -> tanh or an added dropout is refused, naming the node), dtype or
state, of other data (a fingerprint of the splits), or of another recipe (update rule and its
hyperparameters, schedule, epochs, batch size, weight decay, seed, early stopping) is refused
with a CheckpointError naming what differs. allow_changes=["learning_rate", ...] lets named
recipe changes through; they are recorded in solver.changes, which every later checkpoint
carries. A checkpoint with best params or optimizer state of another shape, or mistyped solver
state, is a CheckpointError too. train() holds a lock on the checkpoint (`<checkpoint>.lock`):
a second process training into it fails naming the first, and a solver whose checkpoint was
replaced by another process since it read it refuses to overwrite it. run_info: JSON-able
facts stored with every checkpoint (the `dagnet train` command keeps its flags there).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import time

import numpy as np

from dagnet.data.augment import augment_key, augment_rng
from dagnet.data.preprocess import batch_indices
from dagnet.errors import CheckpointError, TrainingError
from dagnet.train import checks, optim
from dagnet.train.callbacks import notify
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from dagnet.train.nonfinite import first_nonfinite, nonfinite_error
from dagnet.train import resume as resume_checks
from dagnet.train.resume import CHANGEABLE, data_fingerprint, recipe, restore
from dagnet.train.runfolder import RunLock
from dagnet.train.schedules import make_schedule
from dagnet.train.stopping import MONITORS, EarlyStopping


class Solver:
    """Minibatch training of a compiled train-mode plan with a chosen update rule.

    update_rule: one of optim.UPDATE_RULES; optim_config: its hyperparameters (see
    optim.DEFAULTS; the learning rate defaults to the rule's); lr_decay or lr_schedule (not
    both): the learning-rate schedule; weight_decay: 0.5*wd*||W||^2 added to the loss over
    the weights (for AdamW give its decoupled decay as optim_config={"weight_decay": ...}
    instead); patience / monitor / min_delta: early stopping (see the module docstring);
    callbacks: see dagnet.train.callbacks (TensorBoard, Optuna pruning); augment: a function
    (X_batch, rng) -> X_batch, e.g. dagnet.data.augment.Augment, seeded per step."""

    def __init__(self, model, data: dict, *, update_rule: str = "sgd", optim_config: dict | None = None,
                 lr_decay: float = 1.0, lr_schedule=None, batch_size: int = 100, num_epochs: int = 10,
                 weight_decay: float = 0.0, num_train_samples: int | None = 1000,
                 num_val_samples: int | None = None, print_every: int | None = 10,
                 verbose: bool = True, progress: bool | None = None, checkpoint: str | None = None,
                 resume: bool = False, seed: int = 0, on_epoch=None, patience: int | None = None,
                 monitor: str = "val_acc", min_delta: float = 0.0, callbacks=(), augment=None,
                 allow_changes=(), run_info: dict | None = None):
        checks.check_model(model)
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = checks.check_data(model, data)
        self.update_rule_name = update_rule
        self.update_rule = optim.get_update_rule(update_rule)
        self.optim_config = optim.check_config(
            update_rule, {} if optim_config is None else copy.copy(optim_config),
            where="optim_config")
        self.batch_size = checks.count("batch_size", batch_size)
        self.num_epochs = checks.count("num_epochs", num_epochs)
        self.weight_decay = checks.number("weight_decay", weight_decay)
        if update_rule == "adamw" and self.weight_decay:
            raise TrainingError(
                f"Solver: weight_decay = {weight_decay!r} adds an L2 term to the loss, which AdamW "
                f"exists to replace; give AdamW's decoupled decay as optim_config="
                f"{{'weight_decay': {weight_decay!r}}} and leave weight_decay at 0")
        self.num_train_samples = checks.count("num_train_samples", num_train_samples,
                                              optional="all examples")
        self.num_val_samples = checks.count("num_val_samples", num_val_samples,
                                            optional="all examples")
        self.print_every = checks.count("print_every", print_every, low=0, optional="never") or 0
        self.verbose = checks.flag("verbose", verbose)
        self.progress = checks.flag("progress", progress, optional="a bar on a terminal")
        self.checkpoint = checks.path("checkpoint", checkpoint)
        resume = checks.flag("resume", resume)
        self.seed = checks.count("seed", seed, low=0)
        self.on_epoch = checks.function("on_epoch", on_epoch)
        self.callbacks = checks.callbacks("callbacks", callbacks)  # see dagnet.train.callbacks
        self.augment = checks.function("augment", augment, "None or a function (X_batch, rng) -> "
                                       "X_batch, e.g. dagnet.data.augment.Augment(flip=True)")
        self.stopping = EarlyStopping(
            checks.choice("monitor", monitor, MONITORS),
            checks.count("patience", patience, optional="never stop early"),
            checks.number("min_delta", min_delta))
        if self.X_val is None and (self.stopping.patience or self.stopping.monitor == "val_loss"):
            what = (f"patience = {patience}" if self.stopping.patience
                    else f"monitor={monitor!r}")
            raise TrainingError(f"Solver: {what} watches the validation set, but data has no "
                                f"X_val/y_val; give a validation split")
        lr_decay = checks.number("lr_decay", lr_decay, positive=True)
        if lr_schedule is None:
            lr_schedule = {"name": "step", "lr_decay": lr_decay} if lr_decay != 1.0 else "constant"
        elif lr_decay != 1.0:
            raise TrainingError(f"Solver: both lr_decay = {lr_decay!r} and lr_schedule = "
                                f"{lr_schedule!r} given; give one (lr_decay=d is lr_schedule="
                                f"{{'name': 'step', 'lr_decay': d}})")
        lr0 = float(self.optim_config.get("learning_rate",
                                          optim.DEFAULTS[update_rule]["learning_rate"]))
        self.schedule = make_schedule(lr_schedule, lr0, total=self.num_epochs)
        self.allow_changes = checks.names("allow_changes", allow_changes, CHANGEABLE)
        self.run_info = checks.json_dict("run_info", run_info)
        self.data_fingerprint = data_fingerprint(self.X_train, self.y_train, self.X_val,
                                                        self.y_val)
        self.changes: list[dict] = []  # recipe changes allowed on resume, by epoch
        self.rng = np.random.default_rng(self.seed)
        self.saved_epoch = None  # the epoch the checkpoint file holds (None: none written/read)
        self._on_disk = None  # that file's identity when this solver last read or wrote it
        self._reset()
        if resume:
            if not checkpoint:
                raise CheckpointError("resume=True needs checkpoint=PATH")
            if os.path.exists(checkpoint):
                self.load(checkpoint)

    def _reset(self):
        self.epoch = 0
        self.best_val_acc = -1.0
        self.best_epoch = 0  # 1-based; 0: the params before training
        self.stopped_early = False
        self._keep_best()
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.val_loss_history: list[float] = []
        self.epoch_times: list[float] = []
        self.optim_configs = {p: self._fresh_config(p) for p in self.model.params}

    def _fresh_config(self, param: str) -> dict:
        """A deep copy of optim_config (state arrays in it must not be shared between params);
        AdamW's decoupled decay only on the params the plan decays, as the L2 term would be."""
        config = copy.deepcopy(self.optim_config)
        if self.update_rule_name == "adamw":
            decayed = getattr(self.model, "decayed", self.model.params)
            default = optim.DEFAULTS["adamw"]["weight_decay"]
            config["weight_decay"] = config.get("weight_decay", default) if param in decayed else 0.0
        return config

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
        if not math.isfinite(loss) or first_nonfinite(grads, self.model.params) is not None:
            # Nothing is updated: the params (and the checkpoint on disk) stay the last good ones.
            raise nonfinite_error(self, loss, grads, X, y, rng_state)
        for p, w in self.model.params.items():
            if p not in grads:
                continue  # frozen (fine-tuning): no gradient, no update, not even weight decay
            next_w, self.optim_configs[p] = self.update_rule(w, grads[p], self.optim_configs[p])
            if next_w is not w:
                w[...] = next_w  # the plan holds these arrays: update them in place
        self.last_grads = grads  # for callbacks (e.g. TensorBoard's gradient histograms)
        return loss

    # -- accuracy and loss ------------------------------------------------------------------
    def _subsample(self, X, y, num_samples):
        """A seeded subsample of num_samples examples (all of them if None or fewer)."""
        if num_samples is not None and len(X) > num_samples:
            idx = np.random.default_rng(self.seed + self.epoch).choice(len(X), num_samples, replace=False)
            X, y = X[idx], y[idx]
        return X, y

    def check_accuracy(self, X, y, num_samples: int | None = None, batch_size: int = 256) -> float:
        """Accuracy of eval-mode predictions, in batches; subsample (seeded) if num_samples."""
        checks.count("batch_size", batch_size, owner="check_accuracy")
        checks.count("num_samples", num_samples, optional="all examples", owner="check_accuracy")
        checks.check_examples("check_accuracy", X, y)
        X, y = self._subsample(X, y, num_samples)
        scores = self.model.predict(X, batch_size=batch_size)
        return float(np.mean(np.argmax(scores, axis=1) == y))

    def check_accuracy_and_loss(self, X, y, num_samples: int | None = None,
                                batch_size: int = 256) -> tuple[float, float]:
        """(accuracy, loss) of eval-mode passes in batches: the loss is the plan's own (its
        mean over the examples) plus the weight-decay term, as the training loss is."""
        X, y = self._subsample(X, y, num_samples)
        plan = self.model
        names = [plan.scores_name, *plan.losses]
        correct, total = 0, 0.0
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size], y[i:i + batch_size]
            out = plan.forward(plan.feeds_for(xb, yb), mode="eval", outputs=names)
            correct += int(np.sum(np.argmax(out[names[0]], axis=1) == yb))
            total += len(xb) * float(sum(np.sum(out[n]) for n in names[1:]))
        reg = plan.regularization(self.weight_decay) if self.weight_decay else 0.0
        return correct / len(X), total / len(X) + reg

    # -- training ---------------------------------------------------------------------------
    def train(self):
        """Run the remaining epochs (or until patience runs out); at the end the model holds
        the params of the best epoch."""
        from tqdm.auto import tqdm

        if self.stopped_early and self.verbose:  # a resumed run that had stopped
            print(f"nothing to train: {self.stop_note()}")
        # Every step checks for NaN/Inf and stops with one TrainingError naming where it arose:
        # numpy's overflow warnings on the way there would only bury that message.
        # One writer per checkpoint: a second process training into it fails here, by name.
        lock = RunLock(self.checkpoint) if self.checkpoint else contextlib.nullcontext()
        with lock, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.checkpoint:
                resume_checks.check_unchanged(self.checkpoint, self._on_disk)
            while self.epoch < self.num_epochs and not self.stopped_early:
                self._epoch(tqdm)
        for k, v in self.best_params.items():
            self.model.params[k][...] = v
        for n, st in self.best_state.items():
            for k, v in st.items():
                self.model.state[n][k][...] = v
        return self

    def _show_bar(self, tqdm) -> bool:
        """progress=None: a bar when verbose on a terminal or in a notebook; off a terminal
        (a log file, CI) a bar's carriage-return updates would pile up as thousands of lines."""
        if self.progress is not None:
            return self.progress
        notebook = any(c.__module__.startswith("tqdm.notebook") for c in tqdm.__mro__)
        isatty = getattr(sys.stderr, "isatty", None)
        return self.verbose and (notebook or bool(isatty and isatty()))

    def _epoch(self, tqdm):
        """One epoch: its minibatch steps, then accuracy, best params and the checkpoint."""
        per_step = self.schedule.per == "step"
        lr = None if per_step else self._set_learning_rate(self.epoch)
        batches = batch_indices(len(self.X_train), self.batch_size, self.rng)
        show_bar = self._show_bar(tqdm)
        start = time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{self.num_epochs}", unit="batch",
                   disable=not show_bar, leave=True, dynamic_ncols=True)
        try:
            for i, idx in enumerate(bar):
                if per_step:
                    lr = self._set_learning_rate(len(self.loss_history))
                loss = self._step(idx)
                self.loss_history.append(loss)
                notify(self.callbacks, "on_step_end", self)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                if self.verbose and not show_bar and self.print_every and \
                        len(self.loss_history) % self.print_every == 0:
                    print(f"(iteration {len(self.loss_history)}) loss: {loss:.6f}")
        finally:
            bar.close()
        self.epoch_times.append(time.perf_counter() - start)
        self.epoch += 1
        self._end_of_epoch(float(np.mean(self.loss_history[-len(batches):])))

    def _set_learning_rate(self, t: int) -> float:
        """The schedule's rate at t (epoch or step, as the schedule counts) into every config."""
        lr = self.schedule(t)
        for cfg in self.optim_configs.values():
            cfg["learning_rate"] = lr
        return lr

    def _monitored(self) -> list[float]:
        """The per-epoch history the best epoch is chosen from."""
        if self.stopping.monitor == "val_loss":
            return self.val_loss_history
        return self.val_acc_history if self.X_val is not None else self.train_acc_history

    def _end_of_epoch(self, mean_loss: float):
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        self.train_acc_history.append(train_acc)
        val = ""
        if self.X_val is not None:
            val_acc, val_loss = self.check_accuracy_and_loss(self.X_val, self.y_val,
                                                             self.num_val_samples)
            self.val_acc_history.append(val_acc)
            self.val_loss_history.append(val_loss)
            val = f", val acc {val_acc:.4f}, val loss {val_loss:.4f}"
        values = self._monitored()
        best = values[self.best_epoch - 1] if self.best_epoch else None
        if self.stopping.improved(values[-1], best):
            self.best_epoch = self.epoch
            accs = self.val_acc_history if self.X_val is not None else self.train_acc_history
            self.best_val_acc = accs[-1]
            self._keep_best()
        self.stopped_early = self.stopping.exhausted(self.epoch, self.best_epoch)
        if self.verbose:
            n = len(self.X_train) / self.epoch_times[-1]
            print(f"epoch {self.epoch}/{self.num_epochs}: loss {mean_loss:.4f}, train acc "
                  f"{train_acc:.4f}{val}, {self.epoch_times[-1]:.1f} s ({n:,.0f} images/s)")
            if self.stopped_early:
                print(self.stop_note())
        if self.checkpoint:
            self.save(self.checkpoint)
        if self.on_epoch:
            self.on_epoch(self)
        notify(self.callbacks, "on_epoch_end", self)

    def stop_note(self) -> str:
        """One line on why training stopped early and whose params are kept."""
        what = self.stopping.describe()
        best = self._monitored()[self.best_epoch - 1]
        return (f"stopped early after epoch {self.epoch}: {what} has not improved on epoch "
                f"{self.best_epoch}'s {best:.4f} for {self.stopping.patience} epochs "
                f"(patience {self.stopping.patience}); keeping the params of epoch {self.best_epoch}")

    # -- checkpoints ------------------------------------------------------------------------
    def history(self) -> dict:
        """The per-step losses and per-epoch figures (JSON-able; history.json of a run)."""
        return {"loss_history": self.loss_history, "train_acc_history": self.train_acc_history,
                "val_acc_history": self.val_acc_history, "val_loss_history": self.val_loss_history,
                "epoch_times": self.epoch_times, "best_val_acc": self.best_val_acc,
                "best_epoch": self.best_epoch, "monitor": self.stopping.monitor,
                "stopped_early": self.stopped_early, "epoch": self.epoch}

    def save(self, path: str) -> None:
        """Write params, state, optimizer, solver state and the graph spec atomically.

        Refuses (TrainingError) to write params or state holding NaN/Inf, so the file on disk
        always holds the last good params."""
        bad = [name for name, a in self.model.params.items() if not np.isfinite(a).all()]
        bad += [f"{node}.{key}" for node, st in self.model.state.items() for key, a in st.items()
                if not np.isfinite(a).all()]
        if bad:
            kept = (f"{path} still holds epoch {self.saved_epoch}" if self.saved_epoch is not None
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
        solver.update(recipe=recipe(self), data=self.data_fingerprint,
                      changes=self.changes, run_info=self.run_info)
        save_checkpoint(path, params=self.model.params, state=self.model.state,
                        optimizer=optim.state_to_arrays(self.optim_configs), solver=solver,
                        spec=self.model.source.to_spec(),
                        extra={"best_params": self.best_params, "best_state": self.best_state})
        self.saved_epoch = self.epoch
        if path == self.checkpoint:
            self._on_disk = resume_checks.file_identity(path)

    def load(self, path: str) -> None:
        """Restore a run saved by save() (after checking its graph, data and recipe against
        this solver's; see dagnet.train.resume): continue with train()."""
        identity = resume_checks.file_identity(path)
        restore(self, path, load_checkpoint(path))
        if path == self.checkpoint:
            self._on_disk = identity
