"""The chunked inference program (dagnet/runtime/chunks.py): a large batch's convs run as
chunks of samples, one program per thread, the fully connected tail on the whole batch; the
values bitwise those of the whole program, for odd batch sizes and 1 or 2 threads; programs
whose instructions may mix samples run whole; errors as the whole program raises them."""
import re

import numpy as np
import pytest

import dagnet
from dagnet import kernels
from dagnet.errors import DTypeError, FeedError
from dagnet.models import lenet, resnet_small
from dagnet.runtime import chunks, program
from tests.runtime.test_program import _eval_plan

MODELS = {"lenet": lenet, "resnet_small": resnet_small}


def _x(batch, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 1, 28, 28)).astype(dtype)


def _whole_and_chunked(plan, x, outputs, monkeypatch):
    """(the whole program's values, the chunked program's, the chunked program)."""
    plan.executor.programs.clear()
    monkeypatch.setattr(chunks, "ENABLED", False)
    whole = plan.forward({"x": x}, mode="eval", outputs=outputs)
    monkeypatch.setattr(chunks, "ENABLED", True)
    got = plan.forward({"x": x}, mode="eval", outputs=outputs)
    (prog,) = plan.executor.programs.values()
    return whole, got, prog


def test_chunk_spans_cover_the_batch_in_near_equal_chunks():
    for most in (1, 4, 8, 16, 32):
        for batch in (1, 2, most, most + 1, 2 * most - 1, 3 * most + 2, 256, 257):
            spans = chunks.chunk_spans(batch, most)
            assert spans[0][0] == 0 and spans[-1][1] == batch
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
            sizes = {b - a for a, b in spans}
            assert len(spans) == -(-batch // most) and max(sizes) <= most
            assert max(sizes) - min(sizes) <= 1  # two batch sizes bound at most
            if batch > most:
                assert min(sizes) >= most // 2


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunked_values_are_bitwise_the_whole_programs(name, dtype, threads, monkeypatch):
    monkeypatch.setattr(kernels, "NUM_THREADS", threads)
    monkeypatch.setattr(chunks, "CHUNK", 8)
    plan = _eval_plan(MODELS[name](), dtype)
    for batch in (9, 27, 17, 8, 40):  # odd sizes, rebinding, one at CHUNK (whole)
        whole, got, prog = _whole_and_chunked(plan, _x(batch, dtype, batch), ["scores"], monkeypatch)
        assert prog.chunked and prog.tail[-1].name == "scores"
        np.testing.assert_array_equal(got["scores"], whole["scores"])
    assert prog.parts and all(max(p.bound) <= 8 for p in prog.parts)
    assert all(p.threads == 1 for p in prog.parts)
    # and the executor's step-by-step run, within rounding (the program's own tests)
    x = _x(40, dtype, 40)
    got = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    monkeypatch.setattr(program, "ENABLED", False)
    want = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    tol = 1e-12 if dtype == "float64" else 2e-5
    assert np.abs(got - want).max() <= tol * max(1.0, np.abs(want).max())


def test_each_chunk_is_run_by_a_one_thread_program_of_its_own(monkeypatch):
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    monkeypatch.setattr(chunks, "CHUNK", 8)
    plan = _eval_plan(resnet_small(), "float32")
    seen = []
    real = program.EvalProgram.run

    def run(self, values, state, rng, batch):
        seen.append((id(self), batch, len(values["x"])))
        return real(self, values, state, rng, batch)
    monkeypatch.setattr(program.EvalProgram, "run", run)
    plan.forward({"x": _x(30, "float32")}, mode="eval", outputs=["scores"])
    (prog,) = plan.executor.programs.values()
    assert sorted(b for _, b, _ in seen) == [7, 7, 8, 8] and all(b == n for _, b, n in seen)
    assert {i for i, _, _ in seen} <= {id(p) for p in prog.parts} and not prog.bound


def test_wanted_conv_values_come_from_the_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 8)
    plan = _eval_plan(resnet_small(), "float32")
    outs = ["stem.relu", "block3.relu1", "scores"]
    whole, got, prog = _whole_and_chunked(plan, _x(21, "float32"), outs, monkeypatch)
    assert prog.chunked and len(prog.edge) == 3
    for o in outs:
        np.testing.assert_array_equal(got[o], whole[o])
    kept = got["stem.relu"].copy()
    plan.forward({"x": -_x(21, "float32")}, mode="eval", outputs=outs)
    np.testing.assert_array_equal(got["stem.relu"], kept)  # fresh arrays, not the chunks' own


def test_folded_weights_follow_params_changed_in_place(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 8)
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    plan = _eval_plan(resnet_small(), "float32")
    x = _x(20, "float32")
    first = plan.forward({"x": x}, mode="eval", outputs=["scores"])["scores"]
    plan.params["block1.conv1.w"] *= 1.5
    plan.state["block2.bn1"]["running_var"] += 0.7
    whole, got, _ = _whole_and_chunked(plan, x, ["scores"], monkeypatch)
    np.testing.assert_array_equal(got["scores"], whole["scores"])
    assert not np.allclose(got["scores"], first)


def _net_with_a_step():
    """A conv net with a step the program runs as its op's forward (flatten): the chunked
    program does not know which ops keep the samples apart, so it runs such programs whole."""
    g = dagnet.Graph("mixes")
    x = g.input("x", (1, 28, 28))
    h = g.relu(g.conv2d(x, 4, 3, pad=1, name="conv"), name="relu")
    g.flatten(g.global_avg_pool(h, name="gap"), name="flat")
    return g


def test_programs_with_other_steps_run_whole(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 8)
    plan = dagnet.compile(_net_with_a_step(), mode="eval", seed=0, dtype="float32")
    whole, got, prog = _whole_and_chunked(plan, _x(20, "float32"), ["flat"], monkeypatch)
    assert any(i.kind == "step" for i in prog.code) and not prog.chunked
    np.testing.assert_array_equal(got["flat"], whole["flat"])
    assert not prog.parts and prog.bound  # the whole program ran


def test_an_error_in_the_tail_is_the_whole_programs(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 8)
    plan = _eval_plan(lenet())
    x = _x(20, "float64")
    plan.forward({"x": x}, mode="eval", outputs=["scores"])
    plan.params["scores.w"] = plan.params["scores.w"].astype(np.float32)
    with pytest.raises(DTypeError, match="scores.*affine.*float32") as got:
        plan.forward({"x": x}, mode="eval", outputs=["scores"])
    monkeypatch.setattr(chunks, "ENABLED", False)
    with pytest.raises(DTypeError) as want:
        plan.forward({"x": x}, mode="eval", outputs=["scores"])
    assert str(got.value) == str(want.value)


def test_out_of_memory_in_a_chunk_names_the_step_and_the_whole_batch(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 8)
    monkeypatch.setattr(kernels, "NUM_THREADS", 2)
    plan = _eval_plan(resnet_small(), "float32")
    x = _x(20, "float32")
    plan.forward({"x": x}, mode="eval", outputs=["scores"])
    (prog,) = plan.executor.programs.values()
    step = prog.code[1].step

    def no_memory(self, values, state, rng, batch):
        e = MemoryError()
        e.dagnet_step = step
        raise e
    monkeypatch.setattr(program.EvalProgram, "run", no_memory)
    with pytest.raises(FeedError, match=rf"^step {step.index} '{re.escape(step.name)}' \(.*\): out of "
                       r"memory for a batch of 20 examples; use a smaller batch"):
        plan.forward({"x": x}, mode="eval", outputs=["scores"])


def test_bad_feeds_are_refused_before_any_chunk(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 8)
    plan = _eval_plan(lenet(), "float32")
    with pytest.raises(FeedError, match=r"feed 'x': expected shape \(N, 1, 28, 28\), got \(20, 28, 28\)"):
        plan.forward({"x": np.zeros((20, 28, 28), np.float32)}, mode="eval", outputs=["scores"])
    with pytest.raises(FeedError, match="feed 'x': expected floats"):
        plan.forward({"x": np.zeros((20, 1, 28, 28), np.int32)}, mode="eval", outputs=["scores"])
