"""Synchronised batchnorm: two ranks, each with half of a batch, normalise and backpropagate
exactly as one process with the whole batch (two threads stand in for the two ranks)."""
import threading

import numpy as np
import pytest

import dagnet
from dagnet.dist.syncbn import StatisticsSync
from dagnet.ops.norm import batchnorm_backward, batchnorm_forward, synchronised_statistics


class ThreadComm:
    """allgather between threads: rank = the thread's index in `ranks`."""

    def __init__(self, size):
        self.size = size
        self.ranks = {}
        self.slots = [None] * size
        self.barrier = threading.Barrier(size)

    def allgather(self, a, what):
        r = self.ranks[threading.get_ident()]
        self.slots[r] = np.array(a)
        self.barrier.wait()
        out = np.stack(self.slots)
        self.barrier.wait()
        return out


def run_ranks(size, fn):
    """fn(rank) in `size` threads sharing one ThreadComm; returns their results by rank."""
    comm = ThreadComm(size)
    sync = StatisticsSync(comm)
    results, errors = [None] * size, []

    def body(r):
        comm.ranks[threading.get_ident()] = r
        try:
            results[r] = fn(r, sync)
        except Exception as e:  # pragma: no cover - shown by the assert below
            errors.append(e)
            comm.barrier.abort()

    threads = [threading.Thread(target=body, args=(r,)) for r in range(size)]
    with synchronised_statistics(sync):  # process-wide: set once, for both "ranks"
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize("shape", [(10, 3), (6, 2, 3, 3)])
@pytest.mark.parametrize("relu", [False, True])
def test_two_halves_equal_the_whole_batch(shape, relu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3 + 1
    dout = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    state = {"running_mean": np.zeros(shape[1]), "running_var": np.ones(shape[1])}
    out, cache = batchnorm_forward(x, gamma, beta, "train", state, 1e-5, 0.9, relu=relu)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache, relu_out=out if relu else None)
    cut = [0, 4, shape[0]]  # uneven halves: 4 and 6 (or 2) rows

    def rank(r, sync):
        part = slice(cut[r], cut[r + 1])
        st = {"running_mean": np.zeros(shape[1]), "running_var": np.ones(shape[1])}
        o, c = batchnorm_forward(x[part], gamma, beta, "train", st, 1e-5, 0.9, relu=relu)
        return o, batchnorm_backward(dout[part], c, relu_out=o if relu else None), st

    (o0, g0, s0), (o1, g1, s1) = run_ranks(2, rank)
    from dagnet.ops import norm

    assert norm._sync is None  # restored for the tests that follow
    np.testing.assert_allclose(np.concatenate([o0, o1]), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([g0[0], g1[0]]), dx, rtol=1e-10, atol=1e-12)
    # the param gradients are each rank's part: the gradient allreduce sums them
    np.testing.assert_allclose(g0[1] + g1[1], dgamma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g0[2] + g1[2], dbeta, rtol=1e-10, atol=1e-12)
    for key in state:  # running statistics of the global batch, bitwise equal on both ranks
        np.testing.assert_allclose(s0[key], state[key], rtol=1e-12)
        np.testing.assert_array_equal(s0[key], s1[key])


def test_filler_ranks_count_for_nothing():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3))

    def rank(r, sync):
        sync.filler = r == 1
        mean, var, count = sync.statistics(x[:5].mean(0) if r == 0 else np.full(3, 99.0),
                                           x[:5].var(0) if r == 0 else np.full(3, 99.0),
                                           5 if r == 0 else 2)
        return mean, var, count

    (m0, v0, n0), (m1, v1, n1) = run_ranks(2, rank)
    assert n0 == n1 == 5
    np.testing.assert_allclose(m0, x[:5].mean(0), rtol=1e-13)
    np.testing.assert_array_equal(v0, v1)


def test_fused_conv_batchnorm_steps_synchronise_too():
    """A plan whose batchnorms are fused into conv steps gives the whole batch's gradients."""
    from tests.compiler import nets

    g = nets.residual()
    feeds = nets.feeds_for(g, n=6)
    whole = dagnet.compile(g, dtype="float64", seed=3)
    assert any(s.fused and "batchnorm" in s.op_name for s in whole.steps)
    whole.forward(feeds)
    want = whole.backward()
    plans = [dagnet.compile(g, dtype="float64", seed=3) for _ in range(2)]

    def rank(r, sync):
        plan = plans[r]
        part = {k: v[3 * r:3 * r + 3] for k, v in feeds.items()}
        plan.forward(part)
        return plan.backward({plan._original(plan.losses[0]): np.asarray(0.5)})

    got = run_ranks(2, rank)
    for p in want:
        np.testing.assert_allclose(got[0][p] + got[1][p], want[p], rtol=1e-9, atol=1e-12, err_msg=p)
