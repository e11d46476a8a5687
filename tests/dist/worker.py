"""A data-parallel training run for the tests, under mpiexec or alone (the reference):

    mpiexec -n 2 python -m tests.dist.worker MODEL SYNC OUT     # MODEL: convbn or fc
    python -m tests.dist.worker MODEL SYNC OUT                  # one process, no MPI
    mpiexec -n 2 python -m tests.dist.worker diverge - OUT      # rank 1's params drift
    mpiexec -n 2 python -m tests.dist.worker MODEL SYNC OUT mpi  # buckets summed by MPI, or
                                                                # shm (default: the machine's)
                                                                # or nap: shm, every wait
                                                                # sleeping on the futex

Trains 100 steps (4 epochs of 25 global batches of 32) in float64 with the Solver, momentum
SGD and weight decay; writes the params after the last epoch and the validation losses to
OUT.rank{r}.npz, with "transport": how the buckets were summed ("shm" or "mpi"), and "naps":
with nap, the times this rank slept on the shared-memory futex.
"""
import sys

import dagnet
import numpy as np

from dagnet import Graph
from dagnet.dist.launch import launcher_size
from dagnet.train.solver import Solver

STEPS_PER_EPOCH, EPOCHS, BATCH = 25, 4, 32


def graph(name: str) -> Graph:
    g = Graph(name)
    x = g.input("x", (1, 16, 16))
    y = g.input("y", (), dtype="int64")
    if name == "convbn":  # fused conv+batchnorm+relu+pool and affine+batchnorm+relu steps
        h = g.conv2d(x, 4, 3, pad=1, name="conv1")
        h = g.max_pool2d(g.relu(g.batchnorm(h, name="bn1"), name="relu1"), 2, name="pool1")
        h = g.relu(g.batchnorm(g.affine(h, 16, name="fc1"), name="bn2"), name="relu2")
    else:  # "fc": no batchnorm (and no dropout), so exact without --sync-bn
        h = g.relu(g.affine(x, 32, name="fc1"), name="relu1")
    g.softmax_cross_entropy(g.affine(h, 5, name="fc2"), y)
    return g


def data() -> dict:
    rng = np.random.default_rng(7)
    n = STEPS_PER_EPOCH * BATCH
    X = rng.standard_normal((n, 1, 16, 16))
    y = rng.integers(0, 5, n)
    X[np.arange(n), 0, y * 3, 2] += 3.0  # something to learn
    return {"X_train": X, "y_train": y, "X_val": X[:40], "y_val": y[:40]}


def main(name: str, sync: bool, out: str, transport: str | None = None) -> int:
    plan = dagnet.compile(graph("convbn" if name == "diverge" else name), dtype="float64",
                          seed=0, bucket_mb=0.05)
    model, rank, used, naps = plan, 0, "none", [0]
    if launcher_size() is not None:
        from dagnet.dist import Comm, DataParallel
        from dagnet.dist.shm import SharedBuckets

        comm = Comm(timeout=30)
        rank = comm.rank
        shared = None if transport is None else transport in ("shm", "nap")
        if transport == "nap":  # as if other jobs held the core a whole second every step:
            from dagnet.dist import futex  # every wait sleeps after 0.1 ms

            count = iter(range(1 << 62))
            futex.run_delay = lambda: float(next(count))
            sleep = futex.Word.wait

            def wait(self, *args):
                naps[0] += 1
                sleep(self, *args)
            futex.Word.wait = wait
        model = DataParallel(plan, comm, sync_bn=sync, check_every=10, shared_memory=shared)
        used = "shm" if isinstance(model.buckets, SharedBuckets) else "mpi"
        if name == "diverge" and rank == 1:
            plan.params["fc1.w"][0, 0] += 1e-12
    final = {}
    solver = Solver(model, data(), update_rule="sgd_momentum",
                    optim_config={"learning_rate": 0.05}, batch_size=BATCH, num_epochs=EPOCHS,
                    weight_decay=1e-3, num_train_samples=100, verbose=False, seed=3,
                    on_epoch=lambda s: final.update({k: v.copy() for k, v in plan.params.items()}))
    try:
        solver.train()
    except dagnet.DagnetError as e:
        print(f"rank {rank}: {type(e).__name__}: {e}", flush=True)
        return 2
    final["val_loss_history"] = np.array(solver.val_loss_history)  # must agree across ranks
    final["transport"] = np.array(used)
    if transport == "nap":
        final["naps"] = np.array(naps[0])
    np.savez(f"{out}.rank{rank}.npz", **final)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] == "sync", sys.argv[3], *sys.argv[4:5]))
