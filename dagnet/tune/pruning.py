"""The Solver callback that reports a trial's validation accuracy to Optuna after every epoch
and, with a pruner, stops a hopeless trial there (after the epoch's checkpoint is written)."""
from __future__ import annotations


class ReportToTrial:
    """on_epoch_end: trial.report(epoch's val acc, epoch); TrialPruned when the pruner says so.

    best: the best validation accuracy so far (the objective: the params the run keeps)."""

    def __init__(self, trial, say=None):
        self.trial = trial
        self.say = say
        self.best = None

    def on_epoch_end(self, solver) -> None:
        import optuna

        accs = solver.val_acc_history or solver.train_acc_history
        self.best = solver.best_val_acc
        self.trial.report(accs[-1], solver.epoch)
        if self.say and solver.epoch < solver.num_epochs:
            self.say(f"trial {self.trial.number}: epoch {solver.epoch}/{solver.num_epochs} "
                     f"val acc {accs[-1]:.4f}")
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {solver.epoch}: val acc {accs[-1]:.4f} "
                                     f"is below the median of earlier trials at that epoch")
