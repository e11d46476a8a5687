"""Training: the Solver, update rules, learning-rate schedules, checkpoints."""
from dagnet.train.checkpoint import Checkpoint, check_compatible, load_checkpoint, save_checkpoint
from dagnet.train.optim import (
    UPDATE_RULES,
    adagrad,
    adam,
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

__all__ = [
    "Checkpoint",
    "Schedule",
    "Solver",
    "UPDATE_RULES",
    "adagrad",
    "adam",
    "check_compatible",
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
