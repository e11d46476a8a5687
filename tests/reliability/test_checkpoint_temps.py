"""A save killed mid-write leaves its temp file; the next save removes such leftovers once they
are old enough that no save can still be writing them (so crashes do not pile up garbage)."""
import os
import time

import numpy as np

from dagnet import files
from dagnet.train.checkpoint import load_checkpoint, save_checkpoint


def save(path, i):
    save_checkpoint(path, params={"w": np.full(3, i, np.float32)}, state={}, optimizer={},
                    solver={"i": i}, spec={})


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path):
    path = tmp_path / "run.npz"
    save(path, 1)
    stale = tmp_path / ".run.npz.abcd1234.tmp"
    fresh = tmp_path / ".run.npz.efgh5678.tmp"
    other = tmp_path / ".other.npz.abcd1234.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"half a checkpoint")
    old = time.time() - files.STALE_TEMP_AGE - 5
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save(path, 2)
    assert not stale.exists()  # a leftover of this checkpoint's killed save
    assert fresh.exists()  # young: a save could still be writing it
    assert other.exists()  # another checkpoint's business
    assert load_checkpoint(path).solver == {"i": 2}
