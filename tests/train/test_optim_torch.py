"""Every update rule against its torch.optim counterpart: the same gradients fed to both for
several steps from zero state, in float64 (torch's defaults spelled out where dagnet's differ)."""
import numpy as np
import pytest

from dagnet.train.optim import get_update_rule

torch = pytest.importorskip("torch")

#: dagnet rule, its config, the torch optimizer and its keyword arguments (the same maths)
CASES = {
    "sgd": ({"learning_rate": 0.1}, "SGD", {"lr": 0.1}),
    # torch keeps buf = mu*buf + g and steps -lr*buf; dagnet keeps v = -lr*buf: equal at fixed lr
    "sgd_momentum": ({"learning_rate": 0.05, "momentum": 0.9}, "SGD", {"lr": 0.05, "momentum": 0.9}),
    # the CS231n form steps w + (1+mu)v' - mu v, torch's -lr(g + mu buf'): the same at fixed lr
    "nesterov": ({"learning_rate": 0.05, "momentum": 0.8}, "SGD",
                 {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    "rmsprop": ({"learning_rate": 1e-2, "decay_rate": 0.95, "epsilon": 1e-8}, "RMSprop",
                {"lr": 1e-2, "alpha": 0.95, "eps": 1e-8}),
    "adagrad": ({"learning_rate": 0.1, "epsilon": 1e-10}, "Adagrad", {"lr": 0.1, "eps": 1e-10}),
    "adam": ({"learning_rate": 1e-2, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-8}, "Adam",
             {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-8}),
    "adamw": ({"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
               "weight_decay": 0.1}, "AdamW",
              {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}),
    "adadelta": ({"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6}, "Adadelta",
                 {"lr": 1.0, "rho": 0.9, "eps": 1e-6}),
}


def steps_both(name, steps=7, shape=(3, 5)):
    config, torch_name, torch_kw = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    w0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) * (k + 1) for k in range(steps)]
    w, cfg = w0.copy(), dict(config)
    for g in grads:
        w, cfg = get_update_rule(name)(w, g, cfg)
    t = torch.tensor(w0.copy(), requires_grad=True)
    opt = getattr(torch.optim, torch_name)([t], **torch_kw)
    for g in grads:
        opt.zero_grad()
        t.grad = torch.tensor(g)
        opt.step()
    return w, t.detach().numpy(), w0


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_matches_torch(name):
    ours, theirs, w0 = steps_both(name)
    assert not np.allclose(ours, w0)  # it moved
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_default_adamw_and_adadelta_match_torchs_defaults():
    """Called with no config, the rules use torch's defaults (AdamW decays by 1e-2, Adadelta's
    rate is 1.0, rho 0.9, eps 1e-6)."""
    rng = np.random.default_rng(0)
    for name, torch_name in (("adamw", "AdamW"), ("adadelta", "Adadelta")):
        w0, g = rng.standard_normal(4), rng.standard_normal(4)
        w, _ = get_update_rule(name)(w0.copy(), g)
        t = torch.tensor(w0.copy(), requires_grad=True)
        opt = getattr(torch.optim, torch_name)([t])
        t.grad = torch.tensor(g)
        opt.step()
        np.testing.assert_allclose(w, t.detach().numpy(), rtol=1e-12)
