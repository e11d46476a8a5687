"""Which epoch's params are the best, and when to stop: the monitored value, min_delta, patience.

    rule = EarlyStopping(monitor="val_loss", patience=3)
    rule.improved(0.41, best=0.45)             # True: a lower loss by more than min_delta
    rule.exhausted(epoch=7, best_epoch=4)      # True: 3 epochs without improvement

Pure functions of the per-epoch histories, so a resumed run stops where an uninterrupted one
would (Keras's EarlyStopping with restore_best_weights=True, as data).
"""
from __future__ import annotations

from dataclasses import dataclass

MONITORS = ("val_acc", "val_loss")


@dataclass(frozen=True)
class EarlyStopping:
    """monitor: "val_acc" (higher is better) or "val_loss" (lower is better); an epoch improves
    on the best by more than min_delta; patience None never stops, P stops after P epochs
    without improvement."""

    monitor: str = "val_acc"
    patience: int | None = None
    min_delta: float = 0.0

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.monitor == "val_loss":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def exhausted(self, epoch: int, best_epoch: int) -> bool:
        """True when `patience` epochs have passed since the best one (1-based epochs)."""
        return self.patience is not None and epoch - best_epoch >= self.patience

    def best_of(self, values: list[float]) -> tuple[float | None, int]:
        """(best value, its 1-based epoch) of a history, as improved() picks them epoch by
        epoch; (None, 0) for an empty history."""
        best, best_epoch = None, 0
        for epoch, value in enumerate(values, start=1):
            if self.improved(value, best):
                best, best_epoch = value, epoch
        return best, best_epoch

    def describe(self) -> str:
        return "val acc" if self.monitor == "val_acc" else "val loss"
