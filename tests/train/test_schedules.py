"""Learning-rate schedules: values at chosen steps, computed here from their formulas."""
import math

import pytest

from dagnet.errors import TrainingError
from dagnet.train.schedules import Constant, Cosine, InverseDecay, StepDecay, make_schedule


def test_constant():
    s = make_schedule("constant", 0.05)
    assert isinstance(s, Constant)
    assert [s(t) for t in (0, 1, 1000)] == [0.05, 0.05, 0.05]


def test_step_decay_per_epoch():
    s = make_schedule({"name": "step", "lr_decay": 0.95}, 1e-3)
    assert s.per == "epoch"
    for epoch in (0, 1, 2, 7):
        assert s(epoch) == pytest.approx(1e-3 * 0.95**epoch, rel=1e-15)


def test_step_decay_every_k():
    s = StepDecay(learning_rate=0.1, lr_decay=0.5, every=2)
    assert [s(t) for t in range(6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rel=1e-15)


def test_inverse_decay():
    s = make_schedule({"name": "inverse", "gamma": 1e-4, "power": 0.75}, 0.01)
    assert s.per == "step"
    assert s(0) == 0.01
    assert s(10000) == pytest.approx(0.01 * 2 ** -0.75, rel=1e-15)
    assert s(123) == pytest.approx(0.01 * (1 + 1e-4 * 123) ** -0.75, rel=1e-15)


def test_cosine():
    s = make_schedule({"name": "cosine", "total": 10, "lr_min": 0.01}, 0.1)
    assert s(0) == pytest.approx(0.1, rel=1e-15)
    assert s(5) == pytest.approx(0.055, rel=1e-12)
    assert s(3) == pytest.approx(0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * 0.3)), rel=1e-15)
    assert s(10) == pytest.approx(0.01, rel=1e-12)
    assert s(25) == pytest.approx(0.01, rel=1e-12)  # held at lr_min after total


def test_cosine_with_warmup_climbs_linearly_then_spans_the_rest():
    s = make_schedule({"name": "cosine", "total": 14, "warmup": 4}, 0.1)
    assert [s(t) for t in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1], rel=1e-15)
    assert s(4) == pytest.approx(0.1, rel=1e-15)  # the cosine starts where the climb ends
    assert s(9) == pytest.approx(0.05, rel=1e-12)  # halfway through its 10 steps
    assert s(14) == pytest.approx(0.0, abs=1e-15) and s(20) == pytest.approx(0.0, abs=1e-15)
    assert make_schedule(s.to_dict(), 1.0) == s


def test_cosine_total_from_the_run():
    s = make_schedule("cosine", 1e-3, total=4)
    assert isinstance(s, Cosine) and s.total == 4 and s(4) == 0.0
    with pytest.raises(TrainingError, match="needs total"):
        make_schedule("cosine", 1e-3)


def test_pure_functions_of_t():
    s = InverseDecay(learning_rate=0.01, gamma=0.1, power=1.0)
    forward = [s(t) for t in range(10)]
    assert [s(t) for t in reversed(range(10))] == forward[::-1]


@pytest.mark.parametrize("spec", ["constant", {"name": "step", "lr_decay": 0.9, "every": 3},
                                  {"name": "inverse", "per": "epoch"},
                                  {"name": "cosine", "total": 7, "lr_min": 1e-4, "per": "step"}])
def test_to_dict_round_trip(spec):
    s = make_schedule(spec, 0.02)
    d = s.to_dict()
    assert make_schedule(d, 999.0) == s  # the dict's own learning_rate wins
    assert d["name"] == (spec if isinstance(spec, str) else spec["name"])


@pytest.mark.parametrize("spec,lr,match", [
    ("linear", 0.1, "unknown learning-rate schedule 'linear'.*constant, step, inverse, cosine"),
    ({"lr_decay": 0.9}, 0.1, "unknown learning-rate schedule None"),
    ({"name": "step", "decay": 0.9}, 0.1, "unknown key.*decay.*lr_decay.*did you mean 'lr_decay'"),
    ("cosin", 0.1, "unknown learning-rate schedule 'cosin'.*did you mean 'cosine'"),
    ({"name": "step", "lr_decay": float("inf")}, 0.1, "lr_decay = inf; it must be a finite number"),
    ({"name": "step", "lr_decay": True}, 0.1, "lr_decay = True"),
    ({"name": "inverse", "gamma": float("nan")}, 0.1, "gamma = nan"),
    ({"name": "cosine", "total": 5.0}, 0.1, "total = 5.0"),
    ("constant", float("inf"), "learning_rate = inf"),
    ({"name": "step", "lr_decay": -1}, 0.1, "lr_decay = -1"),
    ({"name": "step", "every": 0}, 0.1, "every = 0"),
    ({"name": "cosine", "total": 5, "lr_min": 1.0}, 0.1, "lr_min"),
    ({"name": "cosine", "total": 5, "warmup": 5}, 0.1, r"warmup = 5; it must be an integer in \[0, total = 5\)"),
    ({"name": "constant", "per": "batch"}, 0.1, "per = 'batch'"),
    ("constant", 0.0, "learning_rate = 0.0"),
    (3, 0.1, "a name or a dict"),
])
def test_bad_schedules(spec, lr, match):
    with pytest.raises(TrainingError, match=match):
        make_schedule(spec, lr)
