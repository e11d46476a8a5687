"""Data-parallel training on MPI (the `dist` extra: pip install -e '.[dist]').

    plan = dagnet.compile(graph, bucket_mb=4)      # the compiler plans the gradient allreduce
    model = DataParallel(plan, Comm())             # run under mpiexec -n N / srun
    Solver(model, data, batch_size=256, ...)       # 256 is the global batch

comm: MPI with bounded waits. sharding: each rank's rows of a global batch. buckets: the
planned allreduce at run time (by MPI); shm: the same sums in shared memory on one machine.
syncbn: global batchnorm statistics. parallel: DataParallel. launch: starting N ranks
(`dagnet train --ranks N`). See docs/distributed.md.
"""
from dagnet.dist.comm import Comm
from dagnet.dist.parallel import DataParallel

__all__ = ["Comm", "DataParallel"]
