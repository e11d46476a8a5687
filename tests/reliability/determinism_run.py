"""One seeded training run, printed as JSON: the loss history (float.hex) and a SHA-256 of
every param, state and optimizer array, per dtype. Run by test_determinism.py in subprocesses
with different DAGNET_NUM_THREADS (the kernels read it at import)."""
import hashlib
import json

import numpy as np

import dagnet
from dagnet import kernels
from dagnet.train import optim
from dagnet.train.solver import Solver
from tests.reliability.helpers import tiny_convnet, tiny_data


def digest(tree) -> str:
    h = hashlib.sha256()
    for key in sorted(tree):
        v = tree[key]
        if isinstance(v, dict):
            h.update(key.encode() + digest(v).encode())
        else:
            h.update(key.encode() + str(v.dtype).encode() + np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def run(dtype):
    data = tiny_data(96, (2, 12, 12), classes=4, seed=7, dtype=dtype)
    plan = dagnet.compile(tiny_convnet(c=2, hw=12, dropout=0.2), seed=3, dtype=dtype)
    s = Solver(plan, data, update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=32,
               num_epochs=3, verbose=False, seed=11, lr_decay=0.9)
    s.train()
    return {"loss_history": [float(v).hex() for v in s.loss_history],
            "params": digest(plan.params), "state": digest(plan.state),
            "optimizer": digest(optim.state_to_arrays(s.optim_configs)),
            "best_params": digest(s.best_params)}


if __name__ == "__main__":
    print(json.dumps({"threads": kernels.NUM_THREADS, "cython": kernels.HAVE_CYTHON,
                      "float32": run(np.float32), "float64": run(np.float64)}))
