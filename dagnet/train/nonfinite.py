"""What to say when a training step meets a NaN or Inf: which value, where it first arose (by
replaying the batch with every value checked), and what the checkpoint on disk still holds."""
from __future__ import annotations

import math

import numpy as np

from dagnet import runtime
from dagnet.errors import TrainingError


def first_nonfinite(grads: dict, params: dict) -> str | None:
    """The first param whose gradient holds a NaN or Inf, else None. One sum per gradient
    (NaN/Inf propagate into it); only a non-finite sum, which a huge finite gradient can also
    give, pays for the exact element-wise test. Frozen params have no gradient to test."""
    for p in params:
        g = grads.get(p)
        if g is not None and not math.isfinite(float(np.sum(g))) and not np.isfinite(g).all():
            return p
    return None


def nonfinite_error(solver, loss, grads, X, y, rng_state) -> TrainingError:
    """A TrainingError naming the iteration, what was not finite, and (by replaying the
    batch with every value checked) the first step and node that produced a NaN/Inf."""
    where = f"at epoch {solver.epoch + 1}, iteration {len(solver.loss_history) + 1}"
    if not math.isfinite(loss):
        what = f"loss is {loss} {where}"
    else:
        p = first_nonfinite(grads, solver.model.params)
        what = (f"gradient of '{p}' holds {runtime.nonfinite_kind(grads[p])} {where} (the loss, "
                f"{loss:.6g}, is finite)")
    try:
        found = runtime.locate_nonfinite(solver.model, solver.model.feeds_for(X, y), rng_state)
    except Exception as e:  # the diagnosis must never hide the error it explains
        found = f"(the batch could not be replayed: {type(e).__name__}: {e})"
    if found is None:
        found = ("replaying the batch gave only finite values: the weight-decay term "
                 "overflowed, or a kernel is not deterministic")
    if solver.saved_epoch is not None:
        kept = (f"the checkpoint {solver.checkpoint} still holds the last good params (after "
                f"epoch {solver.saved_epoch}): resume from it with a lower learning rate")
    elif solver.checkpoint:
        kept = "no checkpoint was written yet (the first epoch had not ended)"
    else:
        kept = "no checkpoint is kept (pass checkpoint=PATH to keep one per epoch)"
    return TrainingError(f"{what}; training stopped, the params were not updated. First "
                         f"non-finite value: {found}. {kept[0].upper() + kept[1:]}")
