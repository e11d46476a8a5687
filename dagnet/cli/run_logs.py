"""What `dagnet train` adds to every run for experiments: TensorBoard event files in the run
folder (scalars, histograms, the run's hyperparameters for the hparams dashboard)."""
from __future__ import annotations

import contextlib

#: the train settings a run reports to the hparams dashboard
HPARAMS = ("update_rule", "lr", "lr_schedule", "warmup", "lr_decay", "batch_size", "epochs",
           "weight_decay", "seed", "data", "model")


def train_hparams(args) -> dict:
    """The run's settings as hparams (numbers, strings and booleans); lr and weight_decay as
    the run uses them when their flags were left out."""
    from dagnet.cli.train import solver_options

    options = solver_options(args)
    effective = {"lr": options["optim_config"]["learning_rate"],
                 "weight_decay": options["optim_config"].get("weight_decay", options["weight_decay"])}
    out = {}
    for key in HPARAMS:
        value = getattr(args, key, None)
        value = effective.get(key, value) if value is None else value
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
    training raised (a pruned trial, a divergence, Ctrl-C). None (a rank other than 0): nothing."""
    if logger is None:
        yield None
        return
    try:
        yield logger
    except BaseException:
        logger.close("failure")
        raise
    logger.close("success")
