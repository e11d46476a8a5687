"""The published final losses of the course's toy trainer, reproduced by the Solver.

The two-layer-net exercise (cs231n winter 2015, reused by Georgia Tech's CS7643) trains a toy
model (4 -> 10 relu -> 3 softmax, weights from np.linspace) on 5 toy points by full-batch
gradient descent for 100 iterations, reg=0.001 (0.5*reg*||W||^2 on W1 and W2), lr=0.1, and
publishes loss_history[-1] (the loss of the 100th batch, before its update):

    momentum 0.9:                   0.494394
    rmsprop (decay 0.99):           0.439368   x -= lr * dx / np.sqrt(cache + 1e-8)

That notebook adds eps inside the square root; dagnet's default (Keras, cs231n 2016+, PyTorch)
adds it outside, which gives 0.429848 here: the option epsilon_in_sqrt=True selects the course's.
"""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.train.solver import Solver

D, H, C, N = 4, 10, 3, 5


def toy_plan():
    g = Graph("toy")
    x = g.input("x", (D,), dtype="float64")
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.affine(x, H, name="fc1"))
    g.softmax_cross_entropy(g.affine(h, C, name="fc2"), y)
    plan = dagnet.compile(g, dtype="float64", seed=0)
    plan.params["fc1.w"][...] = np.linspace(-0.2, 0.6, num=D * H).reshape(D, H)
    plan.params["fc1.b"][...] = np.linspace(-0.3, 0.7, num=H)
    plan.params["fc2.w"][...] = np.linspace(-0.4, 0.1, num=H * C).reshape(H, C)
    plan.params["fc2.b"][...] = np.linspace(-0.5, 0.9, num=C)
    return plan


def toy_data():
    X = np.linspace(-0.2, 0.5, num=N * D).reshape(N, D)
    y = np.array([0, 1, 2, 2, 1])
    return {"X_train": X, "y_train": y}


def final_loss(update_rule, **config):
    plan = toy_plan()
    solver = Solver(plan, toy_data(), update_rule=update_rule,
                    optim_config={"learning_rate": 0.1, **config}, weight_decay=1e-3,
                    batch_size=N, num_epochs=100, verbose=False)
    solver.train()
    assert len(solver.loss_history) == 100
    return solver.loss_history[-1]


def test_toy_model_loss_matches_the_notebook():
    plan = toy_plan()
    loss, _ = plan.loss_and_grads(toy_data()["X_train"], toy_data()["y_train"], reg=0.1)
    assert loss == pytest.approx(1.38191946092, abs=1e-10)  # the notebook's correct_loss


def test_momentum_published_final_loss():
    assert round(final_loss("sgd_momentum", momentum=0.9), 6) == 0.494394


def test_rmsprop_course_convention_gives_the_published_final_loss():
    assert round(final_loss("rmsprop", decay_rate=0.99, epsilon_in_sqrt=True), 6) == 0.439368


def test_rmsprop_default_convention_differs_as_reported():
    assert round(final_loss("rmsprop", decay_rate=0.99), 6) == 0.429848
