"""Solver: overfitting sanity checks, histories, resume equality, best params."""
import numpy as np
import pytest

import dagnet
from dagnet.errors import TrainingError
from dagnet.models import fc_net, three_layer_convnet
from dagnet.train.solver import Solver


def tiny_data(n, shape, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n,) + shape).astype(np.float32)
    y = rng.integers(0, classes, n)
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


@pytest.mark.parametrize("hidden", [[100, 100], [100, 100, 100, 100]])
def test_fc_net_overfits_50_examples(hidden):
    data = tiny_data(50, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=hidden), seed=1)
    solver = Solver(plan, data, update_rule="sgd_momentum", optim_config={"learning_rate": 1e-2},
                    batch_size=25, num_epochs=20, verbose=False)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0
    assert len(solver.loss_history) == 40 and len(solver.val_acc_history) == 20


def test_three_layer_convnet_overfits_100_examples():
    data = tiny_data(100, (3, 32, 32))
    # the classic course setting: gaussian init with weight_scale 1e-2, adam 1e-3, batch 50
    plan = dagnet.compile(three_layer_convnet(init="gaussian", weight_scale=1e-2), seed=0)
    solver = Solver(plan, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    batch_size=50, num_epochs=20, verbose=False)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0


def train_run(tmp_path, epochs, resume=False, name="ck.npz"):
    data = tiny_data(60, (1, 28, 28), seed=3)
    plan = dagnet.compile(fc_net(hidden_dims=[20], dropout=0.2, batchnorm=True), seed=5)
    solver = Solver(plan, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    batch_size=16, num_epochs=epochs, verbose=False, seed=9,
                    checkpoint=str(tmp_path / name), resume=resume, lr_decay=0.9)
    solver.train()
    return plan, solver


def test_resume_gives_bitwise_the_same_params(tmp_path):
    full, s_full = train_run(tmp_path, 4, name="full.npz")
    train_run(tmp_path, 2, name="part.npz")
    resumed, s_res = train_run(tmp_path, 4, resume=True, name="part.npz")
    assert s_res.loss_history == s_full.loss_history
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    for n in full.state:
        for k in full.state[n]:
            assert np.array_equal(full.state[n][k], resumed.state[n][k])


def test_same_seed_same_run(tmp_path):
    a, sa = train_run(tmp_path, 2, name="a.npz")
    b, sb = train_run(tmp_path, 2, name="b.npz")
    assert sa.loss_history == sb.loss_history
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point of the test
def test_nan_loss_stops_with_a_clear_error():
    data = tiny_data(20, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[10]), seed=0)
    solver = Solver(plan, data, update_rule="sgd", optim_config={"learning_rate": 1e9},
                    batch_size=10, num_epochs=5, verbose=False)
    with pytest.raises(TrainingError, match="loss is (nan|inf).*epoch"):
        solver.train()


def test_classic_course_keywords_and_histories():
    data = tiny_data(40, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[30]), seed=0)
    solver = Solver(plan, data, update_rule="sgd", optim_config={"learning_rate": 1e-2},
                    lr_decay=0.5, batch_size=20, num_epochs=3, print_every=1, verbose=False)
    solver.train()
    assert [c["learning_rate"] for c in solver.optim_configs.values()][0] == pytest.approx(1e-2 * 0.25)
    assert len(solver.train_acc_history) == 3
    assert solver.best_val_acc == max(solver.val_acc_history)
