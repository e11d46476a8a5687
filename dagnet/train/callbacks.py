"""What a Solver calls back during training.

    class Printer:
        def on_step_end(self, solver):                  # after each update
            print(solver.loss_history[-1])
        def on_epoch_end(self, solver):                 # after the epoch's checkpoint
            print(solver.val_acc_history[-1])
    Solver(plan, data, callbacks=[Printer()], ...)

A callback defines any of on_step_end(solver) and on_epoch_end(solver); it reads what it needs
from the solver (loss_history, the histories, epoch, model.params, last_grads: the gradients
of the last step, optim_configs[p]["learning_rate"]: the rate that step used). An exception
raised by a callback stops training, as from the loop itself (an Optuna pruner does this).
"""
from __future__ import annotations


def notify(callbacks, event: str, solver) -> None:
    """Call `event` on every callback that defines it."""
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is not None:
            method(solver)

