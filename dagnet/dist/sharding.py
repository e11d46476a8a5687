"""Which rows of a global batch each rank takes, and with what weight.

`--batch-size` is the global batch B, so hyperparameters mean the same at any number of ranks:
rank r takes the contiguous rows [lo, hi) of np.array_split's partition (the first B mod N
ranks get one row more), and its gradients are weighted by (hi - lo) / B, so that the sum over
the ranks is the gradient of the loss averaged over the whole batch, whatever the split.

A batch smaller than the number of ranks (the end of an epoch) leaves the last ranks without
rows. Those still take part in every collective: they run the step on `filler` rows with weight
0 (zero gradients, and a batchnorm statistics count of 0), so that no rank has a different
sequence of collectives - the difference would deadlock the job.
"""
from __future__ import annotations

from dataclasses import dataclass

#: rows an empty rank runs (two, so that per-rank batchnorm over features has a variance)
FILLER_ROWS = 2


@dataclass(frozen=True)
class Shard:
    """Rows [lo, hi) of a batch of `total`, the gradient weight and whether they are filler."""

    lo: int
    hi: int
    total: int
    weight: float
    filler: bool = False

    @property
    def rows(self) -> slice:
        return slice(self.lo, self.hi)


def shard(total: int, rank: int, size: int) -> Shard:
    """Rank `rank`'s part of a global batch of `total` rows split over `size` ranks."""
    if total < 1:
        raise ValueError(f"a batch needs at least one row, got {total}")
    base, extra = divmod(total, size)
    lo = rank * base + min(rank, extra)
    hi = lo + base + (rank < extra)
    if hi > lo:
        return Shard(lo, hi, total, (hi - lo) / total)
    return Shard(0, min(FILLER_ROWS, total), total, 0.0, filler=True)


def counts(total: int, size: int) -> list[int]:
    """Rows per rank of a batch of `total` (the real ones; filler is never gathered)."""
    return [0 if s.filler else s.hi - s.lo for s in (shard(total, r, size) for r in range(size))]
