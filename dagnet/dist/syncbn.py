"""Synchronised batchnorm: every rank normalises with the statistics of the global batch.

By default (as in PyTorch DDP) each rank's batchnorm uses the statistics of its own shard,
which changes the model's numbers with the number of ranks. With --sync-bn the ranks exchange
per-channel (count, mean, biased variance) in forward and the per-channel sums of the gradient
in backward (ops/norm.py calls `statistics` and `sums` inside synchronised_statistics).

Deterministic: the ranks allgather their parts and every rank combines them in rank order in
float64 (Chan et al.'s pairwise update for the variance), so all ranks compute bitwise the same
statistics, and a run is reproducible for a fixed number of ranks. The messages are tiny (3C
and 2C numbers), so allgather costs no more than an allreduce would.
"""
from __future__ import annotations

import numpy as np


class StatisticsSync:
    """The reducer ops/norm.py calls for synchronised batchnorm; `filler` marks a rank that
    runs filler rows (see sharding.Shard): it contributes a count of 0."""

    def __init__(self, comm):
        self.comm = comm
        self.filler = False
        self.calls = 0  # collectives made, for the tests and the benchmark

    def statistics(self, mean, var, count: int):
        """The global batch's (mean, biased var) of mean.dtype, and its count."""
        n = 0 if self.filler else count
        c = len(mean)
        mine = np.empty(2 * c + 1)
        mine[0], mine[1:c + 1], mine[c + 1:] = n, mean, var
        parts = self.comm.allgather(mine, "synchronising batchnorm statistics")
        self.calls += 1
        total, m, v = 0.0, np.zeros(c), np.zeros(c)
        for row in parts:  # Chan's parallel update, in rank order
            nb, mb, vb = row[0], row[1:c + 1], row[c + 1:]
            if nb == 0:
                continue
            both = total + nb
            delta = mb - m
            m = m + delta * (nb / both)
            v = (v * total + vb * nb + delta * delta * (total * nb / both)) / both
            total = both
        return m.astype(mean.dtype), v.astype(var.dtype), int(total)

    def sums(self, dbeta, dgamma):
        """The global batch's per-channel sums of the gradient and of gradient * xhat."""
        c = len(dbeta)
        mine = np.concatenate([dbeta, dgamma]).astype(np.float64)
        parts = self.comm.allgather(mine, "synchronising batchnorm gradients")
        self.calls += 1
        total = np.zeros(2 * c)
        for row in parts:  # rank order: the same bits on every rank
            total += row
        return total[:c].astype(dbeta.dtype), total[c:].astype(dgamma.dtype)
