"""Property: a spec, checkpoint or ONNX file, mutated with knowledge of its structure, is
imported (and then compiled, resumed or run) or refused with a DagnetError - never another
exception - within bounded time and memory.

- checkpoints: fields of a real Solver checkpoint replaced (solver state, recipe, spec nodes,
  array shapes and dtypes) and saved again with a valid checksum, so the mutation reaches the
  resume checks behind the checksum; then resumed and trained one more epoch
- ONNX: nodes, attributes, initializers and graph inputs of an exported model edited in the
  protobuf, sometimes bytes flipped after; then imported, compiled and run
- specs: YAML text with aliases, anchors, tags, odd encodings, long tokens and deep nesting

tests/reliability/test_fuzz_checkpoint.py and test_fuzz_specs.py damage bytes and structure
without knowing the format's checks; these go past them. Run with -s to see the counts."""
from __future__ import annotations

import json
import time
import tracemalloc
from collections import Counter

import dagnet  # noqa: F401 - before numpy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagnet.errors import DagnetError
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from tests.reliability.helpers import tiny_convnet, tiny_data

COUNTS = Counter()
MAX_SECONDS = 20.0
MAX_BYTES = 256 * 2 ** 20
PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                        HealthCheck.data_too_large])

JUNK = st.one_of(st.integers(-5, 10), st.sampled_from([2 ** 40, -2 ** 63, 10 ** 30]),
                 st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                 st.text(max_size=6), st.lists(st.integers(-2, 5), max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def bounded(fn) -> str:
    """'ok' or 'error' (a DagnetError) for fn(); anything else fails the test, as does more
    than MAX_SECONDS or MAX_BYTES of allocations."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            fn()
        outcome = "ok"
    except DagnetError as e:
        assert str(e) and "\n" not in str(e) and len(str(e)) <= 1000, str(e)[:300]
        outcome = "error"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - start < MAX_SECONDS
    assert peak < MAX_BYTES, f"{peak / 2 ** 20:.0f} MiB"
    return outcome


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\nfile mutations: {sum(COUNTS.values())} files: " +
          ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))


# -- checkpoints -----------------------------------------------------------------------------------

def plan():
    return dagnet.compile(tiny_convnet(dropout=0.2), seed=0)


DATA = tiny_data(16, (1, 8, 8), classes=4)


def solver(path, **kw):
    from dagnet.train.solver import Solver

    kw = {"update_rule": "adam", "batch_size": 8, "num_epochs": 2, "verbose": False, **kw}
    return Solver(plan(), DATA, checkpoint=str(path), **kw)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("props")
    solver(d / "run.npz", num_epochs=1).train()
    return d, load_checkpoint(d / "run.npz")


SOLVER_KEYS = ["epoch", "loss_history", "train_acc_history", "val_acc_history", "epoch_times",
               "best_val_acc", "best_epoch", "rng", "plan_rng", "recipe", "data", "changes",
               "run_info", "val_loss_history", "stopped_early", "update_rule", "num_epochs"]
ARRAYS = st.sampled_from([np.zeros(1, np.float32), np.zeros((4, 1, 3, 3), np.float32),
                          np.zeros((4, 1, 3, 3), np.float64), np.zeros((), np.int64),
                          np.full((4,), np.nan, np.float32), np.zeros((3, 3), np.uint8)])


@st.composite
def checkpoint_mutations(draw):
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["solver", "recipe", "array", "delete", "spec"]))
        if kind == "solver":
            edits.append((kind, draw(st.sampled_from(SOLVER_KEYS)), draw(JUNK)))
        elif kind == "recipe":
            edits.append((kind, draw(st.sampled_from(["learning_rate", "lr_schedule", "num_epochs",
                                                      "batch_size", "seed", "patience", "x"])),
                          draw(JUNK)))
        elif kind == "array":
            edits.append((kind, draw(st.sampled_from(["params", "state", "optimizer", "extra"])),
                          draw(st.integers(0, 50)), draw(ARRAYS)))
        elif kind == "delete":
            edits.append((kind, draw(st.sampled_from(["params", "optimizer", "solver", "extra"])),
                          draw(st.integers(0, 50))))
        else:
            edits.append((kind, draw(st.integers(0, 30)),
                          draw(st.sampled_from(["op", "inputs", "filters", "size", "p", "name", "shape"])),
                          draw(st.one_of(JUNK, st.sampled_from(["tanh", "relu", "conv2d", "x"])))))
    return edits


def leaves(tree, prefix=()):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from leaves(v, prefix + (k,))
        else:
            yield prefix + (k,)


def set_leaf(tree, path, value):
    for k in path[:-1]:
        tree = tree[k]
    if value is None:
        del tree[path[-1]]
    else:
        tree[path[-1]] = value


def mutate_checkpoint(ck, edits) -> dict:
    parts = json.loads(json.dumps({"solver": ck.solver, "spec": ck.spec}))
    arrays = {s: _copy(getattr(ck, s)) for s in ("params", "state", "optimizer", "extra")}
    for edit in edits:
        if edit[0] == "solver":
            parts["solver"][edit[1]] = edit[2]
        elif edit[0] == "recipe" and isinstance(parts["solver"].get("recipe"), dict):
            parts["solver"]["recipe"][edit[1]] = edit[2]
        elif edit[0] in ("array", "delete"):
            section = arrays.get(edit[1]) if edit[1] != "solver" else None
            if edit[0] == "delete" and edit[1] == "solver":
                keys = sorted(parts["solver"])
                parts["solver"].pop(keys[edit[2] % len(keys)], None)
                continue
            paths = list(leaves(section)) if section else []
            if paths:
                set_leaf(section, paths[edit[2] % len(paths)], edit[3] if edit[0] == "array" else None)
        else:
            nodes = parts["spec"].get("nodes", [])
            if nodes:
                nodes[edit[1] % len(nodes)][edit[2]] = edit[3]
    return {**parts, **arrays}


def _copy(tree):
    return {k: _copy(v) if isinstance(v, dict) else np.array(v) for k, v in tree.items()}


@PROPS
@given(checkpoint_mutations())
def test_crafted_checkpoints_resume_or_raise_dagnet_errors(run, edits):
    d, ck = run
    path = d / "crafted.npz"
    parts = mutate_checkpoint(ck, edits)

    def resume():
        save_checkpoint(path, parts["params"], parts["state"], parts["optimizer"],
                        parts["solver"], parts["spec"], parts["extra"])
        solver(path, resume=True, allow_changes=["num_epochs"]).train()
    COUNTS[f"checkpoint {bounded(resume)}"] += 1


def test_an_unmutated_checkpoint_resumes(run):
    d, ck = run
    parts = mutate_checkpoint(ck, [])
    save_checkpoint(d / "same.npz", parts["params"], parts["state"], parts["optimizer"],
                    parts["solver"], parts["spec"], parts["extra"])
    s = solver(d / "same.npz", resume=True, allow_changes=["num_epochs"])
    s.train()
    assert s.epoch == 2


# -- ONNX ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    onnx = pytest.importorskip("onnx")
    from dagnet.onnx import export

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    model = export(dagnet.compile(tiny_convnet(batchnorm=True), seed=0, mode="eval"), path)
    return onnx, model.SerializeToString()


OPS = ["Relu", "Conv", "MaxPool", "Gemm", "Add", "Flatten", "Softmax", "Tanh", "Pad", "MyOp",
       "BatchNormalization", "Reshape", "Concat", "Identity"]


@st.composite
def onnx_mutations(draw):
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["op", "drop", "input", "output", "attr", "dims", "dtype",
                                     "raw", "graph_input", "external", "flip"]))
        edits.append((kind, draw(st.integers(0, 40)), draw(st.integers(0, 40)),
                      draw(st.sampled_from(OPS)), draw(st.integers(-3, 2 ** 31))))
    return edits


def mutate_onnx(onnx, data: bytes, edits) -> bytes:
    model = onnx.ModelProto()
    model.ParseFromString(data)
    g = model.graph
    flips = []
    for kind, i, j, op, n in edits:
        nodes, inits = g.node, g.initializer
        if kind == "op" and nodes:
            nodes[i % len(nodes)].op_type = op
        elif kind == "drop" and nodes:
            del nodes[i % len(nodes)]
        elif kind == "input" and nodes and nodes[i % len(nodes)].input:
            node = nodes[i % len(nodes)]
            node.input[j % len(node.input)] = nodes[j % len(nodes)].output[0] if j % 2 else "ghost"
        elif kind == "output" and len(nodes) > 1:
            nodes[i % len(nodes)].output[0] = nodes[j % len(nodes)].output[0]
        elif kind == "attr" and nodes and nodes[i % len(nodes)].attribute:
            attr = nodes[i % len(nodes)].attribute[j % len(nodes[i % len(nodes)].attribute)]
            if attr.ints:
                attr.ints[0] = n
            else:
                attr.i, attr.f = n, float(n)
        elif kind == "dims" and inits:
            t = inits[i % len(inits)]
            if t.dims:
                t.dims[j % len(t.dims)] = n % 2 ** 40
        elif kind == "dtype" and inits:
            inits[i % len(inits)].data_type = j % 17
        elif kind == "raw" and inits:
            t = inits[i % len(inits)]
            t.raw_data = t.raw_data[: len(t.raw_data) * (j % 4) // 4]
        elif kind == "graph_input" and g.input:
            dims = g.input[0].type.tensor_type.shape.dim
            if dims:
                d = dims[j % len(dims)]
                if n % 3 == 0:
                    d.dim_param = "S"
                else:
                    d.dim_value = n % 5 - 1
        elif kind == "external" and inits:
            t = inits[i % len(inits)]
            t.data_location = onnx.TensorProto.EXTERNAL
            e = t.external_data.add()
            e.key, e.value = "location", ["../x.bin", "/etc/passwd", "w.bin", ""][j % 4]
        elif kind == "flip":
            flips.append((i, n))
    out = bytearray(model.SerializeToString())
    for i, n in flips:
        out[(i * 7919) % len(out)] ^= (n % 255) + 1
    return bytes(out)


@PROPS
@given(onnx_mutations())
def test_mutated_onnx_models_import_and_run_or_raise_dagnet_errors(onnx_model, tmp_path_factory, edits):
    onnx, data = onnx_model
    path = tmp_path_factory.getbasetemp() / "mutated.onnx"
    path.write_bytes(mutate_onnx(onnx, data, edits))

    def import_and_run():
        from dagnet.compiler.feeds import random_feeds
        from dagnet.onnx import load

        m = load(path)
        p = dagnet.compile(m.graph, params=m.params, state=m.state, mode="eval")
        p.forward(random_feeds(p, batch=2, seed=0), mode="eval")
    COUNTS[f"onnx {bounded(import_and_run)}"] += 1


# -- spec text -------------------------------------------------------------------------------------

BASE = """name: t
input: {shape: [1, 8, 8]}
layers:
  - {type: conv, num_filters: 2, filter_size: 3, pad: 1}
  - {type: relu}
  - {type: pool, size: 2}
  - {type: fc, hidden: 3}
"""
PIECES = st.sampled_from([
    "&a ", "*a", "&b [1, 2]", "*b", "!!python/object:os.system ", "!!binary ", "!!str ",
    "\ufeff", "\x00", "\udcff", "\xe9", "[" * 40, "]" * 40, "{" * 30, "x" * 5000, "\t", "---\n",
    "...\n", "? ", ": ", "- ", "<<: *a\n", "%YAML 1.1\n", "#", "'", '"', "\\u0000", "1e400",
    "0x1F", "-.inf", ".nan", "~", "2 ** 40", "*" * 3,
])


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(BASE)), PIECES), min_size=1, max_size=4),
       st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-8-sig"]))
def test_spec_text_with_aliases_tags_and_encodings_builds_or_raises(tmp_path_factory, edits, encoding):
    text = BASE
    for pos, piece in edits:
        text = text[:pos] + piece + text[pos:]
    path = tmp_path_factory.getbasetemp() / "mutated.yaml"
    path.write_bytes(text.encode(encoding, errors="surrogateescape" if encoding == "utf-8" else "replace"))

    def build():
        from dagnet.spec import graph_from_spec

        dagnet.compile(graph_from_spec(str(path)))
    COUNTS[f"spec {bounded(build)}"] += 1
