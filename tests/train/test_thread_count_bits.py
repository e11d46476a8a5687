"""Training gives the same params bit for bit on 1 thread and on 2: dagnet's kernels split their
work by the shapes, never by the thread count, and the products they hand OpenBLAS run on one
OpenBLAS thread each (blocks.py) - so the README's promise (LeNet's epoch on 1 core and on 2
ends with the same params) holds. Each count in a process of its own: DAGNET_NUM_THREADS is
read once, at import."""
import os
import subprocess
import sys

import pytest

STEPS = """
import hashlib, sys
import dagnet
import numpy as np
from dagnet import models
from dagnet.train.optim import sgd_momentum

name, shape = sys.argv[1], tuple(map(int, sys.argv[2:]))
plan = dagnet.compile(getattr(models, name)(), seed=0)
rng = np.random.default_rng(0)
configs = {p: {"learning_rate": 1e-2} for p in plan.params}
for _ in range(3):
    x = rng.standard_normal((64,) + shape).astype(np.float32)
    _, grads = plan.loss_and_grads(x, rng.integers(0, 10, 64))
    for p, w in plan.params.items():
        sgd_momentum(w, grads[p], configs[p])
digest = hashlib.sha256()
for p in sorted(plan.params):
    digest.update(plan.params[p].tobytes())
print(digest.hexdigest())
"""


def params_digest(threads: int, model: str, shape) -> str:
    env = {**os.environ, "DAGNET_NUM_THREADS": str(threads)}
    r = subprocess.run([sys.executable, "-c", STEPS, model, *map(str, shape)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()[-1]


@pytest.mark.parametrize("model, shape", [
    ("lenet", (1, 28, 28)), ("lenet_bn", (1, 28, 28)), ("three_layer_convnet", (3, 32, 32)),
    ("convnet_deep", (1, 28, 28)), ("resnet_small", (1, 28, 28)), ("resnet20", (3, 32, 32))])
def test_three_steps_give_the_same_params_on_one_thread_and_on_two(model, shape):
    assert params_digest(1, model, shape) == params_digest(2, model, shape)
