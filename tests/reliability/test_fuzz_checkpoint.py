"""Random corruption of a real Solver checkpoint (several flipped bytes, cuts, insertions,
overwritten runs, foreign bytes) is detected: load_checkpoint raises CheckpointError or, when
the damage hit bytes that carry no data (zip timestamps, ...), returns exactly what was saved.
tests/train/test_checkpoint.py flips every single byte of a small file; this adds multi-byte
damage at random places in a checkpoint with params, batchnorm state, optimizer state and
histories."""
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagnet
from dagnet.errors import CheckpointError
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from dagnet.train.solver import Solver
from tests.reliability.helpers import tiny_convnet, tiny_data

COUNTS = Counter()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    path = d / "run.npz"
    plan = dagnet.compile(tiny_convnet(dropout=0.2), seed=0)
    Solver(plan, tiny_data(16, (1, 8, 8), classes=4), update_rule="adam", batch_size=8,
           num_epochs=2, verbose=False, checkpoint=str(path)).train()
    # the same bytes on every run (epoch times vary; npz entries carry a fixed zip timestamp)
    ck = load_checkpoint(path)
    save_checkpoint(path, ck.params, ck.state, ck.optimizer,
                    {**ck.solver, "epoch_times": [0.0] * len(ck.solver["epoch_times"])}, ck.spec,
                    ck.extra)
    yield path.read_bytes(), load_checkpoint(path), d
    print(f"\ncheckpoint corruption: {sum(COUNTS.values())} damaged files: "
          + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))


def same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


damage = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                  st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("overwrite"), st.floats(0, 1, exclude_max=True), st.binary(min_size=2, max_size=512)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("foreign"), st.binary(min_size=0, max_size=2048), st.booleans()),
)


def apply(data: bytes, d) -> bytes:
    b = bytearray(data)
    kind = d[0]
    if kind == "flip":
        for where, mask in d[1]:
            b[int(where * len(b))] ^= mask
    elif kind == "cut":
        b = b[: int(d[1] * len(b))]
    elif kind == "insert":
        i = int(d[1] * len(b))
        b = b[:i] + d[2] + b[i:]
    elif kind == "overwrite":
        i = int(d[1] * len(b))
        b[i:i + len(d[2])] = d[2]
    elif kind == "append":
        b += d[1]
    else:  # random bytes, with or without the zip magic in front
        b = bytearray((b"PK\x03\x04" if d[2] else b"") + d[1])
    return bytes(b)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(damage)
def test_random_damage_is_detected(saved, d):
    original, ck, directory = saved
    damaged = apply(original, d)
    path = directory / "damaged.npz"
    path.write_bytes(damaged)
    try:
        got = load_checkpoint(path)
    except CheckpointError as e:
        assert str(e) and "\n" not in str(e)
        COUNTS[f"{d[0]} detected"] += 1
        return
    # not detected: then nothing that matters may have changed (a zip timestamp, trailing bytes)
    for section in ("params", "state", "optimizer", "extra"):
        assert same(getattr(got, section), getattr(ck, section)), (d[0], section)
    assert got.solver == ck.solver and got.spec == ck.spec
    COUNTS[f"{d[0]} harmless" if damaged != original else f"{d[0]} no-op"] += 1
