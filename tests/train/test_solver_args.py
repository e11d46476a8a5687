"""Every public argument of the Solver is checked as the graph builder checks its own: a
one-line DagnetError naming the argument, the value and the valid range, before any training."""
import numpy as np
import pytest

import dagnet
from dagnet.errors import DatasetError, TrainingError
from dagnet.models import fc_net
from dagnet.train.solver import Solver


def data(n=20, val=True):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, n)
    d = {"X_train": X, "y_train": y}
    if val:
        d.update(X_val=X[:10], y_val=y[:10])
    return d


@pytest.fixture(scope="module")
def plan():
    return dagnet.compile(fc_net(hidden_dims=[10]), seed=0)


@pytest.mark.parametrize("kw,match", [
    ({"num_epochs": -1}, r"num_epochs = -1; it must be an integer >= 1"),
    ({"num_epochs": 0}, r"num_epochs = 0; it must be an integer >= 1"),
    ({"num_epochs": 2.5}, r"num_epochs = 2.5; it must be an integer >= 1"),
    ({"batch_size": 0}, r"batch_size = 0; it must be an integer >= 1"),
    ({"batch_size": "64"}, r"batch_size = '64'; it must be an integer >= 1"),
    ({"batch_size": True}, r"batch_size = True; it must be an integer >= 1"),
    ({"lr_decay": 0.0}, r"lr_decay = 0.0; it must be a finite number > 0"),
    ({"lr_decay": float("nan")}, r"lr_decay = nan; it must be a finite number > 0"),
    ({"weight_decay": -1e-4}, r"weight_decay = -0.0001; it must be a finite number >= 0"),
    ({"weight_decay": float("inf")}, r"weight_decay = inf; it must be a finite number >= 0"),
    ({"num_train_samples": 0}, r"num_train_samples = 0; it must be None .*or an integer >= 1"),
    ({"num_val_samples": -5}, r"num_val_samples = -5; it must be None .*or an integer >= 1"),
    ({"print_every": -1}, r"print_every = -1; it must be .*an integer >= 0"),
    ({"verbose": "yes"}, r"verbose = 'yes'; it must be True or False"),
    ({"progress": 1}, r"progress = 1; it must be None .*True or False"),
    ({"resume": "true"}, r"resume = 'true'; it must be True or False"),
    ({"seed": -1}, r"seed = -1; it must be an integer >= 0"),
    ({"seed": 1.5}, r"seed = 1.5; it must be an integer >= 0"),
    ({"checkpoint": 3}, r"checkpoint = 3; it must be None or a file path"),
    ({"on_epoch": "print"}, r"on_epoch = 'print'; it must be None or a function"),
    ({"update_rule": 3}, r"unknown update rule 3"),
    ({"lr_schedule": 0.5}, r"a name or a dict"),
    ({"lr_decay": 0.9, "lr_schedule": "cosine"}, r"both lr_decay = 0.9 and lr_schedule"),
    ({"patience": 0}, r"patience = 0; it must be None .*or an integer >= 1"),
    ({"monitor": "val_accuracy"}, r"monitor = 'val_accuracy'; it must be one of 'val_acc', "
                                  r"'val_loss'; did you mean 'val_acc'\?"),
    ({"min_delta": -0.1}, r"min_delta = -0.1; it must be a finite number >= 0"),
    ({"update_rule": "adamw", "weight_decay": 1e-2}, r"AdamW.*optim_config=\{'weight_decay'"),
])
def test_bad_arguments(plan, kw, match):
    with pytest.raises(TrainingError, match=match) as e:
        Solver(plan, data(), verbose=kw.pop("verbose", False), **kw)
    assert "\n" not in str(e.value)


def test_a_graph_instead_of_a_plan():
    with pytest.raises(TrainingError, match=r"model must be a compiled plan.*dagnet.compile\(graph\)"):
        Solver(fc_net(hidden_dims=[10]), data(), verbose=False)


def test_a_plan_without_a_loss():
    g = dagnet.Graph("noloss")
    g.affine(g.input("x", (1, 28, 28)), 10, name="scores")
    with pytest.raises(TrainingError, match="no loss.*softmax_cross_entropy"):
        Solver(dagnet.compile(g), data(), verbose=False)


@pytest.mark.parametrize("key,suggestion", [("X_valid", "X_val"), ("y_trian", "y_train"),
                                            ("x_train", "X_train")])
def test_unknown_data_keys(plan, key, suggestion):
    d = data()
    d[key] = d["X_train"]
    with pytest.raises(DatasetError, match=f"data has an unknown key '{key}'.*X_train, y_train, "
                                           f"X_val, y_val.*did you mean '{suggestion}'\\?"):
        Solver(plan, d, verbose=False)


def test_test_split_keys_are_accepted_and_ignored(plan):
    """The course's get_CIFAR10_data() dict carries X_test/y_test: the Solver leaves them alone."""
    d = data()
    d.update(X_test=d["X_train"][:3], y_test=d["y_train"][:3])
    s = Solver(plan, d, verbose=False, num_epochs=1)
    assert len(s.X_train) == 20 and len(s.X_val) == 10


def test_patience_needs_a_validation_set(plan):
    with pytest.raises(TrainingError, match="patience.*validation.*X_val"):
        Solver(plan, data(val=False), patience=2, verbose=False)
    with pytest.raises(TrainingError, match="monitor='val_loss'.*X_val"):
        Solver(plan, data(val=False), monitor="val_loss", verbose=False)


def test_rule_default_learning_rate_when_none_is_given(plan):
    """Adam without a learning_rate runs at Adam's 1e-3, not SGD's 1e-2."""
    assert Solver(plan, data(), update_rule="adam", verbose=False).schedule.learning_rate == 1e-3
    assert Solver(plan, data(), update_rule="adadelta", verbose=False).schedule.learning_rate == 1.0
    assert Solver(plan, data(), update_rule="sgd", verbose=False).schedule.learning_rate == 1e-2


def test_integer_valued_numbers_are_fine(plan):
    s = Solver(plan, data(), batch_size=np.int64(10), num_epochs=2.0, seed=np.uint8(3),
               verbose=False)
    assert (s.batch_size, s.num_epochs, s.seed) == (10, 2, 3)
    assert all(type(v) is int for v in (s.batch_size, s.num_epochs, s.seed))


def test_numpy_learning_rate(plan):
    s = Solver(plan, data(), optim_config={"learning_rate": np.float32(0.5)}, verbose=False)
    assert s.schedule(0) == 0.5


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "64"])
def test_accuracy_and_evaluation_batch_sizes(plan, batch_size):
    from dagnet.train.evaluate import evaluate_arrays

    d = data()
    s = Solver(plan, d, verbose=False)
    with pytest.raises(TrainingError, match=f"batch_size = {batch_size!r}; it must be an integer >= 1"):
        s.check_accuracy(d["X_val"], d["y_val"], batch_size=batch_size)
    with pytest.raises(TrainingError, match=f"batch_size = {batch_size!r}; it must be an integer >= 1"):
        evaluate_arrays(plan, d["X_val"], d["y_val"], batch_size=batch_size)


def test_evaluation_with_labels_of_another_length(plan):
    from dagnet.train.evaluate import evaluate_arrays

    d = data()
    with pytest.raises(DatasetError, match="10 examples but 9 labels"):
        evaluate_arrays(plan, d["X_val"], d["y_val"][:9])
    with pytest.raises(DatasetError, match="10 examples but 9 labels"):
        Solver(plan, d, verbose=False).check_accuracy(d["X_val"], d["y_val"][:9])


def test_optimizer_state_must_be_dicts():
    from dagnet.errors import CheckpointError
    from dagnet.train.optim import state_from_arrays, state_to_arrays

    with pytest.raises(CheckpointError, match="optimizer state of 'w' must be a dict"):
        state_to_arrays({"w": 0.1})
    with pytest.raises(CheckpointError, match="must be a dict"):
        state_to_arrays([{"learning_rate": 0.1}])
    with pytest.raises(CheckpointError, match="must be a dict"):
        state_from_arrays(None)
