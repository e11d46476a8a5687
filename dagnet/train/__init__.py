"""Training: the Solver, update rules, learning-rate schedules, early stopping, checkpoints."""
from dagnet.train.checkpoint import Checkpoint, check_compatible, load_checkpoint, save_checkpoint
from dagnet.train.optim import (
    UPDATE_RULES,
    adadelta,
    adagrad,
    adam,
    adamw,
    check_config,
    get_update_rule,
    nesterov,
    rmsprop,
    sgd,
    sgd_momentum,
    state_from_arrays,
    state_to_arrays,
)
from dagnet.train.schedules import Schedule, make_schedule
from dagnet.train.solver import Solver
from dagnet.train.stopping import EarlyStopping

__all__ = [
    "Checkpoint",
    "EarlyStopping",
    "Schedule",
    "Solver",
    "UPDATE_RULES",
    "adadelta",
    "adagrad",
    "adam",
    "adamw",
    "check_compatible",
    "check_config",
    "get_update_rule",
    "load_checkpoint",
    "make_schedule",
    "nesterov",
    "rmsprop",
    "save_checkpoint",
    "sgd",
    "sgd_momentum",
    "state_from_arrays",
    "state_to_arrays",
]
