"""What `dagnet train` adds to every run for experiments: TensorBoard event files in the run
folder (scalars, histograms, the run's hyperparameters for the hparams dashboard)."""
from __future__ import annotations

import contextlib

#: the train settings a run reports to the hparams dashboard
HPARAMS = ("update_rule", "lr", "lr_schedule", "warmup", "lr_decay", "batch_size", "epochs",
           "weight_decay", "seed", "data", "model")


def train_hparams(args) -> dict:
    """The run's settings as hparams: numbers, strings and booleans only."""
    out = {}
    for key in HPARAMS:
        value = getattr(args, key, None)
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


def tensorboard_logger(args, hparams: dict | None = None):
    """The Solver callback writing args.out/events.out.tfevents.*; hparams default to the
    run's train settings."""
    from dagnet.tensorboard import TensorBoardLogger

    return TensorBoardLogger(args.out, hparams=hparams if hparams is not None else train_hparams(args))


@contextlib.contextmanager
def logging_to(logger):
    """Close the logger when training ends: its hparams session "success", or "failure" when
    training raised (a pruned trial, a divergence, Ctrl-C)."""
    try:
        yield logger
    except BaseException:
        logger.close("failure")
        raise
    logger.close("success")
