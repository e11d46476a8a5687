"""benchmarks/alternate.py: contenders in their own processes answer window requests in rotated
rounds; a child that fails to set up is reported, not raised. No times asserted: the children
report fixed 'seconds'."""
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import alternate  # noqa: E402

CHILD = f"""
import json, sys
sys.path.insert(0, {str(BENCH)!r})
import alternate
seconds = float(sys.argv[1])
if seconds < 0:
    raise SystemExit("cannot set up: " + sys.argv[1])
asked = []
print("chatter a library printed")  # not JSON: skipped by the parent
alternate.serve({{"seconds": seconds}}, lambda samples: asked.append(samples) or {{"s": seconds * len(asked)}},
                lambda: {{"asked": asked}})
"""


@pytest.fixture
def child(tmp_path):
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return str(path)


def test_rounds_alternate_and_ratios_are_per_round(child):
    fast, slow = alternate.start(child, [1.0]), alternate.start(child, [3.0])
    assert fast.hello == {"seconds": 1.0} and slow.hello == {"seconds": 3.0}
    secs = alternate.alternate({"fast": fast, "slow": slow}, rounds=3, samples=5)
    # each child's n-th window reports n x its seconds: a drift both contenders share
    assert secs == {"fast": [1.0, 2.0, 3.0], "slow": [3.0, 6.0, 9.0]}
    assert alternate.round_ratios(secs["fast"], secs["slow"]) == pytest.approx([3.0, 3.0, 3.0])
    assert fast.close() == {"asked": [5, 5, 5]} and slow.close() == {"asked": [5, 5, 5]}


def test_a_child_that_fails_to_set_up_is_an_error_entry(child):
    got = alternate.start(child, [-1])
    assert set(got) == {"error"} and "cannot set up: -1" in got["error"]


SPINNER = f"""
import sys, threading, time
sys.path.insert(0, {str(BENCH)!r})
import alternate
spans = []

def spin():  # threads that go on spinning after the answer, as onnxruntime's do
    start = time.monotonic()
    end = time.thread_time() + 0.08
    while time.thread_time() < end:
        pass
    spans.append((start, time.monotonic()))

def window(samples):
    threading.Thread(target=spin).start()
    return {{"s": 1.0}}

alternate.serve({{}}, window, lambda: {{"spans": spans}})
"""

WATCHER = f"""
import sys, time
sys.path.insert(0, {str(BENCH)!r})
import alternate
asked = []
alternate.serve({{}}, lambda samples: asked.append(time.monotonic()) or {{"s": 1.0}}, lambda: {{"asked": asked}})
"""


def test_each_window_waits_until_the_child_before_has_stopped_spinning(tmp_path):
    (tmp_path / "spinner.py").write_text(SPINNER)
    (tmp_path / "watcher.py").write_text(WATCHER)
    spinner = alternate.start(str(tmp_path / "spinner.py"), [])
    watcher = alternate.start(str(tmp_path / "watcher.py"), [])
    tails = {}
    alternate.alternate({"spinner": spinner, "watcher": watcher}, rounds=3, tails=tails, samples=1)
    spans, asked = spinner.close()["spans"], watcher.close()["asked"]
    # events, not amounts (a loaded machine stretches CPU ticks): no window of the watcher began
    # while a spinner thread was spinning (time.monotonic is one clock for both processes)
    assert len(spans) == 3 and len(asked) == 3
    assert not [(q, s) for q in asked for s in spans if s[0] < q < s[1]]
    assert len(tails["spinner"]) == 3 and max(tails["watcher"]) < 50
