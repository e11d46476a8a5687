"""The runtime hands ops views of the memory plan's buffers (`out=`): values the plan proved
dead share memory, nothing a caller or backward still needs is overwritten."""
import numpy as np
import pytest

import dagnet
from dagnet.interpreter import interpret
from dagnet.ops.fused import ConvReLUPool
from dagnet.runtime import program
from tests.compiler import nets


def _compile(name, **kw):
    g = nets.ALL[name]()
    return g, dagnet.compile(g, dtype="float64", seed=0, **kw)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_values_live_in_the_planned_buffers(mode, monkeypatch):
    # the executor's step-by-step path (an eval plan otherwise runs as an EvalProgram, whose
    # own arena tests/runtime/test_program.py checks)
    monkeypatch.setattr(program, "ENABLED", False)
    g, plan = _compile("residual", fuse=False, mode=mode)
    feeds = nets.feeds_for(g, n=5)
    plan.forward(feeds, mode=mode)
    arena = plan.executor.buffers
    assert plan.executor.batch == 5 and set(arena) == set(plan.buffer_bytes)
    assert sum(a.nbytes for a in arena.values()) == 5 * sum(plan.buffer_bytes.values())
    # values and workspaces (im2col columns) in fewer bytes than each in its own array
    no_reuse = plan.peak_bytes(5, reuse=False, workspace=True)
    assert sum(a.nbytes for a in arena.values()) < no_reuse
    in_shapes = {s.name: [plan.graph.node(v).meta["shape"] for v in s.inputs] for s in plan.steps}
    ws = [s for s in plan.steps if s.op.workspace(in_shapes[s.name], s.shape, s.attrs).planned]
    assert ws and all(s.workspace_buffer in arena for s in ws)
    shared = {}
    for s in plan.steps:
        if s.buffer >= 0 and s.op.supports_out and s.name not in plan.output_values:
            shared.setdefault(s.buffer, []).append(s.name)
    assert any(len(v) > 1 for v in shared.values()), "the plan reuses no buffer: a weak test"


@pytest.mark.parametrize("name", sorted(nets.ALL))
@pytest.mark.parametrize("fuse", [True, False])
def test_train_steps_over_planned_buffers_equal_fresh_arrays(name, fuse):
    """Three steps in a row (the buffers are reused across calls) with a smaller batch in
    between (the front of each buffer): loss and every gradient as the interpreter's."""
    g, plan = _compile(name, fuse=fuse)
    for n, seed in ((6, 0), (3, 1), (6, 2)):
        feeds = nets.feeds_for(g, n=n, seed=seed)
        ref = dagnet.compile(g, dtype="float64", seed=0, fuse=False, inplace=False,
                             params={k: v.copy() for k, v in plan.params.items()})
        ref.use_planned_buffers = False  # every value in a fresh array
        ref.rng.bit_generator.state = plan.rng.bit_generator.state  # the same dropout masks
        loss, grads = plan.loss_and_grads(feeds)
        want_loss, want = ref.loss_and_grads(feeds)
        assert loss == pytest.approx(want_loss, rel=1e-12)
        for k in grads:
            np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-12)
    assert plan.executor.batch == 6


def test_requested_intermediates_are_never_overwritten():
    """An eval plan reuses conv1's buffer for later values; asking for conv1 by name gives its
    own array with conv1's numbers (not what later steps wrote over it), also when relu1 would
    have run in place over it."""
    g, plan = _compile("lenet_tiny", fuse=False, mode="eval")
    assert any(s.inplace for s in plan.steps if s.name == "relu1")
    feeds = nets.feeds_for(g, n=4)
    got = plan.forward(feeds, outputs=["conv1", "relu1", "pool2", "fc2"])
    values, _ = interpret(g, feeds, plan.params, plan.state, mode="eval")
    for k, v in got.items():
        np.testing.assert_allclose(v, values[k], rtol=1e-12, atol=1e-12)
        assert not any(np.shares_memory(v, a) for a in plan.executor.buffers.values())


def test_returned_outputs_survive_the_next_call():
    g, plan = _compile("three_layer_convnet", mode="eval")
    first = plan.forward(nets.feeds_for(g, n=4, seed=0))
    kept = {k: v.copy() for k, v in first.items()}
    plan.forward(nets.feeds_for(g, n=4, seed=1))
    for k in first:
        np.testing.assert_array_equal(first[k], kept[k])


def test_a_larger_batch_grows_the_buffers():
    g, plan = _compile("two_layer")
    plan.loss_and_grads(nets.feeds_for(g, n=2))
    small = {b: a.nbytes for b, a in plan.executor.buffers.items()}
    plan.loss_and_grads(nets.feeds_for(g, n=8))
    assert plan.executor.batch == 8
    assert all(plan.executor.buffers[b].nbytes == 4 * small[b] for b in small)


def test_conv_columns_are_built_in_the_planned_workspace():
    """im2col writes into the step's workspace buffer (no fresh allocation, and no page faults
    for a large one, every step), and backward still finds them there."""
    g, plan = _compile("residual", fuse=False)
    feeds = nets.feeds_for(g, n=4)
    plan.loss_and_grads(feeds)
    convs = [s for s in plan.steps if s.op_name == "conv2d"]
    assert convs
    for s in convs:
        cols = plan.executor.caches[s.name][0]
        assert np.shares_memory(cols, plan.executor.buffers[s.workspace_buffer]), s.name
    # the workspace of each conv is not shared with any value alive during its backward: the
    # gradients equal fresh-array ones (checked for every net in the test above); and two
    # convs' columns, both kept for backward, never share a buffer
    kept = [s.workspace_buffer for s in convs]
    assert len(set(kept)) == len(kept)


def test_eval_on_a_train_plan_leaves_its_buffers_alone():
    """A solver checks accuracy in eval mode, at a larger batch, on the plan it trains: that
    must not grow the train-sized buffers (nor use them)."""
    g, plan = _compile("lenet_tiny")
    plan.loss_and_grads(nets.feeds_for(g, n=4))
    before = {b: a.copy() for b, a in plan.executor.buffers.items()}
    plan.forward(nets.feeds_for(g, n=16), mode="eval")
    assert plan.executor.batch == 4
    for b, a in plan.executor.buffers.items():
        np.testing.assert_array_equal(a, before[b])


@pytest.mark.parametrize("rows_from", [0, 10**9], ids=["rows", "columns"])
def test_only_ops_that_take_a_workspace_get_a_buffer_and_of_the_size_they_use(rows_from,
                                                                                monkeypatch):
    """A fused conv + relu + pool builds just its conv's columns (or its patch rows) in its
    planned buffer (the pooling indices and the inner values it allocates itself); a max-pool
    gets none."""
    monkeypatch.setattr(ConvReLUPool, "ROWS_FROM", rows_from)
    g, plan = _compile("lenet_tiny", fuse=True)
    plan.loss_and_grads(nets.feeds_for(g, n=4))
    for s in plan.steps:
        in_shapes = [plan.graph.node(v).meta["shape"] for v in s.inputs]
        if s.op.workspace(in_shapes, s.shape, s.attrs).planned:
            kernel, cache = plan.executor.caches[s.name]
            # the patch rows, or the conv member's cache, columns first
            cols = cache[0] if kernel == "rows" else cache[0][0]
            assert plan.buffer_bytes[s.workspace_buffer] * 4 >= cols.nbytes
            assert plan.buffer_bytes[s.workspace_buffer] * 4 == cols.nbytes or \
                any(t.buffer == s.workspace_buffer for t in plan.steps)  # shared with a value
        else:
            assert s.workspace_buffer == -1
    g, plan = _compile("lenet_tiny", fuse=False)
    assert next(s for s in plan.steps if s.op_name == "max_pool2d").workspace_buffer == -1
