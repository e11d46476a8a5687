"""Fine-tuning: a fresh classifier (replace_head), params frozen up to a node (params_up_to,
compile(freeze=...)): no gradient and no backward step for them, the Solver leaves them
bitwise unchanged while the loss falls, and the plan and the diagrams mark them."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.errors import GraphError
from dagnet.models import resnet20, squeezenet
from dagnet.models.finetune import find_head, params_up_to, replace_head
from dagnet.train.solver import Solver


def small_resnet():
    return resnet20(input_shape=(1, 12, 12), num_classes=7, width=0.25)


# -- replace_head ------------------------------------------------------------------------------
def test_replace_head_swaps_the_affine_classifier():
    g = small_resnet()
    new, fresh = replace_head(g, 3)
    assert fresh == ["scores.w", "scores.b"]
    assert new.shape_of("scores") == (3,) and new.shape_of("scores.w") == (16, 3)
    assert new.node("scores.w").attrs["init"] == "he"
    assert new.node("scores.b").attrs["init"] == "zeros"
    assert [n.name for n in new] == [n.name for n in g]
    assert all(new.shape_of(p.name) == g.shape_of(p.name) for p in g.params if p.name not in fresh)
    assert g.shape_of("scores") == (7,)  # the original is untouched


def test_replace_head_finds_a_conv_classifier_through_relu_and_pooling():
    g = squeezenet(input_shape=(3, 16, 16))
    assert find_head(g) == "classifier"
    new, fresh = replace_head(g, 4)
    assert fresh == ["classifier.w", "classifier.b"]
    assert new.shape_of("classifier") == (4, 2, 2) and new.shape_of("scores") == (4,)


def test_replace_head_errors():
    g = Graph("bn_head")
    h = g.batchnorm(g.affine(g.input("x", (5,)), 3, name="fc"), name="bn")
    g.softmax_cross_entropy(h, g.input("y", (), dtype="int64"))
    with pytest.raises(GraphError, match="scores 'bn' come from batchnorm node 'bn', not from "
                                         "an affine or conv layer"):
        replace_head(g, 2)
    with pytest.raises(GraphError, match="num_classes must be an integer >= 1"):
        replace_head(small_resnet(), 0)


# -- params_up_to and compile(freeze=...) ---------------------------------------------------
def test_params_up_to_a_node():
    g = small_resnet()
    frozen = params_up_to(g, "stage1.block3.relu2")
    assert frozen[:2] == ["stem.conv.w", "stem.conv.b"]
    assert "stage1.block3.bn2.beta" in frozen and not any(p.startswith("stage2") for p in frozen)
    assert params_up_to(g, "stem.conv.w") == ["stem.conv.w"]
    with pytest.raises(GraphError, match="no such node.*did you mean 'stage1.block3.relu2'"):
        params_up_to(g, "stage1.block3.relu")
    with pytest.raises(GraphError, match="'x': it is an input"):
        params_up_to(g, "x")


def test_frozen_params_get_no_gradient_and_no_backward_step():
    g = small_resnet()
    frozen = params_up_to(g, "stage2.block3.relu2")
    full = dagnet.compile(g, dtype="float64")
    plan = dagnet.compile(g, dtype="float64", freeze=frozen)
    assert plan.frozen == set(frozen)
    assert plan.trainable == [p for p in full.params if p not in frozen]
    assert plan.graph.meta["backward"]["frozen"] == sorted(frozen)
    # only stage 3 and the head run backward: nothing before it needs a gradient
    names = {s.name for s in plan.backward_steps}
    assert names and not any(n.startswith(("stem", "stage1", "stage2")) for n in names)
    assert len(plan.backward_steps) < len(full.backward_steps)
    first = next(s for s in plan.steps if s.name.startswith("stage3.block1.conv1"))
    assert first.needs[0] is False  # its input needs no gradient: dx is not computed
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 1, 12, 12)), rng.integers(0, 7, 4)
    loss, grads = plan.loss_and_grads(x, y, reg=0.1)
    full_loss, full_grads = full.loss_and_grads(x, y)
    assert set(grads) == set(plan.trainable)
    for p in grads:  # the same gradients for what trains (plus the L2 term on weights)
        want = full_grads[p] + (0.1 * full.params[p] if p in plan.decayed else 0)
        np.testing.assert_allclose(grads[p], want, rtol=1e-10, atol=1e-12)
    text = plan.describe()
    assert "frozen: stem.conv.w,stem.conv.b" in text and "no backward" in text
    assert f"{len(plan.backward_steps)} of {len(plan.steps)} steps run backward" in text


def test_freeze_names_an_op_or_a_param():
    g = small_resnet()
    plan = dagnet.compile(g, freeze=["stem.conv", "stage1.block1.bn1.gamma"])
    assert plan.frozen == {"stem.conv.w", "stem.conv.b", "stage1.block1.bn1.gamma"}
    with pytest.raises(GraphError, match="cannot freeze 'stem.cov': no such node.*'stem.conv'"):
        dagnet.compile(g, freeze=["stem.cov"])
    with pytest.raises(GraphError, match="cannot freeze 'x': it is an input"):
        dagnet.compile(g, freeze="x")


def test_solver_trains_the_rest_and_leaves_frozen_params_bitwise_unchanged():
    g = small_resnet()
    frozen = params_up_to(g, "stage2.block3.relu2")
    plan = dagnet.compile(g, freeze=frozen, seed=0)
    before = {p: plan.params[p].copy() for p in plan.params}
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 140)
    X = rng.standard_normal((140, 1, 12, 12)).astype(np.float32) * 0.3
    for i, c in enumerate(y):  # the class is a bright square's row
        X[i, 0, c:c + 3, 2:6] += 3.0
    data = {"X_train": X[:100], "y_train": y[:100], "X_val": X[100:], "y_val": y[100:]}
    solver = Solver(plan, data, update_rule="sgd_momentum", optim_config={"learning_rate": 0.05},
                    weight_decay=1e-3, batch_size=20, num_epochs=6, verbose=False,
                    num_train_samples=None)
    solver.train()
    losses = solver.loss_history
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    for p in frozen:
        assert np.array_equal(plan.params[p], before[p]), p
    assert all(not np.array_equal(plan.params[p], before[p]) for p in ("scores.w",
                                                                      "stage3.block3.conv2.w"))
    assert all(plan.state[n]["running_mean"].any() for n in plan.state)  # batchnorm still runs


def test_diagrams_mark_frozen_layers():
    pytest.importorskip("graphviz")
    from dagnet.viz import render_graph, render_plan

    g = resnet20(input_shape=(1, 8, 8), num_classes=3, width=0.25)
    frozen = params_up_to(g, "stage1.block1.relu2")
    plan = dagnet.compile(g, freeze=frozen)
    src = render_plan(plan, blocks=None).source
    assert "frozen: stem.conv.w, stem.conv.b" in src and src.count("❄") >= 4
    assert "params frozen" in src
    assert "frozen" not in render_plan(dagnet.compile(g), blocks=None).source
    src = render_graph(g, frozen=plan.frozen, blocks=None).source
    assert "frozen: stem.conv.w, stem.conv.b" in src and "❄" in src
