"""Learning-rate schedules: pure functions of the epoch or step count t (0-based).

    schedule = make_schedule({"name": "cosine", "total": 10}, learning_rate=1e-3)
    config["learning_rate"] = schedule(epoch)     # schedule.per says "epoch" or "step"

Every schedule is a frozen dataclass: calling it gives the rate at t from scratch (no
accumulated state), so a resumed run gets bitwise the same rates as an uninterrupted one.
`to_dict()` gives the JSON-able form that `make_schedule` takes back.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from dagnet.errors import TrainingError
from dagnet.train.hyperparams import did_you_mean

UNITS = ("epoch", "step")


def _check(name: str, key: str, value, ok: bool, want: str) -> None:
    if not ok:
        raise TrainingError(f"schedule {name!r}: {key} = {value!r}; it must be {want}")


def _is_number(v) -> bool:
    """A finite int or float, not a bool (True would pass for 1 silently)."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Schedule:
    """Base of all schedules: learning_rate is lr0, per the unit t counts ("epoch" or "step")."""

    learning_rate: float
    per: str = "epoch"

    name = ""

    def __post_init__(self):
        _check(self.name, "learning_rate", self.learning_rate,
               _is_number(self.learning_rate) and self.learning_rate > 0, "a finite number > 0")
        _check(self.name, "per", self.per, self.per in UNITS, f"one of {UNITS}")

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-able description; make_schedule(d, d['learning_rate']) rebuilds the schedule."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Constant(Schedule):
    """lr_t = lr0."""

    name = "constant"

    def __call__(self, t: int) -> float:
        return float(self.learning_rate)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """lr_t = lr0 * lr_decay ** (t // every): the course's per-epoch `lr_decay`."""

    lr_decay: float = 1.0
    every: int = 1

    name = "step"

    def __post_init__(self):
        super().__post_init__()
        _check(self.name, "lr_decay", self.lr_decay,
               _is_number(self.lr_decay) and self.lr_decay > 0, "a finite number > 0")
        _check(self.name, "every", self.every, _is_count(self.every) and self.every >= 1,
               "an integer >= 1")

    def __call__(self, t: int) -> float:
        return float(self.learning_rate * self.lr_decay ** (t // self.every))


@dataclass(frozen=True)
class InverseDecay(Schedule):
    """lr_t = lr0 * (1 + gamma * t) ** -power (Caffe's "inv" policy, per step by default)."""

    gamma: float = 1e-4
    power: float = 0.75
    per: str = "step"

    name = "inverse"

    def __post_init__(self):
        super().__post_init__()
        for key in ("gamma", "power"):
            value = getattr(self, key)
            _check(self.name, key, value, _is_number(value) and value >= 0, "a finite number >= 0")

    def __call__(self, t: int) -> float:
        return float(self.learning_rate * (1 + self.gamma * t) ** -self.power)


@dataclass(frozen=True)
class Cosine(Schedule):
    """lr_t = lr_min + (lr0 - lr_min) * (1 + cos(pi * t / total)) / 2, held at lr_min after total.

    With warmup = W > 0 the rate first climbs linearly, lr0 * (t + 1) / W for t < W, and the
    cosine then spans the remaining total - W: fresh weights take a large rate badly, and a
    short climb lets the run use a larger lr0 without diverging."""

    total: int = 0
    lr_min: float = 0.0
    warmup: int = 0

    name = "cosine"

    def __post_init__(self):
        super().__post_init__()
        _check(self.name, "total", self.total, _is_count(self.total) and self.total >= 1,
               f"an integer >= 1 (the number of {self.per}s the rate takes to reach lr_min)")
        _check(self.name, "lr_min", self.lr_min,
               _is_number(self.lr_min) and 0 <= self.lr_min <= self.learning_rate,
               f"a number in [0, learning_rate = {self.learning_rate}]")
        _check(self.name, "warmup", self.warmup,
               _is_count(self.warmup) and 0 <= self.warmup < self.total,
               f"an integer in [0, total = {self.total})")

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return float(self.learning_rate * (t + 1) / self.warmup)
        progress = min(t - self.warmup, self.total - self.warmup) / (self.total - self.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return float(self.lr_min + (self.learning_rate - self.lr_min) * cosine)


SCHEDULES = {cls.name: cls for cls in (Constant, StepDecay, InverseDecay, Cosine)}


def make_schedule(spec: str | dict, learning_rate: float, total: int | None = None) -> Schedule:
    """A schedule from a name ("cosine") or a dict ({"name": "step", "lr_decay": 0.95}).

    learning_rate is lr0 unless the dict gives one; total fills in cosine's `total` when the
    dict has none (pass the run's number of epochs, or steps for per="step").
    """
    if not isinstance(spec, (str, dict)):
        raise TrainingError(f"a schedule is a name or a dict with a 'name' key, got {spec!r}")
    fields = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = fields.pop("name", None)
    if name not in SCHEDULES:
        raise TrainingError(f"unknown learning-rate schedule {name!r}; known: {', '.join(SCHEDULES)}"
                            f"{did_you_mean(name, SCHEDULES)}")
    cls = SCHEDULES[name]
    fields.setdefault("learning_rate", learning_rate)
    if cls is Cosine and "total" not in fields:
        if total is None:
            raise TrainingError("schedule 'cosine' needs total: give {'name': 'cosine', 'total': N} "
                                "or make_schedule(..., total=number_of_epochs)")
        fields["total"] = total
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TrainingError(f"schedule {name!r}: unknown key(s) {', '.join(unknown)}; "
                            f"it takes name, {', '.join(sorted(known))}"
                            f"{did_you_mean(unknown[0], known)}")
    return cls(**fields)
