"""Resuming checks what it resumes (issue 15.1): a Solver checkpoint of another graph (even with
params of the same shapes), other data, or another recipe is refused, naming what differs;
a recipe change asked for with allow_changes is recorded in the run's history; a crafted
checkpoint (best_params of another shape, mistyped solver state) is a CheckpointError."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.errors import CheckpointError, TrainingError
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from dagnet.train.resume import data_fingerprint, graph_changes
from dagnet.train.solver import Solver
from tests.reliability.helpers import tiny_data


def mlp(act="relu", dropout=0.0, alpha=None, name="tiny"):
    g = Graph(name)
    x = g.input("x", (6,))
    y = g.input("y", (), dtype="int64")
    h = g.affine(x, 5, name="fc1")
    h = g.leaky_relu(h, alpha, name="act1") if alpha else g.op(act, h, name="act1")
    if dropout:
        h = g.dropout(h, p=dropout, name="drop1")
    g.softmax_cross_entropy(g.affine(h, 3, name="scores"), y)
    return g


def solver(path, graph=None, data=None, **kw):
    plan = dagnet.compile(graph or mlp(), seed=0)
    kw = {"verbose": False, "num_epochs": 2, "batch_size": 4, "update_rule": "adam", **kw}
    return Solver(plan, data or tiny_data(16, (6,)), checkpoint=str(path), **kw)


def jitter(X, rng):
    """An augmentation (the Solver records its name in the recipe)."""
    return X + 0.01 * rng.standard_normal(X.shape).astype(X.dtype)


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run.npz"
    solver(path).train()
    return path


@pytest.mark.parametrize("graph,says", [
    (mlp(act="tanh"), "node act1: op relu -> tanh"),
    (mlp(dropout=0.5), "node drop1 (dropout) added"),
    (mlp(alpha=0.2), "node act1: op relu -> leaky_relu"),
])
def test_another_graph_with_the_same_param_shapes_is_refused(run, graph, says):
    before = run.read_bytes()
    with pytest.raises(CheckpointError, match="trained on another graph") as e:
        solver(run, graph, resume=True, num_epochs=3, allow_changes=["num_epochs"]).train()
    assert says in str(e.value)
    assert run.read_bytes() == before  # the stored run, its spec included, is untouched


def test_graph_changes_name_attrs_and_edges():
    a, b = mlp(alpha=0.1), mlp(alpha=0.2)
    assert graph_changes(a, b) == ["node act1: alpha 0.1 -> 0.2"]
    assert graph_changes(a, a) == []
    assert graph_changes(mlp(name="one"), mlp(name="two")) == []  # a name computes nothing


@pytest.mark.parametrize("change,says", [
    (lambda d: {**d, "X_val": d["X_val"][:2], "y_val": d["y_val"][:2]}, "X_val (3, 6) float32 then, (2, 6)"),
    (lambda d: {**d, "X_train": d["X_train"] * 1.5}, "X_train other values"),
    (lambda d: {"X_train": d["X_train"], "y_train": d["y_train"]}, "X_val given then, absent now"),
])
def test_other_data_is_refused(run, change, says):
    with pytest.raises(CheckpointError, match="trained on other data") as e:
        solver(run, data=change(tiny_data(16, (6,))), resume=True)
    assert says in str(e.value)


def test_the_data_fingerprint_sees_another_split_of_a_large_set():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((100_000, 4)).astype(np.float32), rng.integers(0, 9, 100_000)
    a = data_fingerprint(X, y, None, None)
    assert data_fingerprint(X.copy(), y.copy(), None, None) == a
    order = rng.permutation(len(X))  # another split seed: the same examples, another order
    b = data_fingerprint(X[order], y[order], None, None)
    assert b[0][:2] == a[0][:2] and b[0][2] != a[0][2] and b[1][2] != a[1][2]


@pytest.mark.parametrize("kw,key", [
    ({"optim_config": {"learning_rate": 1e-2}}, "learning_rate"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
    ({"batch_size": 8}, "batch_size"),
    ({"num_epochs": 5}, "num_epochs"),
    ({"weight_decay": 0.1}, "weight_decay"),
    ({"optim_config": {"beta1": 0.5}}, "beta1"),
    ({"patience": 2}, "patience"),
    ({"augment": jitter}, "augment"),
])
def test_another_recipe_is_refused_unless_allowed_and_then_recorded(run, kw, key):
    with pytest.raises(CheckpointError, match=f"other settings \\({key} "):
        solver(run, resume=True, **kw)
    s = solver(run, resume=True, allow_changes=[key], **kw)
    [change] = s.changes
    assert change["epoch"] == 2 and set(change["changed"]) == {key}
    s = solver(run, resume=True, allow_changes=[key, "num_epochs"], **{"num_epochs": 3, **kw})
    s.train()  # the change travels with the run: a later resume carries its record
    again = solver(run, resume=True, **{"num_epochs": 3, **kw})
    assert key in again.changes[0]["changed"] and again.epoch == max(3, kw.get("num_epochs", 3))


def test_fewer_epochs_than_already_run_is_refused(run):
    with pytest.raises(CheckpointError, match="already run 2 epochs; num_epochs = 1"):
        solver(run, resume=True, num_epochs=1, allow_changes=["num_epochs"])


def test_another_update_rule_allowed_starts_fresh_optimizer_state(run):
    s = solver(run, resume=True, update_rule="sgd_momentum", num_epochs=3,
               allow_changes=["update_rule", "learning_rate", "beta1", "beta2", "epsilon",
                              "momentum", "num_epochs"])
    assert not any({"m", "v", "t"} & set(c) for c in s.optim_configs.values())  # no Adam state
    s.train()
    assert s.epoch == 3


def test_allow_changes_is_checked():
    with pytest.raises(TrainingError, match="allow_changes = \\['lr'\\].*learning_rate"):
        solver("x.npz", allow_changes=["lr"])
    with pytest.raises(TrainingError, match="allow_changes = 'num_epochs'"):
        solver("x.npz", allow_changes="num_epochs")


def rewrite(path, solver_state=None, **sections):
    ck = load_checkpoint(path)
    parts = {"params": ck.params, "state": ck.state, "optimizer": ck.optimizer,
             "solver": {**ck.solver, **(solver_state or {})}, "spec": ck.spec, "extra": ck.extra}
    parts.update(sections)
    save_checkpoint(path, **parts)


def test_best_params_of_another_shape_are_refused_not_broadcast(run):
    ck = load_checkpoint(run)
    best = {**ck.extra["best_params"], "fc1.w": np.ones(1, np.float32)}
    rewrite(run, extra={**ck.extra, "best_params": best})
    with pytest.raises(CheckpointError, match=r"best_params fc1.w \(1,\)"):
        solver(run, resume=True)


def test_optimizer_state_of_another_shape_is_refused(run):
    ck = load_checkpoint(run)
    rewrite(run, optimizer={**ck.optimizer, "fc1.w/m": np.ones(1, np.float32)})
    with pytest.raises(CheckpointError, match=r"optimizer fc1.w/m \(1,\)"):
        solver(run, resume=True)


@pytest.mark.parametrize("field,value", [
    ("epoch", "2"), ("epoch", -1), ("loss_history", "lots"), ("loss_history", [1, "x"]),
    ("best_val_acc", None), ("best_epoch", 9), ("rng", {"bit_generator": "nope"}),
    ("rng", [1, 2]), ("plan_rng", {"bit_generator": "PCG64", "state": {"state": "x"}}),
    ("epoch_times", [0.1]), ("changes", {}),
])
def test_mistyped_solver_state_is_a_checkpoint_error(run, field, value):
    rewrite(run, {field: value})
    with pytest.raises(CheckpointError, match="damaged or crafted"):
        solver(run, resume=True)


def test_a_checkpoint_replaced_by_another_process_is_not_overwritten(run):
    s = solver(run, resume=True, num_epochs=3, allow_changes=["num_epochs"])
    other = solver(run, resume=True, num_epochs=3, allow_changes=["num_epochs"])
    other.train()  # meanwhile another solver trained the run on to epoch 3
    with pytest.raises(CheckpointError, match="changed since this Solver read"):
        s.train()
    assert load_checkpoint(run).solver["epoch"] == 3
