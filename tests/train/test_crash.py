"""kill -9 while a checkpoint is being written never leaves an unloadable file."""
import os
import signal
import subprocess
import sys
import time

import numpy as np

from dagnet.train.checkpoint import load_checkpoint

WRITER = r"""
import sys, numpy as np
from dagnet.train.checkpoint import save_checkpoint
path = sys.argv[1]
i = 0
while True:
    i += 1
    big = np.full((512, 1024), i, dtype=np.float32)   # 2 MB: the write takes a while
    save_checkpoint(path, params={"w": big, "b": np.full(3, i, np.float32)}, state={},
                    optimizer={}, solver={"i": i}, spec={"name": "crash"})
    print(i, flush=True)
"""


def test_sigkill_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    rng = np.random.default_rng(0)
    for trial in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip()  # at least one save finished
        time.sleep(float(rng.uniform(0.0, 0.3)))  # then kill it somewhere inside a later save
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ck = load_checkpoint(path)
        i = ck.solver["i"]
        assert np.all(ck.params["w"] == i) and np.all(ck.params["b"] == i)
        leftovers = [p for p in os.listdir(tmp_path) if p != "ck.npz"]
        # a killed save may leave its temp file behind, never a half-written checkpoint
        assert all(".tmp" in p or p.startswith(".") for p in leftovers), leftovers
