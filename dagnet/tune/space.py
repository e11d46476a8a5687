"""Search spaces: what a tune samples, read from a YAML file, and narrowed around good trials.

    lr: {low: 1.0e-3, high: 1.0e-1, log: true}       # a float, log-uniform
    epochs: {low: 1, high: 4}                          # an int (both bounds ints), uniform
    batch_size: {low: 32, high: 256, step: 32}         # an int on a grid
    update_rule: {choices: [sgd_momentum, adam]}       # a choice
    lr_schedule: cosine                                # fixed for every trial

Keys name what a trial sets (see dagnet.tune.trial for which keys mean what); every mistake
is a TuneError naming the file and key. Param is a frozen dataclass, so spaces compare and
round-trip through `to_yaml`/`load_space` exactly; `narrow` is a pure function of a space
and the finished trials.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import yaml

from dagnet.errors import TuneError

KINDS = ("float", "int", "choice", "fixed")


@dataclass(frozen=True)
class Param:
    """One dimension: a float or int range (log scale or not; an int may have a step), a list
    of choices, or a fixed value."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: int | None = None
    choices: tuple = ()
    value: object = None

    def to_dict(self):
        """The YAML form load_space reads back."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        d = {"low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        return d

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.name} = {self.value!r}"
        if self.kind == "choice":
            return f"{self.name} in {list(self.choices)}"
        scale = ", log" if self.log else (f", step {self.step}" if self.step else "")
        return f"{self.name} in [{self.low:g}, {self.high:g}] ({self.kind}{scale})"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_param(where: str, name: str, entry) -> Param:
    """A Param from one space-file entry; TuneError naming `where` (file and key) otherwise."""
    if not isinstance(entry, dict):
        if isinstance(entry, (list, tuple)):
            raise TuneError(f"{where}: a list is not a range; write {{choices: {list(entry)}}} "
                            f"to choose among these values")
        if isinstance(entry, str):
            try:
                float(entry)
            except ValueError:
                pass
            else:
                raise TuneError(f"{where}: {entry!r} is a string; YAML 1.1 needs a dot in a float "
                                f"(write 1.0e-3, not 1e-3)")
        return Param(name, "fixed", value=entry)
    keys = set(entry)
    if "choices" in keys:
        extra = sorted(keys - {"choices"})
        if extra:
            raise TuneError(f"{where}: a choice takes only 'choices', not {', '.join(extra)}")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise TuneError(f"{where}.choices: must be a non-empty list, got {choices!r}")
        if any(isinstance(c, (dict, list)) for c in choices):
            raise TuneError(f"{where}.choices: choices must be numbers, strings, booleans or null")
        return Param(name, "choice", choices=tuple(choices))
    unknown = sorted(keys - {"low", "high", "log", "step"})
    if unknown or not {"low", "high"} <= keys:
        raise TuneError(f"{where}: a range is {{low: L, high: H}} with optional log: true or "
                        f"step: S, a choice is {{choices: [...]}}; got keys {sorted(keys)}")
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    for key, v in (("low", low), ("high", high)):
        if not _number(v):
            hint = " (write 1.0e-3, not 1e-3: YAML 1.1 needs a dot in a float)" if isinstance(v, str) else ""
            raise TuneError(f"{where}.{key}: must be a number, got {v!r}{hint}")
    if not isinstance(log, bool):
        raise TuneError(f"{where}.log: must be true or false, got {log!r}")
    if not low < high:
        raise TuneError(f"{where}: low ({low}) must be less than high ({high})")
    if log and low <= 0:
        raise TuneError(f"{where}: a log range needs low > 0, got {low}")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if step is not None:
        if kind != "int" or not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise TuneError(f"{where}.step: a step is an integer >= 1 on an int range (low and "
                            f"high integers), got step {step!r} on {low!r}..{high!r}")
        if log:
            raise TuneError(f"{where}: give log or step, not both")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def parse_space(data, where: str = "space") -> list[Param]:
    """The Params of a space mapping {name: entry}, in the file's order."""
    if not isinstance(data, dict) or not data:
        raise TuneError(f"{where}: a search space is a mapping of names to ranges, e.g. "
                        f"lr: {{low: 1.0e-3, high: 1.0e-1, log: true}}; got {type(data).__name__}")
    params = []
    for name, entry in data.items():
        if not isinstance(name, str):
            raise TuneError(f"{where}: key {name!r} must be a string")
        params.append(parse_param(f"{where}: {name}", name, entry))
    if all(p.kind == "fixed" for p in params):
        raise TuneError(f"{where}: every entry is fixed; give at least one range or choice")
    return params


def load_space(path) -> list[Param]:
    """The search space of a YAML file (plain data, never code; aliases, size and encoding
    bounded as a spec's are: dagnet.spec.read)."""
    from dagnet.errors import SpecError
    from dagnet.files import read_bounded
    from dagnet.spec.read import MAX_SPEC_BYTES
    from dagnet.spec.read import _parse as parse_bounded

    path = os.fspath(path)
    raw = read_bounded(path, MAX_SPEC_BYTES, TuneError, "search space file")
    try:
        data = parse_bounded(raw.decode("utf-8"), path, "yaml")
    except UnicodeDecodeError as e:
        raise TuneError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                        f"{e.start}); save the space as UTF-8") from None
    except SpecError as e:
        raise TuneError(str(e).replace("not valid YAML", "cannot be read as YAML")) from None
    return parse_space(data, path)


def to_yaml(space: list[Param]) -> str:
    return yaml.safe_dump({p.name: p.to_dict() for p in space}, sort_keys=False,
                          default_flow_style=None)


def suggest(trial, space: list[Param]) -> dict:
    """{name: value} for one trial, drawn through the optuna trial's suggest_* calls."""
    values = {}
    for p in space:
        if p.kind == "fixed":
            values[p.name] = p.value
        elif p.kind == "choice":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log, step=p.step or 1)
        else:
            values[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
    return values


def fits(p: Param, value) -> bool:
    """value is one the space's dimension p can take (a choice, a number in range and on its
    grid, the fixed value)."""
    def same(a, b):  # True is not 1 here, 0 is 0.0
        return isinstance(a, bool) == isinstance(b, bool) and a == b

    if p.kind == "fixed":
        return same(value, p.value)
    if p.kind == "choice":
        return any(same(value, c) for c in p.choices)
    if not _number(value) or not p.low <= value <= p.high:
        return False
    if p.kind == "int":
        return float(value).is_integer() and (int(value) - p.low) % (p.step or 1) == 0
    return True


def narrow(space: list[Param], ranked: list[dict], keep: float = 0.25, margin: float = 0.25
           ) -> list[Param]:
    """A smaller space around the best trials: coarse-to-fine search.

    ranked: the finished trials' params, best first. The best `keep` fraction of them (at
    least two) span each numeric range, widened by `margin` of that span on each side (in
    log space for log ranges; by `margin` of the old span where they all agree) and clipped
    to the old range; a choice keeps the values those trials used."""
    if not ranked:
        raise TuneError("cannot narrow the search space: the first study has no finished trial")
    top = ranked[:max(2, math.ceil(keep * len(ranked)))]
    out = []
    for p in space:
        seen = [t[p.name] for t in top if p.name in t]
        if p.kind == "fixed" or not seen:
            out.append(p)
        elif p.kind == "choice":
            out.append(Param(p.name, "choice", choices=tuple(c for c in p.choices if c in seen)))
        else:
            out.append(_narrow_range(p, seen, margin))
    return out


def _narrow_range(p: Param, seen: list, margin: float) -> Param:
    f, inv = (math.log, math.exp) if p.log else ((lambda v: v), (lambda v: v))
    lo, hi, old_lo, old_hi = f(min(seen)), f(max(seen)), f(p.low), f(p.high)
    pad = margin * ((hi - lo) or (old_hi - old_lo))
    lo, hi = inv(max(old_lo, lo - pad)), inv(min(old_hi, hi + pad))
    if p.kind == "int":
        # inward to the grid: the seen values are on it, so they stay inside
        step = p.step or 1
        lo = p.low + math.ceil(round((lo - p.low) / step, 9)) * step
        hi = p.low + math.floor(round((hi - p.low) / step, 9)) * step
        lo, hi = max(lo, p.low), min(hi, p.high)
        if lo == hi:
            return Param(p.name, "fixed", value=lo)
    else:
        # round to 4 significant digits: the narrowed file is for people to read
        lo, hi = float(f"{max(lo, p.low):.4g}"), float(f"{min(hi, p.high):.4g}")
        if not lo < hi:
            return Param(p.name, "fixed", value=lo)
    return Param(p.name, p.kind, low=lo, high=hi, log=p.log, step=p.step)
