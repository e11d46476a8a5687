"""Solver: overfitting sanity checks, histories, resume equality, best params, early stopping,
the epoch line and the progress bar."""
import io
import sys

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


def train_run(tmp_path, epochs, resume=False, name="ck.npz", **kw):
    data = tiny_data(60, (1, 28, 28), seed=3)
    plan = dagnet.compile(fc_net(hidden_dims=[20], dropout=0.2, batchnorm=True), seed=5)
    solver = Solver(plan, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    batch_size=16, num_epochs=epochs, verbose=False, seed=9,
                    checkpoint=str(tmp_path / name), resume=resume, lr_decay=0.9, **kw)
    solver.train()
    return plan, solver


def test_resume_gives_bitwise_the_same_params(tmp_path):
    full, s_full = train_run(tmp_path, 4, name="full.npz")
    train_run(tmp_path, 2, name="part.npz")
    # a run extended from 2 to 4 epochs: a change of recipe, allowed explicitly and recorded
    resumed, s_res = train_run(tmp_path, 4, resume=True, name="part.npz",
                               allow_changes=["num_epochs"])
    assert s_res.changes == [{"epoch": 2, "changed": {"num_epochs": [2, 4]}}]
    assert s_res.loss_history == s_full.loss_history
    assert s_res.val_loss_history == s_full.val_loss_history and len(s_full.val_loss_history) == 4
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


def epoch_lines(text):
    return [line for line in text.splitlines() if line.startswith("epoch ")]


def test_epoch_line_shows_the_epochs_mean_loss(capsys):
    data = tiny_data(60, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[30]), seed=0)
    solver = Solver(plan, data, update_rule="sgd", optim_config={"learning_rate": 1e-2},
                    batch_size=20, num_epochs=2, verbose=True, progress=False, print_every=0)
    solver.train()
    lines = epoch_lines(capsys.readouterr().out)
    assert len(lines) == 2
    for k, line in enumerate(lines):
        shown = float(line.split("loss ")[1].split(",")[0])
        mean = float(np.mean(solver.loss_history[3 * k:3 * k + 3]))
        assert shown == pytest.approx(mean, abs=5e-5), (line, solver.loss_history)
        assert shown != pytest.approx(solver.loss_history[3 * k + 2], abs=5e-5)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_one_line_per_epoch_off_it(capsys, monkeypatch):
    data = tiny_data(100, (1, 28, 28))

    def run():
        plan = dagnet.compile(fc_net(hidden_dims=[10]), seed=0)
        Solver(plan, data, batch_size=5, num_epochs=2, verbose=True).train()

    run()  # pytest's captured stderr is not a terminal: no bar, no carriage returns
    out, err = capsys.readouterr()
    assert "\r" not in err and "\r" not in out and "batch" not in err
    assert len(epoch_lines(out)) == 2
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run()
    bar = terminal.getvalue()
    assert bar.count("\r") >= 2 and "epoch 1/2" in bar and "20/20" in bar
    assert len(epoch_lines(capsys.readouterr().out)) == 2


def test_progress_true_forces_the_bar_off_a_terminal(capsys):
    plan = dagnet.compile(fc_net(hidden_dims=[10]), seed=0)
    Solver(plan, tiny_data(20, (1, 28, 28)), batch_size=5, num_epochs=1, verbose=False,
           progress=True).train()
    assert "4/4" in capsys.readouterr().err


def flat_run(tmp_path=None, num_epochs=10, patience=2, **kw):
    """A run whose val accuracy does not change (lr 1e-6): the first epoch stays the best."""
    data = tiny_data(40, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[10]), seed=0)
    kept = {}

    def remember(s):
        kept[s.epoch] = {k: v.copy() for k, v in s.model.params.items()}

    solver = Solver(plan, data, update_rule="sgd", optim_config={"learning_rate": 1e-6},
                    batch_size=10, num_epochs=num_epochs, patience=patience, verbose=False,
                    on_epoch=remember, **kw)
    solver.train()
    return plan, solver, kept


def test_early_stopping_on_val_accuracy_restores_the_best_params():
    plan, solver, kept = flat_run()
    assert solver.epoch == 3 and solver.stopped_early and solver.best_epoch == 1
    assert len(solver.val_acc_history) == 3 and len(set(solver.val_acc_history)) == 1
    assert all(np.array_equal(v, kept[1][k]) for k, v in plan.params.items())
    assert not all(np.array_equal(v, kept[3][k]) for k, v in plan.params.items())


def test_early_stopping_on_val_loss_with_min_delta():
    data = tiny_data(40, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[10]), seed=0)
    solver = Solver(plan, data, update_rule="sgd", optim_config={"learning_rate": 1e-2},
                    batch_size=10, num_epochs=30, patience=3, monitor="val_loss", min_delta=0.1,
                    verbose=False)
    solver.train()
    # the rule replayed here: improving means a loss lower than the best by more than 0.1
    best, best_epoch, stop = float("inf"), 0, None
    for epoch, loss in enumerate(solver.val_loss_history, start=1):
        if loss < best - 0.1:
            best, best_epoch = loss, epoch
        if epoch - best_epoch >= 3:
            stop = epoch
            break
    assert stop is not None and stop < 30 and solver.stopped_early
    assert (solver.epoch, solver.best_epoch) == (stop, best_epoch)
    assert len(solver.val_loss_history) == stop


def test_val_loss_is_the_eval_mode_loss_plus_the_weight_decay_term():
    from dagnet.train.evaluate import evaluate_arrays

    data = tiny_data(40, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[10], dropout=0.5), seed=0)
    seen = []

    def check(s):
        want = evaluate_arrays(s.model, data["X_val"], data["y_val"])["loss"]
        seen.append((s.val_loss_history[-1], want + s.model.regularization(1e-2)))

    Solver(plan, data, batch_size=10, num_epochs=2, weight_decay=1e-2, verbose=False,
           on_epoch=check).train()
    assert len(seen) == 2
    for got, want in seen:
        assert got == pytest.approx(want, rel=1e-5)


def test_resuming_a_stopped_run_trains_no_further(tmp_path):
    ck = str(tmp_path / "ck.npz")
    flat_run(checkpoint=ck)
    plan, solver, kept = flat_run(checkpoint=ck, resume=True)
    assert kept == {} and solver.epoch == 3 and solver.stopped_early


def test_patience_larger_than_the_run_changes_nothing(tmp_path):
    _, plain = train_run(tmp_path, 3, name="a.npz")
    _, patient = train_run(tmp_path, 3, name="b.npz", patience=10)
    assert plain.loss_history == patient.loss_history and not patient.stopped_early


def test_adamw_decays_weights_but_not_biases():
    data = tiny_data(40, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[10], batchnorm=True), seed=0)
    solver = Solver(plan, data, update_rule="adamw", optim_config={"weight_decay": 0.5},
                    batch_size=10, num_epochs=1, verbose=False)
    decay = {p: c["weight_decay"] for p, c in solver.optim_configs.items()}
    assert decay == {p: (0.5 if p in plan.decayed else 0.0) for p in plan.params}
    assert {"fc1.w", "scores.w"} <= {p for p, d in decay.items() if d}
    solver.train()
    assert solver.optim_configs["fc1.b"]["weight_decay"] == 0.0


def test_a_diverging_run_gives_the_error_without_numpy_warnings():
    """The Solver checks every step for NaN/Inf itself: numpy's overflow warnings before its
    one-line error are noise (issue 15.7: --lr 1e6 printed 15 lines of them)."""
    import warnings

    data = tiny_data(20, (1, 28, 28))
    plan = dagnet.compile(fc_net(hidden_dims=[10]), seed=0)
    solver = Solver(plan, data, update_rule="sgd", optim_config={"learning_rate": 1e9},
                    batch_size=10, num_epochs=5, verbose=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TrainingError, match="loss is (nan|inf)"):
            solver.train()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught
    assert np.geterr()["over"] == "warn"  # the caller's numpy settings are left as they were
