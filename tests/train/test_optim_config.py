"""Update-rule configs: the `lr` alias, unknown keys (did-you-mean), and every hyperparameter's
valid range, checked both when a rule is called and when a Solver is built."""
import re

import numpy as np
import pytest

import dagnet
from dagnet.errors import ShapeError, TrainingError
from dagnet.models import fc_net
from dagnet.train.optim import DEFAULTS, UPDATE_RULES, check_config, get_update_rule, sgd
from dagnet.train.solver import Solver


def data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, n)
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


def fresh_plan():
    return dagnet.compile(fc_net(hidden_dims=[10]), seed=0)


def test_lr_is_an_alias_of_learning_rate_in_a_rule():
    w, config = sgd(np.ones(3), np.ones(3), {"lr": 0.5})
    np.testing.assert_array_equal(w, 0.5)
    assert config == {"learning_rate": 0.5}


def test_lr_alias_trains_at_that_rate_in_the_solver():
    """{"lr": 100.0} used to train silently at the default 0.01."""
    plans = {}
    for key in ("lr", "learning_rate"):
        plan = fresh_plan()
        s = Solver(plan, data(), update_rule="sgd", optim_config={key: 0.5}, batch_size=10,
                   num_epochs=1, verbose=False)
        assert s.schedule.learning_rate == 0.5
        s.train()
        assert all(c["learning_rate"] == 0.5 for c in s.optim_configs.values())
        plans[key] = plan
    for k in plans["lr"].params:
        assert np.array_equal(plans["lr"].params[k], plans["learning_rate"].params[k])


def test_lr_and_learning_rate_both_given_differently_is_an_error():
    with pytest.raises(TrainingError, match="both 'lr' and 'learning_rate'"):
        sgd(np.ones(3), np.ones(3), {"lr": 0.5, "learning_rate": 0.1})


@pytest.mark.parametrize("rule,key,suggestion", [
    ("sgd", "learnig_rate", "learning_rate"),
    ("sgd_momentum", "momentm", "momentum"),
    ("adam", "beta_1", "beta1"),
    ("rmsprop", "decay", "decay_rate"),
    ("adam", "eps", "epsilon"),
])
def test_unknown_key_names_the_known_keys_and_the_close_one(rule, key, suggestion):
    with pytest.raises(TrainingError) as e:
        Solver(fresh_plan(), data(), update_rule=rule, optim_config={key: 0.5}, verbose=False)
    msg = str(e.value)
    assert f"unknown key '{key}'" in msg and f"update rule '{rule}'" in msg
    assert f"did you mean '{suggestion}'?" in msg
    for known in DEFAULTS[rule]:
        assert known in msg
    with pytest.raises(TrainingError, match=f"unknown key '{key}'"):
        get_update_rule(rule)(np.ones(3), np.ones(3), {key: 0.5})


def test_another_rules_key_is_unknown():
    with pytest.raises(TrainingError, match="update rule 'adam': optim_config has an unknown key 'momentum'"):
        Solver(fresh_plan(), data(), update_rule="adam", optim_config={"momentum": 0.9},
               verbose=False)


@pytest.mark.parametrize("rule,key,value,want", [
    ("sgd_momentum", "momentum", 5.0, r"\[0, 1\)"),
    ("nesterov", "momentum", -0.1, r"\[0, 1\)"),
    ("adam", "beta1", 2.0, r"\[0, 1\)"),
    ("adam", "beta2", 1.0, r"\[0, 1\)"),
    ("adamw", "weight_decay", -1e-2, ">= 0"),
    ("rmsprop", "decay_rate", 1.5, r"\[0, 1\)"),
    ("adadelta", "rho", 1.0, r"\[0, 1\)"),
    ("adagrad", "epsilon", 0.0, "> 0"),
    ("sgd", "learning_rate", 0.0, "> 0"),
    ("sgd", "learning_rate", -1e-3, "> 0"),
    ("sgd", "learning_rate", float("nan"), "> 0"),
    ("sgd", "learning_rate", float("inf"), "> 0"),
    ("sgd", "learning_rate", "fast", "> 0"),
    ("sgd", "learning_rate", True, "> 0"),
    ("rmsprop", "epsilon_in_sqrt", 1, "True or False"),
    ("adam", "t", -1, "integer >= 0"),
    ("adam", "t", 2.5, "integer >= 0"),
])
def test_out_of_range_hyperparameters(rule, key, value, want):
    for make in ("solver", "rule"):
        with pytest.raises(TrainingError) as e:
            if make == "solver":
                Solver(fresh_plan(), data(), update_rule=rule, optim_config={key: value},
                       verbose=False)
            else:
                get_update_rule(rule)(np.ones(3), np.ones(3), {key: value})
        msg = str(e.value)
        assert f"['{key}'] = {value!r}" in msg and rule in msg, msg
        assert "\n" not in msg
        assert re.search(want, msg), msg


@pytest.mark.parametrize("config", ["fast", 0.1, ["learning_rate", 0.1]])
def test_optim_config_must_be_a_dict(config):
    with pytest.raises(TrainingError, match="optim_config must be a dict"):
        Solver(fresh_plan(), data(), optim_config=config, verbose=False)
    with pytest.raises(TrainingError, match="config must be a dict"):
        sgd(np.ones(3), np.ones(3), config)


def test_state_array_of_another_shape():
    with pytest.raises(ShapeError, match=r"'sgd_momentum'.*'velocity'.*\(2,\).*\(3,\)"):
        get_update_rule("sgd_momentum")(np.ones(3), np.ones(3), {"velocity": np.zeros(2)})


@pytest.mark.parametrize("rule", sorted(UPDATE_RULES))
def test_defaults_pass_their_own_checks(rule):
    config = dict(DEFAULTS[rule])
    assert check_config(rule, config) is config


def test_valid_edges_are_accepted():
    """momentum 0 is plain SGD; betas of 0 make Adam's every step lr * sign(dw)."""
    w, _ = get_update_rule("sgd_momentum")(np.ones(3), np.full(3, 2.0), {"momentum": 0.0})
    np.testing.assert_allclose(w, 1 - 1e-2 * 2.0)
    w, config = get_update_rule("adam")(np.ones(3), np.array([2.0, -3.0, 0.5]),
                                        {"beta1": 0.0, "beta2": 0.0, "learning_rate": np.float32(1e-3)})
    np.testing.assert_allclose(w, 1 - 1e-3 * np.array([1.0, -1.0, 1.0]), rtol=1e-6)
    assert config["t"] == 1
