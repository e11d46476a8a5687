"""Fuzzing specs: random sequential and general-form specs, valid and broken, given as dicts,
YAML text or JSON text, either build, compile and run (forward and backward) or raise a
DagnetError - never another exception type. Text mutations of valid specs too.

Run with -s to see how many cases were tried and how they ended."""
import json
from collections import Counter

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagnet
from dagnet.compiler.feeds import random_feeds
from dagnet.errors import DagnetError
from dagnet.ops.declare import INITIALIZERS
from dagnet.spec import graph_from_spec

COUNTS = Counter()

FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values of every type a hand-written spec gets wrong. No sizes between ~1e8 and the dagnet
# limit (2**40 values): those are allocatable in principle and would only test this machine.
JUNK = st.sampled_from([
    None, True, False, 0, -1, -3, 1, 2, 3, 7, 2.5, -0.5, 1e-5, float("nan"), float("inf"),
    "a", "1e-5", "", "relu", "x", [], [1], [1, 2], [0, 3], [-1], [1, 2, 3], [2, 2, -1], {},
    {"a": 1}, 10 ** 13, 2 ** 70, 70000,
])


def sometimes_junk(valid, junk_one_in=6):
    """Mostly a valid value, one time in `junk_one_in` a junk one (never if junk_one_in is 0)."""
    if not junk_one_in:
        return valid
    return st.integers(0, junk_one_in - 1).flatmap(lambda i: JUNK if i == 0 else valid)


# Half the specs are meant to be valid (no junk at all), the others broken at a random rate.
RATES = st.sampled_from([0, 0, 0, 30, 12, 5])


SIZE = st.one_of(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=2, max_size=2))
VALID = {
    "filters": st.integers(1, 4), "num_filters": st.integers(1, 4), "units": st.integers(1, 6),
    "hidden": st.integers(1, 6), "num_outputs": st.integers(1, 6),
    "size": SIZE, "filter_size": SIZE, "kernel_size": SIZE, "pool_size": SIZE,
    "stride": st.integers(1, 3), "pad": st.integers(0, 2), "padding": st.integers(0, 2),
    "p": st.sampled_from([0.0, 0.25, 0.5]), "eps": st.sampled_from([1e-5, 1e-3]),
    "momentum": st.sampled_from([0.9, 0.5]), "alpha": st.sampled_from([0.1, 1.0]),
    "delta": st.sampled_from([1.0, 0.5]), "init": st.sampled_from(INITIALIZERS),
    "weight_scale": st.sampled_from([1e-2, 0.1]), "floor": st.booleans(),
    "shape": st.sampled_from([[-1], [4, -1], [2, 2, -1], [1, 8, 8], [64]]),
    "axis": st.sampled_from([1, -1, 2]), "dtype": st.sampled_from(["float32", "int64"]),
}
LAYER_KEYS = {
    "conv": ["num_filters", "filter_size", "stride", "pad", "init", "weight_scale", "floor"],
    "pool": ["size", "stride", "pad", "floor"], "avg_pool": ["pool_size", "stride", "pad"],
    "gap": [], "fc": ["hidden", "init", "weight_scale"], "affine": ["units"],
    "bn": ["eps", "momentum"], "dropout": ["p"], "relu": [], "leaky_relu": ["alpha"],
    "elu": ["alpha"], "sigmoid": [], "tanh": [], "softmax": [], "flatten": [],
    "reshape": ["shape"],
}
OP_KEYS = {
    "conv2d": ["filters", "size", "stride", "pad", "floor"], "affine": ["units"],
    "batchnorm": ["eps", "momentum"], "max_pool2d": ["size", "stride", "pad"],
    "avg_pool2d": ["size", "stride"], "dropout": ["p"], "relu": [], "tanh": [], "sigmoid": [],
    "elu": ["alpha"], "leaky_relu": ["alpha"], "softmax": [], "flatten": [],
    "reshape": ["shape"], "add": [], "concat": ["axis"], "global_avg_pool": [],
    "softmax_cross_entropy": [], "svm_loss": ["delta"], "param": ["shape", "init"],
    "input": ["shape", "dtype"], "affine+relu": [], "cnov2d": [],
}


@st.composite
def mapping_of(draw, keys, required=(), rate=6, valid=None):
    """A dict with some of `keys` (required ones mostly present), values mostly valid, and
    now and then an unknown key."""
    valid = {**VALID, **(valid or {})}
    out = {}
    for key in keys:
        if key in required or draw(st.integers(0, 2)) > 0:
            if key in required and rate and draw(st.integers(0, rate)) == 0:
                continue  # forget a required key
            out[key] = draw(sometimes_junk(valid.get(key, JUNK), rate))
    if rate and draw(st.integers(0, rate)) == 0:
        out[draw(st.sampled_from(["filtres", "stride2", "type2", "inputs", "name"]))] = draw(JUNK)
    return out


@st.composite
def sequential_specs(draw):
    rate = draw(RATES)
    spec = {"name": draw(sometimes_junk(st.just("t"), rate * 3))}
    shape = draw(sometimes_junk(st.sampled_from([[1, 8, 8], [2, 6, 6], [3, 4, 4], [10], [4, 3]]),
                                rate * 2))
    spec["input"] = draw(sometimes_junk(st.just({"shape": shape}), rate * 3))
    layers = []
    for _ in range(draw(st.integers(0 if rate else 1, 5))):
        kind = draw(sometimes_junk(st.sampled_from(sorted(LAYER_KEYS)), rate * 2))
        known = isinstance(kind, str) and kind in LAYER_KEYS
        required = {"conv": ["num_filters", "filter_size"], "fc": ["hidden"],
                    "affine": ["units"], "reshape": ["shape"]}.get(kind, []) if known else []
        layer = {"type": kind, **draw(mapping_of(LAYER_KEYS[kind] if known else [], required, rate))}
        layers.append(layer if not rate or draw(st.integers(0, rate * 4)) else draw(JUNK))
    spec["layers"] = layers
    if draw(st.booleans()):
        spec["loss"] = draw(sometimes_junk(st.sampled_from(["softmax", "svm", "none"]), rate * 2))
    if rate and draw(st.integers(0, rate * 2)) == 0:
        del spec[draw(st.sampled_from(["input", "layers"]))]
    return spec


ARITY = {"add": (2, 3), "concat": (2, 3), "softmax_cross_entropy": (2, 2), "svm_loss": (2, 2)}
PARAM_VALID = {"shape": st.sampled_from([[6, 3], [3], [2, 2, 3, 3], [2]])}


@st.composite
def general_specs(draw):
    rate = draw(RATES)
    nodes = [{"name": "x", "op": "input",
              "shape": draw(sometimes_junk(st.sampled_from([[2, 6, 6], [1, 4, 4], [6]]), rate * 2))}]
    if draw(st.booleans()):
        nodes.append({"name": "y", "op": "input", "shape": [], "dtype": "int64"})
    names = [n["name"] for n in nodes]
    for i in range(draw(st.integers(1, 6))):
        ops = sorted(OP_KEYS) if rate else sorted(set(OP_KEYS) - {"cnov2d", "affine+relu", "input"})
        op = draw(st.sampled_from(ops))
        name = draw(sometimes_junk(st.just(f"n{i}"), rate * 4))
        node = {"name": name, "op": op}
        if op not in ("input", "param") or (rate and draw(st.integers(0, rate)) == 0):
            lo, hi = (1, 3) if rate else ARITY.get(op, (1, 1))
            k = draw(st.integers(lo, hi))
            # now and then a dangling or later name
            pool = names + (["missing", "n9"] if rate else [])
            node["inputs"] = draw(sometimes_junk(
                st.lists(st.sampled_from(pool), min_size=k, max_size=k), rate * 4))
        node.update(draw(mapping_of(OP_KEYS[op], {"conv2d": ["filters", "size"],
                                                  "affine": ["units"],
                                                  "param": ["shape"]}.get(op, []), rate,
                                    PARAM_VALID if op == "param" else None)))
        nodes.append(node if not rate or draw(st.integers(0, rate * 4)) else draw(JUNK))
        names.append(name if isinstance(name, str) else "x")
    spec = {"name": "g", "nodes": nodes}
    if draw(st.integers(0, 5)) == 0:
        names = names if rate else [n for n in names if n != "x"]
        spec["outputs"] = draw(st.lists(st.sampled_from(names + ["nope"]), min_size=1, max_size=2))
    return spec


def as_source(spec, form):
    if form == "yaml":
        return yaml.safe_dump(spec, sort_keys=False)
    if form == "json":
        return json.dumps(spec)
    return spec


def build_compile_run(source) -> str:
    """'ok' or 'error'; anything but a DagnetError propagates and fails the test."""
    try:
        g = graph_from_spec(source)
        plan = dagnet.compile(g, dtype="float64", seed=0)
        feeds = random_feeds(plan, batch=3, seed=1)
        with np.errstate(all="ignore"):
            plan.forward(feeds)
            if plan.losses:
                plan.backward()
            dagnet.compile(g, dtype="float32", mode="eval").forward(
                {k: v for k, v in feeds.items()}, mode="eval")
    except DagnetError as e:
        assert str(e), "an error must say something"
        return "error"
    return "ok"


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    total = sum(COUNTS.values())
    print(f"\nspec fuzzing: {total} specs tried: " +
          ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))


@FUZZ
@given(sequential_specs(), st.sampled_from(["dict", "yaml", "json"]))
def test_random_sequential_specs_compile_or_raise_dagnet_errors(spec, form):
    COUNTS[f"sequential {build_compile_run(as_source(spec, form))}"] += 1


@FUZZ
@given(general_specs(), st.sampled_from(["dict", "yaml", "json"]))
def test_random_general_specs_compile_or_raise_dagnet_errors(spec, form):
    COUNTS[f"general {build_compile_run(as_source(spec, form))}"] += 1


VALID_TEXT = """name: t
input: {shape: [1, 8, 8]}
layers:
  - {type: conv, num_filters: 2, filter_size: 3, pad: 1}
  - {type: bn}
  - {type: relu}
  - {type: pool, size: 2, stride: 2}
  - {type: dropout, p: 0.25}
  - {type: fc, hidden: 4}
loss: softmax
"""


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID_TEXT)), st.integers(0, 2),
                          st.sampled_from(list("{}[]:,-\n #!&*'\"0123456789abcxyz\t|>%@"))),
                min_size=1, max_size=6))
def test_mutated_spec_text_compiles_or_raises_dagnet_errors(edits):
    text = VALID_TEXT
    for pos, kind, ch in edits:
        pos = min(pos, len(text))
        text = (text[:pos] + ch + text[pos:] if kind == 0 else
                text[:pos] + text[pos + 1:] if kind == 1 else text[:pos] + ch + text[pos + 1:])
    COUNTS[f"mutated text {build_compile_run(text)}"] += 1


def test_the_valid_text_is_valid():
    assert build_compile_run(VALID_TEXT) == "ok"
