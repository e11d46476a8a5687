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
"""
from __future__ import annotations

import copy
import math
import os
import time

import numpy as np

from dagnet.data.preprocess import batch_indices
from dagnet.errors import CheckpointError, TrainingError
from dagnet.train import optim
from dagnet.train.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from dagnet.train.schedules import make_schedule


class Solver:
    """Minibatch training of a compiled train-mode plan with a chosen update rule."""

    def __init__(self, model, data: dict, *, update_rule: str = "sgd", optim_config: dict | None = None,
                 lr_decay: float = 1.0, lr_schedule=None, batch_size: int = 100, num_epochs: int = 10,
                 weight_decay: float = 0.0, num_train_samples: int | None = 1000,
                 num_val_samples: int | None = None, print_every: int = 10, verbose: bool = True,
                 progress: bool | None = None, checkpoint: str | None = None, resume: bool = False,
                 seed: int = 0, on_epoch=None):
        self.model = model
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data.get("X_val"), data.get("y_val")
        if len(self.X_train) == 0:
            raise TrainingError("the training set is empty")
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
        lr0 = self.optim_config.get("learning_rate", 1e-2)
        if lr_schedule is None:
            lr_schedule = {"name": "step", "lr_decay": lr_decay} if lr_decay != 1.0 else "constant"
        self.schedule = make_schedule(lr_schedule, lr0, total=self.num_epochs)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
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
        loss, grads = self.model.loss_and_grads(self.X_train[idx], self.y_train[idx],
                                                reg=self.weight_decay)
        if not math.isfinite(loss):
            raise TrainingError(f"loss is {loss} at epoch {self.epoch + 1}, iteration "
                                f"{len(self.loss_history) + 1}; lower the learning rate "
                                f"(the last checkpoint, if any, holds the last good params)")
        for p, w in self.model.params.items():
            next_w, self.optim_configs[p] = self.update_rule(w, grads[p], self.optim_configs[p])
            if next_w is not w:
                w[...] = next_w  # the plan holds these arrays: update them in place
        return loss

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
            per_step = self.schedule.per == "step"
            lr = None if per_step else self._set_learning_rate(self.epoch)
            batches = batch_indices(len(self.X_train), self.batch_size, self.rng)
            start = time.perf_counter()
            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{self.num_epochs}", unit="batch",
                       disable=not self.progress, leave=True, dynamic_ncols=True)
            for i, idx in enumerate(bar):
                if per_step:
                    lr = self._set_learning_rate(len(self.loss_history))
                loss = self._step(idx)
                self.loss_history.append(loss)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                if self.verbose and not self.progress and self.print_every and \
                        len(self.loss_history) % self.print_every == 0:
                    print(f"(iteration {len(self.loss_history)}) loss: {loss:.6f}")
            bar.close()
            self.epoch_times.append(time.perf_counter() - start)
            self.epoch += 1
            self._end_of_epoch()
        for k, v in self.best_params.items():
            self.model.params[k][...] = v
        for n, st in self.best_state.items():
            for k, v in st.items():
                self.model.state[n][k][...] = v
        return self

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

    # -- checkpoints ------------------------------------------------------------------------
    def history(self) -> dict:
        return {"loss_history": self.loss_history, "train_acc_history": self.train_acc_history,
                "val_acc_history": self.val_acc_history, "epoch_times": self.epoch_times,
                "best_val_acc": self.best_val_acc, "epoch": self.epoch}

    def save(self, path: str) -> None:
        """Write params, state, optimizer, solver state and the graph spec atomically."""
        solver = {
            **self.history(),
            "update_rule": self.update_rule_name,
            "schedule": self.schedule.to_dict(),
            "batch_size": self.batch_size, "num_epochs": self.num_epochs,
            "weight_decay": self.weight_decay, "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "plan_rng": self.model.rng.bit_generator.state,
        }
        save_checkpoint(path, params=self.model.params, state=self.model.state,
                        optimizer=optim.state_to_arrays(self.optim_configs), solver=solver,
                        spec=self.model.source.to_spec(),
                        extra={"best_params": self.best_params, "best_state": self.best_state})

    def load(self, path: str) -> None:
        """Restore a run saved by save(): continue with train()."""
        ck = load_checkpoint(path)
        check_compatible(ck, {k: v.shape for k, v in self.model.params.items()})
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
