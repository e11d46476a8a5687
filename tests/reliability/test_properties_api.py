"""Property: every public function, given any value for one of its arguments (the others valid),
returns or raises a DagnetError - never another exception - within bounded time and memory.

Hypothesis draws the argument from values a careless caller passes: numbers of every sign and
size, NaN, bools, strings, None, containers, arrays of odd shapes and dtypes. Run with -s to see
how the calls ended."""
from __future__ import annotations

import time
import tracemalloc
from collections import Counter

import dagnet  # noqa: F401 - before numpy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagnet import Graph
from dagnet.errors import DagnetError
from tests.reliability.helpers import tiny_data, tiny_mlp

COUNTS = Counter()

#: what one call may cost
MAX_SECONDS = 5.0
MAX_BYTES = 256 * 2 ** 20

ARRAYS = st.sampled_from([
    np.zeros((4, 6), np.float32), np.zeros((4, 5), np.float32), np.zeros(6, np.float32),
    np.zeros((0, 6), np.float32), np.zeros((4, 6), np.int64), np.zeros((4, 6), np.float16),
    np.full((4, 6), np.nan, np.float32), np.zeros((4, 6, 1), np.float32), np.array("x"),
    np.zeros((4, 6), np.complex64), np.zeros((2, 3), object), np.zeros(4, np.int64),
    np.array([0, 1, 2, 9]), np.array([-1, 0, 1, 2]), np.zeros((4, 3), np.float64),
])
JUNK = st.one_of(
    st.integers(-2 ** 70, 2 ** 70), st.integers(-3, 8),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 2.5, -0.0, 1e-300]),
    st.booleans(), st.none(), st.text(max_size=8), st.sampled_from(["train", "eval", "lenet", ""]),
    st.lists(st.integers(-2, 6), max_size=4), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ARRAYS, st.just(object()), st.just(lambda: 1.0), st.just(lambda x: x),
    st.sampled_from([{"x": np.zeros((4, 6), np.float32)}, {"scores": np.ones((4, 3))},
                     {"learning_rate": -1}, {"lr": 0.1}, (3,), (1, 8, 8), "fc1", "scores"]),
)

_PLANS = {}


def plan(mode="train"):
    if mode not in _PLANS:
        _PLANS[mode] = dagnet.compile(tiny_mlp(), seed=0, mode=mode)
    return _PLANS[mode]


def X():
    return np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)


def trained_plan():
    p = plan()
    p.forward(p.feeds_for(X(), np.zeros(4, int)))
    return p


def builder_input():
    g = Graph("g")
    return g, g.input("x", (2, 8, 8))


def solver(**kw):
    from dagnet.train.solver import Solver

    kw = {"verbose": False, "num_epochs": 1, "batch_size": 4, **kw}
    return Solver(plan(), tiny_data(8, (6,)), **kw)


def numerical(**kw):
    from dagnet.gradcheck import numerical_gradient

    x = np.ones(3)
    args = {"f": lambda: float(np.sum(x * x)), "x": x, "h": 1e-5, **kw}
    return numerical_gradient(args["f"], args["x"], args["h"])


# (name, call(value)): the argument under attack is `value`
CALLS = [
    ("predict.x", lambda v: plan("eval").predict(v)),
    ("predict.batch_size", lambda v: plan("eval").predict(X(), batch_size=v)),
    ("forward.feeds", lambda v: plan().forward(v)),
    ("forward.mode", lambda v: plan().forward(plan().feeds_for(X(), np.zeros(4, int)), mode=v)),
    ("forward.outputs", lambda v: plan().forward(plan().feeds_for(X(), np.zeros(4, int)), outputs=v)),
    ("backward.douts", lambda v: trained_plan().backward(v)),
    ("backward.dout", lambda v: trained_plan().backward({"scores": v})),
    ("loss_and_grads.x", lambda v: plan().loss_and_grads(v, np.zeros(4, int))),
    ("loss_and_grads.y", lambda v: plan().loss_and_grads(X(), v)),
    ("loss_and_grads.reg", lambda v: plan().loss_and_grads(X(), np.zeros(4, int), reg=v)),
    ("peak_bytes", lambda v: plan().peak_bytes(v)),
    ("compile.graph", lambda v: dagnet.compile(v)),
    ("compile.outputs", lambda v: dagnet.compile(tiny_mlp(), outputs=v)),
    ("compile.mode", lambda v: dagnet.compile(tiny_mlp(), mode=v)),
    ("compile.dtype", lambda v: dagnet.compile(tiny_mlp(), dtype=v)),
    ("compile.seed", lambda v: dagnet.compile(tiny_mlp(), seed=v)),
    ("compile.params", lambda v: dagnet.compile(tiny_mlp(), params=v)),
    ("compile.state", lambda v: dagnet.compile(tiny_mlp(), state=v)),
    ("compile.fuse", lambda v: dagnet.compile(tiny_mlp(), fuse=v)),
    ("Graph.input.shape", lambda v: Graph("g").input("x", v)),
    ("Graph.input.dtype", lambda v: Graph("g").input("x", (3,), dtype=v)),
    ("Graph.input.name", lambda v: Graph("g").input(v, (3,))),
    ("Graph.affine.units", lambda v: builder_input()[0].affine(builder_input()[1], v)),
    ("Graph.conv2d.filters", lambda v: (lambda g, x: g.conv2d(x, v, 3))(*builder_input())),
    ("Graph.conv2d.size", lambda v: (lambda g, x: g.conv2d(x, 2, v))(*builder_input())),
    ("Graph.conv2d.stride", lambda v: (lambda g, x: g.conv2d(x, 2, 3, stride=v))(*builder_input())),
    ("Graph.max_pool2d.size", lambda v: (lambda g, x: g.max_pool2d(x, v))(*builder_input())),
    ("Graph.dropout.p", lambda v: (lambda g, x: g.dropout(x, p=v))(*builder_input())),
    ("Graph.reshape.shape", lambda v: (lambda g, x: g.reshape(x, v))(*builder_input())),
    ("Graph.add_node.inputs", lambda v: Graph("g").add_node("relu", v)),
    ("Graph.node", lambda v: tiny_mlp().node(v)),
    ("Solver.data", lambda v: solver().__class__(plan(), v)),
    ("Solver.update_rule", lambda v: solver(update_rule=v)),
    ("Solver.optim_config", lambda v: solver(optim_config=v)),
    ("Solver.lr", lambda v: solver(optim_config={"learning_rate": v})),
    ("Solver.batch_size", lambda v: solver(batch_size=v)),
    ("Solver.num_epochs", lambda v: solver(num_epochs=v)),
    ("Solver.lr_schedule", lambda v: solver(lr_schedule=v)),
    ("Solver.weight_decay", lambda v: solver(weight_decay=v)),
    ("Solver.seed", lambda v: solver(seed=v)),
    ("Solver.checkpoint", lambda v: solver(checkpoint=v)),
    ("Solver.patience", lambda v: solver(patience=v)),
    ("Solver.allow_changes", lambda v: solver(allow_changes=v)),
    ("Solver.check_accuracy.num_samples", lambda v: solver().check_accuracy(X(), np.zeros(4, int), v)),
    ("load_checkpoint", lambda v: __import__("dagnet.train.checkpoint").train.checkpoint.load_checkpoint(v)),
    ("numerical_gradient.f", lambda v: numerical(f=v)),
    ("numerical_gradient.x", lambda v: numerical(x=v)),
    ("numerical_gradient.h", lambda v: numerical(h=v)),
    ("evaluate_arrays.batch_size", lambda v: __import__("dagnet.train.evaluate").train.evaluate.evaluate_arrays(plan("eval"), X(), np.zeros(4, int), batch_size=v)),
    ("make_schedule", lambda v: __import__("dagnet.train.schedules").train.schedules.make_schedule(v, 0.1, total=3)),
    ("split_train_val.num_val", lambda v: __import__("dagnet.data.preprocess").data.preprocess.split_train_val(X(), np.zeros(4, int), v, 0)),
    ("graph_from_spec", lambda v: __import__("dagnet.spec").spec.graph_from_spec(v)),
    ("onnx.load", lambda v: __import__("dagnet.onnx").onnx.load(v)),
    ("summary_table", lambda v: __import__("dagnet.summary").summary.summary_table(v)),
    # what main added since: saving and loading, Model.predict, augmentation, callbacks
    ("Solver.augment", lambda v: solver(augment=v)),
    ("Solver.callbacks", lambda v: solver(callbacks=v)),
    ("Augment.from_dict", lambda v: __import__("dagnet.data.augment").data.augment.Augment.from_dict(v)),
    ("save.path", lambda v: in_scratch(lambda: dagnet.save(v, plan("eval")))),
    ("save.normalization", lambda v: dagnet.save(saved_folder("n"), plan("eval"), normalization=v)),
    ("save.class_names", lambda v: dagnet.save(saved_folder("c"), plan("eval"), class_names=v)),
    ("load", lambda v: dagnet.load(v)),
    ("Model.predict.x", lambda v: model().predict(v)),
    ("Model.predict.batch_size", lambda v: model().predict(X(), batch_size=v)),
]


def in_scratch(call):
    """call() in a fresh working folder: a relative path drawn (e.g. 'train') lands there."""
    import contextlib

    with contextlib.chdir(saved_folder("cwd")):
        return call()


def saved_folder(name: str) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=f"dagnet-props-{name}-")


_MODELS = []


def model():
    if not _MODELS:
        _MODELS.append(dagnet.load(dagnet.save(saved_folder("m"), plan("eval"))))
    return _MODELS[0]


def bounded_call(call, value) -> str:
    """'ok' or 'error' (a DagnetError); anything else propagates and fails the test."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            call(value)
        outcome = "ok"
    except DagnetError as e:
        assert str(e) and "\n" not in str(e).strip() and len(str(e)) <= 1000, repr(str(e))[:300]
        outcome = "error"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    seconds = time.perf_counter() - start
    assert seconds < MAX_SECONDS, f"{seconds:.1f} s"
    assert peak < MAX_BYTES, f"{peak / 2 ** 20:.0f} MiB"
    return outcome


@pytest.fixture(scope="module", autouse=True)
def report():
    try:  # imported once here, not timed inside a call
        import onnx  # noqa: F401
    except ImportError:
        pass
    yield
    print(f"\nAPI arguments: {sum(COUNTS.values())} calls: " +
          ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.sampled_from(CALLS), JUNK)
def test_any_argument_gives_a_result_or_a_dagnet_error(named_call, value):
    name, call = named_call
    COUNTS[bounded_call(call, value)] += 1


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_every_call_is_reachable(name, call):
    """Each entry really calls its function: a valid value works (or a clean error for the
    entries that take the whole object, e.g. a feeds dict)."""
    value = {"predict.x": X(), "predict.batch_size": 2, "peak_bytes": 2, "Graph.node": "fc1",
             "compile.graph": tiny_mlp(), "Solver.batch_size": 4, "load_checkpoint": "nope.npz",
             "numerical_gradient.h": 1e-5, "graph_from_spec": "name: t\ninput: {shape: [4]}\nlayers: [{type: relu}]"
             }.get(name)
    if value is not None:
        assert bounded_call(call, value) in ("ok", "error")
