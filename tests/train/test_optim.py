"""Update rules against steps computed here from their formulas, and optimizer-state round trips."""
import io

import numpy as np
import pytest

from dagnet.errors import DTypeError, ShapeError, TrainingError
from dagnet.train.optim import (
    DEFAULTS,
    UPDATE_RULES,
    adadelta,
    adagrad,
    adam,
    adamw,
    get_update_rule,
    nesterov,
    rmsprop,
    sgd,
    sgd_momentum,
    state_from_arrays,
    state_to_arrays,
)

N, D = 4, 5


def course_arrays():
    """The arrays of the classic course checks: w, dw and a state array, each (4, 5)."""
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    s = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    return w, dw, s


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def test_sgd_step():
    w, dw, _ = course_arrays()
    expected = w - 1e-2 * dw
    next_w, config = sgd(w.copy(), dw)
    assert max_abs(next_w, expected) < 1e-12
    assert config["learning_rate"] == 1e-2


def test_sgd_momentum_course_check():
    w, dw, v = course_arrays()
    # v' = 0.9 v - lr dw, w' = w + v', element by element in Python floats
    exp_v = np.array([[0.9 * v[i, j] - 1e-3 * dw[i, j] for j in range(D)] for i in range(N)])
    exp_w = np.array([[w[i, j] + exp_v[i, j] for j in range(D)] for i in range(N)])
    next_w, config = sgd_momentum(w, dw, {"learning_rate": 1e-3, "velocity": v.copy()})
    assert max_abs(next_w, exp_w) < 1e-8
    assert max_abs(config["velocity"], exp_v) < 1e-8
    # the course's published corner values
    assert next_w[0, 0] == pytest.approx(0.1406, abs=1e-12)
    assert next_w[-1, -1] == pytest.approx(1.4096, abs=1e-12)
    assert config["velocity"][0, 0] == pytest.approx(0.5406, abs=1e-12)
    assert config["velocity"][-1, -1] == pytest.approx(0.8096, abs=1e-12)



def numpy_momentum(w, dw, v, mu, lr):
    """sgd_momentum's numpy passes, the bits the compiled pass must give."""
    v *= mu
    v -= lr * dw
    w += v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 65535, 65536, 200_003])
def test_sgd_momentum_fused_pass_gives_numpys_bits(dtype, n, monkeypatch):
    """The compiled one-pass update (from FUSED_FROM values) against numpy's four passes,
    bitwise, over several steps with the rounding of both hyperparameters to w's type in
    play (0.9 and 3e-3 are not exact in either); the kernel runs (not a silent fallback)."""
    from dagnet.train import optim

    calls = []
    if optim._special_ext is not None:
        real = optim._special_ext.momentum_step
        monkeypatch.setattr(optim, "_special_ext", type("Ext", (), {"momentum_step": staticmethod(
            lambda *a: calls.append(1) or real(*a))}))
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(dtype) * 3
    dw = rng.standard_normal(n).astype(dtype) * 1e3
    w0, v0 = w.copy(), np.zeros_like(w)
    config = {"learning_rate": 3e-3, "momentum": 0.9}
    for _ in range(3):
        got, config = sgd_momentum(w, dw, config)
        numpy_momentum(w0, dw, v0, 0.9, 3e-3)
        assert got is w
        assert np.array_equal(w.view(f"u{w.itemsize}"), w0.view(f"u{w.itemsize}"))
        assert np.array_equal(config["velocity"].view(f"u{w.itemsize}"),
                              v0.view(f"u{w.itemsize}"))
    assert len(calls) == (3 if optim._special_ext is not None and n >= optim.FUSED_FROM else 0)


def test_sgd_momentum_falls_back_to_numpy_where_the_pass_would_differ():
    """numpy scalars as hyperparameters (numpy computes in their type), a strided gradient,
    mixed dtypes: numpy's passes, the same values as before."""
    from dagnet.train import optim

    n = 2 * optim.FUSED_FROM
    rng = np.random.default_rng(0)
    dw64 = rng.standard_normal(2 * n)
    for lr, dw in ((np.float64(3e-3), dw64[:n].astype(np.float32)),
                   (3e-3, dw64[::2].astype(np.float32)[::1][:n]),
                   (3e-3, dw64[:n].astype(np.float32)[::-1]),
                   (3e-3, dw64[:n])):
        w = rng.standard_normal(n).astype(np.float32)
        w0, v0 = w.copy(), np.zeros_like(w)
        sgd_momentum(w, dw, {"learning_rate": lr, "momentum": 0.9})
        numpy_momentum(w0, dw, v0, 0.9, lr)
        assert np.array_equal(w, w0)

def test_nesterov_step():
    w, dw, v = course_arrays()
    mu, lr = 0.9, 1e-3
    exp_v = mu * v - lr * dw
    exp_w = w - mu * v + (1 + mu) * exp_v
    next_w, config = nesterov(w.copy(), dw, {"learning_rate": lr, "velocity": v.copy()})
    assert max_abs(next_w, exp_w) < 1e-8
    assert max_abs(config["velocity"], exp_v) < 1e-8
    assert config["momentum"] == 0.9


def test_rmsprop_course_check():
    w, dw, cache = course_arrays()
    exp_cache = 0.99 * cache + 0.01 * dw**2
    exp_w = w - 1e-2 * dw / (np.sqrt(exp_cache) + 1e-8)
    next_w, config = rmsprop(w.copy(), dw, {"learning_rate": 1e-2, "cache": cache.copy()})
    assert max_abs(next_w, exp_w) < 1e-8
    assert max_abs(config["cache"], exp_cache) < 1e-8
    assert config["decay_rate"] == 0.99 and config["epsilon"] == 1e-8


def test_adam_course_check():
    w, dw, _ = course_arrays()
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    t = 6  # the config says 5 steps were taken; this is the 6th
    exp_m = 0.9 * m + 0.1 * dw
    exp_v = 0.999 * v + 0.001 * dw**2
    exp_w = w - 1e-2 * (exp_m / (1 - 0.9**t)) / (np.sqrt(exp_v / (1 - 0.999**t)) + 1e-8)
    next_w, config = adam(w.copy(), dw, {"learning_rate": 1e-2, "m": m.copy(), "v": v.copy(), "t": 5})
    assert max_abs(next_w, exp_w) < 1e-8
    assert max_abs(config["m"], exp_m) < 1e-8
    assert max_abs(config["v"], exp_v) < 1e-8
    assert config["t"] == 6


def test_rmsprop_epsilon_inside_the_square_root():
    """epsilon_in_sqrt=True: w -= lr*dw / sqrt(cache + eps) (the TF1 / CS7643 toy-trainer form)."""
    w, dw, cache = course_arrays()
    exp_cache = 0.99 * cache + 0.01 * dw**2
    exp_w = w - 1e-2 * dw / np.sqrt(exp_cache + 1e-8)
    next_w, config = rmsprop(w.copy(), dw, {"learning_rate": 1e-2, "cache": cache.copy(),
                                            "epsilon_in_sqrt": True})
    assert max_abs(next_w, exp_w) < 1e-12
    # the conventions differ most where the cache is small: eps 1e-2 makes that visible here
    small = np.array([1e-3])
    inside, _ = rmsprop(np.zeros(1), small, {"epsilon": 1e-2, "epsilon_in_sqrt": True})
    outside, _ = rmsprop(np.zeros(1), small, {"epsilon": 1e-2})
    c = 0.01 * 1e-6
    assert inside[0] == pytest.approx(-1e-2 * 1e-3 / np.sqrt(c + 1e-2), rel=1e-12)
    assert outside[0] == pytest.approx(-1e-2 * 1e-3 / (np.sqrt(c) + 1e-2), rel=1e-12)


def test_adamw_decays_the_weights_apart_from_the_gradient():
    """AdamW: w *= 1 - lr*wd, then the Adam step; a zero gradient still shrinks w."""
    w, dw, _ = course_arrays()
    lr, wd = 1e-2, 0.1
    m = 0.1 * dw
    v = 0.001 * dw**2
    exp_w = w * (1 - lr * wd) - lr * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    next_w, config = adamw(w.copy(), dw, {"learning_rate": lr, "weight_decay": wd})
    assert max_abs(next_w, exp_w) < 1e-12 and config["t"] == 1
    still, _ = adamw(np.ones(2), np.zeros(2), {"learning_rate": 0.5, "weight_decay": 0.2})
    np.testing.assert_allclose(still, 0.9)


def test_adadelta_two_steps_by_hand():
    """AdaDelta (Zeiler 2012, PyTorch's form): the step is sqrt(E[dx^2]+eps)/sqrt(E[g^2]+eps)*g."""
    w, dw, _ = course_arrays()
    rho, eps, lr = 0.9, 1e-6, 1.0
    sq, acc, exp_w = np.zeros_like(w), np.zeros_like(w), w.copy()
    got, config = w.copy(), None
    for k in range(2):
        g = dw * (k + 1)
        sq = rho * sq + (1 - rho) * g * g
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
        acc = rho * acc + (1 - rho) * delta * delta
        exp_w = exp_w - lr * delta
        got, config = adadelta(got, g, config)
    assert max_abs(got, exp_w) < 1e-12
    assert max_abs(config["cache"], sq) < 1e-12 and max_abs(config["delta_cache"], acc) < 1e-12


def adam_by_hand(w0, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Adam on one scalar, in Python floats, from zero state."""
    w, m, v = w0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)) ** 0.5 + eps)
    return w


def test_adam_several_steps_with_bias_correction():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(5)]
    w, config = w0.copy(), None
    for g in grads:
        w, config = adam(w, g, config)
    expected = np.vectorize(lambda i: adam_by_hand(w0.flat[i], [g.flat[i] for g in grads]))(np.arange(12))
    assert max_abs(w, expected.reshape(3, 4)) < 1e-8
    assert config["t"] == 5
    # bias correction makes the very first step lr * sign(g) (up to eps)
    w1, _ = adam(w0.copy(), grads[0])
    assert max_abs(w1, w0 - 1e-3 * np.sign(grads[0])) < 1e-8


def test_adagrad_several_steps():
    w, dw, _ = course_arrays()
    expected, cache = w.copy(), np.zeros_like(w)
    got, config = w.copy(), None
    for k in range(3):
        g = dw * (k + 1)
        cache = cache + g * g
        expected = expected - 1e-2 * g / (np.sqrt(cache) + 1e-8)
        got, config = adagrad(got, g, config)
    assert max_abs(got, expected) < 1e-8
    assert max_abs(config["cache"], cache) < 1e-8


@pytest.mark.parametrize("name", sorted(UPDATE_RULES))
def test_updates_in_place_and_keeps_float32(name):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    dw = rng.standard_normal((2, 3)).astype(np.float32)
    before = w.copy()
    config = {}
    next_w, config2 = get_update_rule(name)(w, dw, config)
    assert next_w is w and config2 is config
    assert w.dtype == np.float32 and not np.array_equal(w, before)
    for key, value in DEFAULTS[name].items():
        assert config[key] == value
    for value in config.values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32


def test_read_only_w_is_copied_not_written():
    w = np.ones(3)
    w.flags.writeable = False
    next_w, _ = sgd(w, np.ones(3), {"learning_rate": 0.5})
    np.testing.assert_array_equal(w, 1.0)
    np.testing.assert_array_equal(next_w, 0.5)


def test_bad_inputs():
    with pytest.raises(ShapeError, match=r"\(2,\).*\(3,\)"):
        sgd(np.ones(3), np.ones(2))
    with pytest.raises(DTypeError, match="floating"):
        adam(np.arange(3), np.ones(3))
    with pytest.raises(TrainingError, match="unknown update rule 'adamx'.*sgd, sgd_momentum, "
                       "nesterov.*did you mean 'adam'"):
        get_update_rule("adamx")


def run(configs, params, grads, rule):
    for g in grads:
        for name in params:
            params[name], configs[name] = rule(params[name], g[name], configs[name])


@pytest.mark.parametrize("name", sorted(UPDATE_RULES))
def test_state_round_trip_continues_bitwise(name):
    rng = np.random.default_rng(2)
    shapes = {"conv1/W": (2, 3), "b": (3,), "scale": ()}
    start = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(5)]
    rule = get_update_rule(name)

    straight = {k: v.copy() for k, v in start.items()}
    configs = {k: {"learning_rate": 1e-2} for k in shapes}
    run(configs, straight, grads, rule)

    resumed = {k: v.copy() for k, v in start.items()}
    configs = {k: {"learning_rate": 1e-2} for k in shapes}
    run(configs, resumed, grads[:3], rule)
    buf = io.BytesIO()
    np.savez(buf, **state_to_arrays(configs))
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        restored = state_from_arrays({k: npz[k] for k in npz.files})
    assert set(restored) == set(shapes)
    for config in restored.values():
        assert isinstance(config["learning_rate"], float)
        if "t" in config:
            assert isinstance(config["t"], int)
    run(restored, resumed, grads[3:], rule)
    for k in shapes:
        assert resumed[k].tobytes() == straight[k].tobytes()


def test_state_to_arrays_copies():
    config = {"velocity": np.zeros(2), "learning_rate": 0.1}
    flat = state_to_arrays({"w": config})
    config["velocity"] += 1
    np.testing.assert_array_equal(flat["w/velocity"], 0.0)
    assert flat["w/learning_rate"].ndim == 0


def test_state_conversion_errors():
    from dagnet.errors import CheckpointError
    with pytest.raises(CheckpointError, match="w/note is a str"):
        state_to_arrays({"w": {"note": "hello"}})
    with pytest.raises(CheckpointError, match="contains '/'"):
        state_to_arrays({"w": {"a/b": 1.0}})
    with pytest.raises(CheckpointError, match="'param/key'"):
        state_from_arrays({"velocity": np.zeros(2)})
