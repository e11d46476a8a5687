"""Each rank's rows of a global batch: disjoint, covering, weighted by their share."""
import pytest

from dagnet.dist.sharding import FILLER_ROWS, counts, shard


@pytest.mark.parametrize("total", [1, 2, 3, 7, 64, 65])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shards_partition_the_batch(total, size):
    parts = [shard(total, r, size) for r in range(size)]
    real = [p for p in parts if not p.filler]
    rows = [i for p in real for i in range(p.lo, p.hi)]
    assert rows == list(range(total))  # disjoint, in order, every row once
    assert sum(p.weight for p in parts) == pytest.approx(1.0)
    assert max(p.hi - p.lo for p in real) - min(p.hi - p.lo for p in real) <= 1
    assert counts(total, size) == [p.hi - p.lo if not p.filler else 0 for p in parts]


def test_ranks_without_rows_run_weightless_filler():
    parts = [shard(3, r, 8) for r in range(8)]
    assert [p.filler for p in parts] == [False] * 3 + [True] * 5
    filler = parts[-1]
    assert filler.weight == 0.0 and (filler.lo, filler.hi) == (0, FILLER_ROWS)
    assert shard(1, 1, 2).hi == 1  # never more filler rows than the batch has
    assert counts(3, 8) == [1, 1, 1, 0, 0, 0, 0, 0]
