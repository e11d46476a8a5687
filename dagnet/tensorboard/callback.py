"""The Solver callback that logs a run to TensorBoard event files in its run folder.

    logger = TensorBoardLogger("runs/lenet", hparams={"lr": 0.04, "update_rule": "adam"})
    Solver(plan, data, callbacks=[logger], ...).train()
    logger.close()                      # "success"; close("failure") after an exception

Tags (the step axis of step/* is the global iteration, of epoch/* and the histograms the
epoch): step/loss, step/lr; epoch/loss (the epoch's mean training loss), epoch/train_acc,
epoch/val_acc, epoch/val_loss (where the solver keeps it), epoch/lr, epoch/seconds;
weights/PARAM and grads/PARAM histograms (the gradients of the epoch's last step). hparams
go to the hparams plugin as a session (its start now, its end and status at close).
"""
from __future__ import annotations

import time

import numpy as np

from dagnet.tensorboard import proto
from dagnet.tensorboard.writer import SummaryWriter


class TensorBoardLogger:
    def __init__(self, logdir, hparams: dict | None = None, histograms: bool = True):
        self.logdir = logdir
        self.hparams = hparams
        self.histograms = histograms
        self.writer: SummaryWriter | None = None
        self._epoch_losses: list[float] = []

    def _open(self, solver) -> SummaryWriter:
        if self.writer is None:
            step = len(solver.loss_history)
            # resumed (steps already taken): a restart marker at this step, see SummaryWriter
            self.writer = SummaryWriter(self.logdir, purge_step=step if step > 1 else None)
            if self.hparams:
                content = proto.hparams_session_start(self.hparams, time.time())
                self.writer.add_plugin_data(proto.SESSION_START_TAG, proto.HPARAMS_PLUGIN, content)
        return self.writer

    def on_step_end(self, solver) -> None:
        w = self._open(solver)
        loss = solver.loss_history[-1]
        self._epoch_losses.append(loss)
        w.add_scalars({"step/loss": loss, "step/lr": _lr(solver)}, len(solver.loss_history))

    def on_epoch_end(self, solver) -> None:
        w = self._open(solver)
        epoch = solver.epoch
        values = {"epoch/loss": float(np.mean(self._epoch_losses)) if self._epoch_losses else None,
                  "epoch/train_acc": _last(solver.train_acc_history),
                  "epoch/val_acc": _last(solver.val_acc_history),
                  "epoch/val_loss": _last(getattr(solver, "val_loss_history", [])),
                  "epoch/lr": _lr(solver), "epoch/seconds": _last(solver.epoch_times)}
        w.add_scalars({k: v for k, v in values.items() if v is not None}, epoch)
        self._epoch_losses.clear()
        if self.histograms:
            w.add_histograms({f"weights/{k}": v for k, v in solver.model.params.items()}, epoch)
            grads = getattr(solver, "last_grads", None) or {}
            w.add_histograms({f"grads/{k}": grads[k] for k in solver.model.params if k in grads},
                             epoch)
        w.flush()  # after the epoch's checkpoint: a killed run resumes from here

    def close(self, status: str = "success") -> None:
        """Flush and close; end the hparams session with status success or failure."""
        if self.writer is None:
            return
        if self.hparams:
            self.writer.add_plugin_data(proto.SESSION_END_TAG, proto.HPARAMS_PLUGIN,
                                        proto.hparams_session_end(status, time.time()))
        self.writer.close()
        self.writer = None


def _last(values):
    return float(values[-1]) if len(values) else None


def _lr(solver) -> float:
    """The learning rate the last step used (the schedule writes it into every config)."""
    config = next(iter(solver.optim_configs.values()), {})
    return float(config.get("learning_rate", float("nan")))


def write_experiment(logdir, space, metrics=("epoch/val_acc", "epoch/train_acc", "epoch/loss"),
                     name: str = "") -> None:
    """The hparams dashboard's experiment for a search: one column per sampled dimension of
    `space` (dagnet.tune.space Params: ranges as intervals, choices as discrete domains) and
    the metrics its trials' runs log."""
    infos = []
    for p in space:
        if p.kind in ("float", "int"):
            infos.append({"name": p.name, "type": "float64", "low": p.low, "high": p.high})
        elif p.kind == "choice":
            kinds = {type(c) for c in p.choices}
            kind = "bool" if kinds == {bool} else (
                "float64" if kinds <= {int, float} else "string")
            values = list(p.choices) if kind != "string" else [str(c) for c in p.choices]
            infos.append({"name": p.name, "type": kind, "values": values})
    with SummaryWriter(logdir) as w:
        w.add_plugin_data(proto.EXPERIMENT_TAG, proto.HPARAMS_PLUGIN,
                          proto.hparams_experiment(infos, list(metrics), name))
