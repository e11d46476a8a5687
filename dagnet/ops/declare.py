"""What an op declares once, as data: its input ports and its attributes (Caffe's caffe.proto
idea). The builder's methods, both spec forms, the validate pass, the ONNX mappings and the
spec reference (docs/spec.md) all derive their checks, defaults and documentation from these.

    ports = (data("x"), weight("w", "filters"), param("b", "zeros", "one per filter"))
    attributes = (
        Attr("filters", "int", REQUIRED, "[1, inf)", "output channels", ("num_filters",),
             node=False),                                  # shapes the params, not stored
        Attr("stride", "pair", 1, WINDOW, "step between windows"),
        Attr("floor", "bool", False, doc="...", keep_default=False),
    )

A value check returns the problem as text ("must be a positive integer, got -2"); each caller
puts its own location in front (a node, an op, a spec key path) and raises its error class,
so every context says the same thing about the same mistake.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

#: Largest window attr (size, stride, pad) accepted: no image is this large, and the window
#: ops' shape arithmetic (and the help text that searches for a fitting stride) would crawl
#: through numbers that big.
MAX_WINDOW = 2 ** 16 - 1
#: bounds of a window size or stride, and of a pad
WINDOW, PAD = f"[1, {MAX_WINDOW}]", f"[0, {MAX_WINDOW}]"
#: bounds of a positive number and of a count
POSITIVE, COUNT = "(0, inf)", "[1, inf)"
#: the initializers a param node may name (dagnet.init draws them)
INITIALIZERS = ("gaussian", "he", "xavier", "uniform", "he_uniform", "xavier_uniform", "torch",
                "zeros", "ones", "constant")


class _Required:
    def __repr__(self):
        return "REQUIRED"


#: the default of an attribute that must be given
REQUIRED = _Required()


@dataclass(frozen=True)
class Same:
    """A default that is another attribute's value (a pool's stride defaults to its size)."""

    attr: str

    def __repr__(self):
        return f"the {self.attr}"


# -- kinds -----------------------------------------------------------------------------------
def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class Interval:
    """Bounds such as "[0, 1)" or "(0, inf)"; the ends may be open or closed."""

    lo: float
    hi: float
    lo_open: bool
    hi_open: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> "Interval":
        m = re.fullmatch(r"([\[(])\s*(-?[\w.]+)\s*,\s*(-?[\w.]+)\s*([\])])", text)
        if not m:
            raise ValueError(f"bounds must read like '[0, 1)', got {text!r}")
        return cls(float(m[2]), float(m[3]), m[1] == "(", m[4] == ")", text)

    def __contains__(self, x) -> bool:
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below


def _noun(kind: str, iv: Interval | None) -> str:
    """'a positive integer', 'a number in [0, 1)', ...: what a value of kind within iv is."""
    base = "number" if kind == "number" else "integer"
    article = "a" if base == "number" else "an"
    if iv is None:
        return f"{article} {base}"
    positive = (iv.lo, iv.lo_open) == (0, True) or (base == "integer" and (iv.lo, iv.lo_open) == (1, False))
    non_negative = (iv.lo, iv.lo_open) == (0, False)
    sign = "positive" if positive else "non-negative"
    if kind == "pair":
        if not (positive or non_negative):
            return f"an integer or a pair of integers in {iv.text}"
        phrase = f"a {sign} integer or a pair of them"
        return phrase if math.isinf(iv.hi) else f"{phrase}, up to {iv.hi:g}"
    if math.isinf(iv.hi) and (positive or non_negative):
        return f"a {sign} {base}"
    return f"{article} {base} in {iv.text}"


KINDS = ("int", "pair", "pads", "number", "scales", "bool", "choice", "dims", "target", "dtype",
         "tensor", "axes", "text", "ints")


def tensor_array(v) -> np.ndarray | None:
    """v (a number or nested lists of numbers) as a float64/int64 array, or None if it is not
    one rectangular array of numbers (bools, strings, ragged lists, NaN are not)."""
    if isinstance(v, (bool, np.bool_, str, bytes)) or v is None:
        return None
    try:
        a = np.asarray(v)
    except (ValueError, TypeError):  # ragged
        return None
    if a.dtype.kind not in "iuf" or a.dtype.kind == "f" and np.isnan(a).any():
        return None
    return a


# -- attributes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attr:
    """One attribute of an op (or of input/param nodes).

    kind: int | pair (an int or an (h, w) pair) | pads (an int, an (h, w) pair or ONNX's
    (top, left, bottom, right); read as the four) | number | scales (a number or an (h, w)
    pair of them) | bool | choice (one of `choices`) | dims (a list of positive sizes) | target
    (sizes, at most one -1; 0 copies the input's size there) | ints (a list of integers) | dtype (a numpy float/int dtype name) | tensor (a number or nested
    lists of numbers) | axes (an int or a list of distinct ints, negatives counting from the
    end) | text (a non-empty string). bounds: an interval such as "[0, 1)" for int, pair,
    pads, number and scales.
    node=False marks a builder hyperparameter that shapes the op's params (conv2d's filters)
    and is not stored on the node; keep_default=False stores it only when it differs from the
    default (a flag such as floor). hint is added to the message of a value out of bounds."""

    name: str
    kind: str
    default: object = REQUIRED
    bounds: str | None = None
    doc: str = ""
    aliases: tuple = ()
    choices: tuple = ()
    node: bool = True
    keep_default: bool = True
    hint: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"attr {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "_interval", Interval.parse(self.bounds) if self.bounds else None)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def wanted(self) -> str:
        """What a valid value is, as the messages and the reference say it."""
        k = self.kind
        if k in ("int", "pair", "number"):
            return _noun(k, self._interval)
        if k == "pads":
            return _noun("pair", self._interval).replace(
                " or a pair of them", ", a pair of them (height, width) or four "
                "(top, left, bottom, right)")
        if k == "scales":
            return f"{_noun('number', self._interval)} or a pair of them (height, width)"
        return {"bool": "true or false", "choice": f"one of {', '.join(map(str, self.choices))}",
                "dims": "a list of positive integers",
                "target": "a list of non-negative integers with at most one -1",
                "ints": "a list of integers",
                "dtype": "a float or integer dtype name such as float32 or int64",
                "tensor": "a number or nested lists of numbers of one rectangular shape",
                "axes": "an integer or a list of distinct integers",
                "text": "a non-empty string"}[k]

    def problem(self, v) -> str | None:
        """None if v is a valid value, else what is wrong: 'must be ..., got ...'."""
        if self._valid(v):
            return None
        hint = f" ({self.hint})" if self.hint else ""
        return f"must be {self.wanted}, got {v!r}{hint}"

    def read(self, v):
        """A valid value in the form ops compute with: pairs as (h, w) tuples, numbers as
        floats, targets as tuples (call problem() first)."""
        k = self.kind
        if k == "pair":
            return (int(v), int(v)) if is_int(v) else tuple(int(a) for a in v)
        if k == "pads":
            v = (int(v),) * 2 if is_int(v) else tuple(int(a) for a in v)
            return v * 2 if len(v) == 2 else v
        if k == "scales":
            return (float(v), float(v)) if is_number(v) else tuple(float(a) for a in v)
        if k == "number":
            return float(v)
        if k == "int":
            return int(v)
        if k == "bool":
            return bool(v)
        if k in ("dims", "target", "ints"):
            return tuple(int(d) for d in v)
        if k == "axes":
            return (int(v),) if is_int(v) else tuple(int(d) for d in v)
        if k == "dtype":
            return str(np.dtype(v))
        return v

    # -- the check per kind -------------------------------------------------------------------
    def _valid(self, v) -> bool:
        k, iv = self.kind, self._interval
        if k == "int":
            return is_int(v) and (iv is None or v in iv)
        if k in ("pair", "pads"):
            sizes = (2, 4) if k == "pads" else (2,)
            items = v if isinstance(v, (list, tuple)) and len(v) in sizes else [v]
            return all(is_int(a) and (iv is None or a in iv) for a in items)
        if k == "scales":
            items = v if isinstance(v, (list, tuple)) and len(v) == 2 else [v]
            return all(is_number(a) and math.isfinite(float(a)) and (iv is None or float(a) in iv)
                       for a in items)
        if k == "number":
            return is_number(v) and math.isfinite(float(v)) and (iv is None or float(v) in iv)
        if k == "bool":
            return isinstance(v, (bool, np.bool_))
        if k == "choice":
            return isinstance(v, str) and v in self.choices
        if k == "dims":
            return isinstance(v, (list, tuple)) and all(is_int(d) and d > 0 for d in v)
        if k == "target":
            return (isinstance(v, (list, tuple)) and all(is_int(d) and d >= -1 for d in v)
                    and list(v).count(-1) <= 1)
        if k == "ints":
            return isinstance(v, (list, tuple)) and all(is_int(d) for d in v)
        if k == "tensor":
            return tensor_array(v) is not None
        if k == "axes":
            return is_int(v) or (isinstance(v, (list, tuple)) and all(is_int(d) for d in v)
                                 and len(set(v)) == len(v))
        if k == "text":
            return isinstance(v, str) and bool(v.strip())
        try:  # dtype: a name, or anything numpy reads as one (np.float32)
            return v is not None and not isinstance(v, bool) and np.dtype(v).kind in "fiu"
        except Exception:  # noqa: BLE001 - numpy's dtype parser raises several kinds on junk
            return False


def resolve_default(attr: Attr, values: dict):
    """attr's default, following Same(...) to the other attribute's value in `values`."""
    d = attr.default
    return values.get(d.attr) if isinstance(d, Same) else d


# -- ports -----------------------------------------------------------------------------------
#: the element kinds a port takes: floats (the plan's dtype) or integers (int64 indices)
PORT_DTYPES = ("float", "int")


@dataclass(frozen=True)
class Port:
    """One input of an op. batched: a data input (the builder binds it positionally; it carries
    the batch dimension), else a param. either: a data input that also takes an unbatched value
    (a param, a constant, an unbatched input or op output): the tensor-math ops' ports.
    grad: receives a gradient (labels and indices do not). dtype: "float" or "int" (labels,
    indices: int64 values only). init: for a param the builder creates, "weight" (the op's
    init/weight_scale attrs, fans recorded) or an initializer name (zeros, ones, constant);
    value: a constant initializer's value, a number or Same(attr) (a builder attr's).
    variadic: the port repeats, at least `least` times (add's x0, x1, ...)."""

    name: str
    batched: bool = True
    grad: bool = True
    init: str | None = None
    variadic: bool = False
    least: int = 1
    doc: str = ""
    value: object = None
    either: bool = False
    dtype: str = "float"

    def __post_init__(self):
        if self.dtype not in PORT_DTYPES:
            raise ValueError(f"port {self.name}: dtype must be one of {PORT_DTYPES}, got {self.dtype!r}")
        if self.dtype == "int" and self.grad:
            raise ValueError(f"port {self.name}: an integer port gets no gradient (grad=False)")
        if self.either and not self.batched:
            raise ValueError(f"port {self.name}: either= marks a data port (batched=True)")


def data(name: str = "x", doc: str = "") -> Port:
    """A batched, differentiable input."""
    return Port(name, doc=doc)


def value(name: str = "x", doc: str = "") -> Port:
    """A differentiable input with or without the batch dimension (tensor math)."""
    return Port(name, doc=doc, either=True)


def labels(name: str = "labels", doc: str = "class indices in [0, C)") -> Port:
    """A batched integer input without a gradient (a loss's class labels)."""
    return Port(name, grad=False, dtype="int", doc=doc)


def indices(name: str = "indices", doc: str = "int64 indices", batched_only: bool = False) -> Port:
    """An integer input without a gradient (gather's or embedding's indices), with or without
    the batch dimension (batched_only=True: with it, as a loss's labels)."""
    return Port(name, grad=False, dtype="int", doc=doc, either=not batched_only)


def weight(name: str = "w", doc: str = "") -> Port:
    """A param the builder makes with the op's `init` and `weight_scale` attrs."""
    return Port(name, batched=False, init="weight", doc=doc)


def param(name: str, init: str, doc: str = "", value=None) -> Port:
    """A param the builder makes with a fixed initializer (zeros, ones; constant with `value`,
    a number or Same(attr): the value of one of the op's builder attrs)."""
    return Port(name, batched=False, init=init, doc=doc, value=value)


def variadic(name: str = "x", least: int = 2, doc: str = "", either: bool = False) -> Port:
    """A batched input that repeats: name0, name1, ... (at least `least`); either=True: each
    may also be unbatched."""
    return Port(name, variadic=True, least=least, doc=doc, either=either)
