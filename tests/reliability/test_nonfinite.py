"""NaN/Inf in training: the solver stops at the first non-finite loss or gradient, names the
step and node where it started (by replaying the batch with every value checked), updates
nothing, and leaves the last good checkpoint on disk - from which the run can go on."""
import copy

import numpy as np
import pytest

import dagnet
from dagnet import Graph, runtime
from dagnet.errors import TrainingError
from dagnet.train.checkpoint import load_checkpoint
from dagnet.train.solver import Solver
from tests.reliability.helpers import tiny_convnet, tiny_data, tiny_mlp

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflows are the point


def solver_for(plan, data, **kw):
    kw.setdefault("verbose", False)
    return Solver(plan, data, **kw)


def test_the_checkpoint_keeps_the_last_good_epoch_and_resumes(tmp_path):
    path = tmp_path / "run.npz"
    good = {}

    def blow_up(solver):
        if solver.epoch == 2:
            good.update({k: v.copy() for k, v in solver.model.params.items()})
            good["bytes"] = path.read_bytes()
            for w in solver.model.params.values():
                w *= 1e30  # what a far too large update does

    data = tiny_data(24, (1, 8, 8), classes=4)
    plan = dagnet.compile(tiny_convnet(dropout=0.2), seed=0)
    s = solver_for(plan, data, update_rule="adam", batch_size=8, num_epochs=4,
                   checkpoint=str(path), on_epoch=blow_up)
    with pytest.raises(TrainingError, match=r"at epoch 3, iteration 7.*still holds the last good "
                                            r"params \(after epoch 2\)") as err:
        s.train()
    assert "First non-finite value: forward of step" in str(err.value)
    assert path.read_bytes() == good.pop("bytes")  # not rewritten
    ck = load_checkpoint(path)
    assert ck.solver["epoch"] == 2
    for k, v in good.items():
        assert np.array_equal(ck.params[k], v) and np.isfinite(v).all()
    # the run goes on from it (a fresh plan, as after a restart)
    plan2 = dagnet.compile(tiny_convnet(dropout=0.2), seed=0)
    s2 = solver_for(plan2, data, update_rule="adam", batch_size=8, num_epochs=4,
                    checkpoint=str(path), resume=True)
    assert s2.epoch == 2
    s2.train()
    assert len(s2.loss_history) == 12 and all(np.isfinite(s2.loss_history))


def test_the_first_node_inside_a_fused_step_is_named():
    g = Graph("t")
    x = g.input("x", (1, 6, 6))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, 2, 3, pad=1, name="conv1"), name="relu1"), 2, name="pool1")
    g.softmax_cross_entropy(g.affine(h, 3, name="scores"), y)
    plan = dagnet.compile(g, seed=0)
    assert plan.steps[0].fused
    plan.params["conv1.w"][...] = 3e38
    data = tiny_data(8, (1, 6, 6))
    with pytest.raises(TrainingError, match=r"loss is nan at epoch 1, iteration 1.*forward of step 0 "
                                            r"'conv1\+relu1\+pool1'.*inside it, node 'conv1' \(conv2d\)"):
        solver_for(plan, data, num_epochs=1).train()


def test_a_gradient_that_overflows_while_the_loss_is_finite(monkeypatch):
    # relu1 alive but tiny, so the scores stay finite (a dead relu would pass no gradient:
    # relu_grad gives +0.0 there whatever arrives, as torch does)
    plan = dagnet.compile(tiny_mlp(), seed=0)
    plan.params["fc1.w"][...] = 0.0
    plan.params["fc1.b"][...] = 1e-30
    plan.params["scores.w"][:, 0] = 3e38
    plan.params["scores.w"][:, 1:] = -3e38
    before = {k: v.copy() for k, v in plan.params.items()}
    # the wrong class: dscores (1, -1, 0) meets +-3e38 in scores' backward, 6e38 overflows
    data = {"X_train": np.ones((1, 6), np.float32), "y_train": np.array([1])}
    with pytest.raises(TrainingError, match=r"gradient of 'fc1\.w' holds 30 Inf .*the loss, "
                                            r"3e\+09, is finite.*backward of step 1 'scores' "
                                            r"\(affine\): its gradient for input 'x'"):
        solver_for(plan, data, batch_size=1, num_epochs=1).train()
    for k, v in before.items():  # nothing was updated
        assert np.array_equal(plan.params[k], v)


def test_nan_in_the_data_is_blamed_on_the_data():
    data = tiny_data(8, (6,))
    data["X_train"][3, 1] = np.inf
    with pytest.raises(TrainingError, match=r"the feed 'x' itself holds 1 Inf"):
        solver_for(dagnet.compile(tiny_mlp(), seed=0), data, batch_size=8, num_epochs=1).train()


def test_replaying_leaves_the_plan_untouched_and_finds_nothing_in_a_good_batch():
    plan = dagnet.compile(tiny_convnet(dropout=0.3), seed=0)
    data = tiny_data(6, (1, 8, 8), classes=4)
    feeds = plan.feeds_for(data["X_train"], data["y_train"])
    rng_before = copy.deepcopy(plan.rng.bit_generator.state)
    state_before = copy.deepcopy(plan.state)
    assert runtime.locate_nonfinite(plan, feeds) is None
    assert plan.rng.bit_generator.state == rng_before
    for node, st in state_before.items():
        for k, v in st.items():
            assert np.array_equal(plan.state[node][k], v)


def test_the_replay_draws_the_same_dropout_masks():
    """A NaN that only some dropout masks let through is found, because the replay restores
    the rng state of the failing step."""
    g = Graph("t")
    x = g.input("x", (4,))
    y = g.input("y", (), dtype="int64")
    g.softmax_cross_entropy(g.affine(g.dropout(x, p=0.5, name="drop"), 3, name="scores"), y)
    plan = dagnet.compile(g, seed=0)
    X = np.array([[1.0, 1.0, 1.0, 1.0]], np.float32)
    plan.params["scores.w"][...] = np.array([[3e38, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    # a step whose mask keeps x[0] (the scores overflow) followed by one whose mask drops it
    state = plan.rng.bit_generator.state
    keeps = [plan.rng.random((1, 4))[0, 0] >= 0.5 for _ in range(20)]
    plan.rng.bit_generator.state = state
    bad = next(i for i in range(19) if keeps[i] and not keeps[i + 1])
    for _ in range(bad):
        plan.rng.random((1, 4))
    rng_state = plan.rng.bit_generator.state
    plan.rng.random((1, 4))  # the failing step has run: the rng moved on
    feeds = {"x": X, "y": np.array([1])}
    found = runtime.locate_nonfinite(plan, feeds, rng_state)
    assert found is not None and "forward of step 1 'scores'" in found
    assert runtime.locate_nonfinite(plan, feeds) is None  # the next mask would have hidden it
