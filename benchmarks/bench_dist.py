"""Data-parallel benchmark: prints one JSON object (needs pip install -e '.[dist]').

Images/s of a training step (float32, SGD momentum, each rank one thread) for LeNet and
resnet_small: 1 rank x 1 thread (a plain plan, no MPI) against 2 ranks x 1 thread, each rank
with the same batch of 64 (weak scaling, as Horovod reports it), in alternating windows of one
mpiexec job (the other rank sleeps during a 1-rank window): each set-up in ABBA blocks (1 rank,
it, it, 1 rank; windows of 5 LeNet or 2 resnet_small steps), so that a drift of the machine's
speed that is linear over a block cancels, the block's two 1-rank windows run by different
ranks (so on both cores: `core_speed_ratio` says how far apart the cores' speeds were), and
every window after one untimed step (a rank that slept through the window before starts
cold); each ratio is the median over the rounds of the block's
ratio, with its quartiles. The same ratios with each window's time net of the run delay (the
time a rank waited, runnable, for a core that other jobs held; /proc/thread-self/schedstat)
say what the code and lockstep cost apart from the other jobs' share of the cores. A third window
runs two independent processes (each its own plan, no communication): the machine's ceiling
for two processes (memory bandwidth, caches, other jobs), so that scaling efficiency /
ceiling is the part data parallelism itself keeps. The 2-rank step runs twice: with the
buckets summed in shared memory (dagnet's choice on one machine, dagnet/dist/shm.py) and by
MPI's Iallreduce (its choice across machines), and a third time in shared memory with the
wait always spinning (`dual_spin`: dagnet's wait sleeps on a futex when the rank was preempted
in its last step; `nap_over_spin` compares them). CPU time per step in each window says
what data parallelism costs the CPU, whatever the load. For 2 ranks:
the blocking time of the step's allreduces (communication time), the wait left after backward
on the last rank to finish it (exposed), the ranks' skew, and overlap = 1 - exposed /
communication. Exactness: 100 steps in float64 with --sync-bn,
2 ranks against one process at the same global batch. Then 2-rank allreduce times from 8 B
to 32 MiB, the alpha-beta fit and the cost model's predicted efficiency at 8, 64 and 512
ranks for the zoo models (benchmarks/dist_cost_model.py).

    python benchmarks/bench_dist.py [--quick] [--rounds N] [--models lenet]

summary: {"scaling_efficiency_2_ranks": {model: median over rounds of img/s 2 ranks /
                                                (2 x img/s 1 rank)},
          "machine_ceiling_2_procs": {model: the same for 2 independent processes},
          "max_rel_param_diff_vs_single": ...}
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

for _var in ("DAGNET_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread per rank (and for the cost model's profiles)

import dagnet  # noqa: E402  (before numpy: dagnet/procenv.py)
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ("lenet", "resnet_small")
# rounds per model: a round is five ABBA blocks (one per set-up against 1 rank), 20 windows
# (each after an untimed step): ~2 s for LeNet on a quiet machine (its windows' ratios spread
# more, so it gets more rounds: ~1.3 min), ~8 s for resnet_small (~2.5 min)
ROUNDS = {"lenet": 40, "resnet_small": 20}
# steps per window: short windows, so that each ABBA block (1 rank, 2 ranks, 2 ranks, 1 rank)
# spans ~0.3 s (LeNet) to ~1 s (resnet_small) on a quiet machine, less than this VM's drifts
STEPS = {"lenet": 5, "resnet_small": 2}


# -- the workers: fresh processes, under mpiexec or alone ---------------------------------------
def data(plan, n, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n,) + tuple(plan.input_specs["x"]["shape"])).astype(dtype)
    return X, rng.integers(0, 10, n), rng


class Phases:
    """CPU seconds (time.thread_time) a rank spends in each phase of its steps, exclusive of
    the phases nested in it (the pack runs inside the backward sweep, the sums inside the
    wait), accumulated under `self.window` (None: not recorded)."""

    def __init__(self):
        self.window = None
        self.seconds: dict = {}
        self._stack: list = []

    def wrap(self, obj, method: str, phase: str) -> None:
        f = getattr(obj, method)

        def timed(*args, **kwargs):
            self._stack.append(0.0)  # the nested phases' time
            t = time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent = time.thread_time() - t
                nested = self._stack.pop()
                if self._stack:
                    self._stack[-1] += spent
                self._add(phase, spent - nested)
        setattr(obj, method, timed)

    @contextlib.contextmanager
    def update(self):
        """A context for the optimizer's update."""
        t = time.thread_time()
        yield
        self._add("update", time.thread_time() - t)

    def _add(self, phase: str, seconds: float) -> None:
        if self.window is not None:
            at = self.seconds.setdefault(self.window, {})
            at[phase] = at.get(phase, 0.0) + seconds


def train_steps(model, plan, X, y, rng, batch, steps, after=None, phases=None) -> float:
    """Seconds for `steps` SGD-momentum steps of `model` (a plan or its DataParallel) at
    global batch `batch`; after(): called after each step's gradients, before the update;
    phases: a Phases that times the update."""
    from dagnet.train.optim import sgd_momentum

    configs = getattr(plan, "_bench_configs", None) or {p: {"learning_rate": 0.01} for p in plan.params}
    plan._bench_configs = configs
    t = time.perf_counter()
    for _ in range(steps):
        idx = rng.integers(0, len(X), batch)
        _, grads = model.loss_and_grads(X[idx], y[idx])
        if after is not None:
            after()
        with phases.update() if phases else contextlib.nullcontext():
            for p, w in plan.params.items():
                w[...], configs[p] = sgd_momentum(w, grads[p], configs[p])
    return time.perf_counter() - t


def ab(model: str, batch: int, steps: int, rounds: int) -> dict:
    """Under mpiexec -n 2: per round, for each set-up but `single` in rotating order, an ABBA
    block of windows of `steps` steps (single, it, it, single), so that each set-up's ratio
    to `single` comes from windows moments apart: `single` (one rank alone on a plan of its
    own, no MPI, the other asleep; rank 0 in the block's first such window in even rounds,
    rank 1 in odd ones, the other rank in its last), `independent` (both ranks train their own plan at `batch`, no
    communication: the machine's ceiling for two processes) and `dual` (both ranks
    data-parallel at `batch` per rank, the buckets summed in shared memory; `dual_mpi`: by
    MPI; `dual_spin`: in shared memory, the wait spinning even when the rank was preempted).
    Per window: wall seconds and this thread's CPU seconds
    (time.thread_time: what a rank spent on the CPU, whatever the other jobs took). A fourth,
    `naive`, is the control: each rank its own step on its own plan, then one blocking
    allreduce of as many bytes as the gradients (no sharding, packing or overlap): what
    lockstep and the bytes cost on this machine, with none of dagnet's machinery."""
    from dagnet.dist import Comm, DataParallel
    from dagnet.models import get_model

    comm = Comm()
    plan = dagnet.compile(get_model(model), bucket_mb=4)
    dp = DataParallel(plan, comm)  # on one machine: the buckets summed in shared memory
    dp_mpi = DataParallel(plan, comm, shared_memory=False)  # by MPI's Iallreduce
    dp_spin = DataParallel(plan, comm)  # shared memory, its wait spinning even when contended
    dp_spin.buckets.nap = False
    solo = dagnet.compile(get_model(model))
    X, y, rng = data(plan, batch * 8, np.float32)
    kinds = ("single", "independent", "dual", "dual_spin", "dual_mpi", "naive")
    # where the CPU time of a step goes, 2 ranks (shared memory) against independent steps
    phases = Phases()
    for obj, methods in ((dp.executor, ("forward", "backward")), (solo, ("forward", "backward")),
                         (dp.buckets, ("pack", "_wait_all", "_sum_chunk")),
                         (dp_spin.executor, ("forward", "backward")),
                         (dp_spin.buckets, ("pack", "_wait_all", "_sum_chunk"))):
        for m in methods:
            phases.wrap(obj, m, {"_wait_all": "wait", "_sum_chunk": "sum"}.get(m, m))
    sums = np.zeros(sum(f.size for f in dp.buckets.flat), plan.dtype)

    def window(r: int, kind: str, solo_rank: int = 0) -> tuple:
        """One window of `steps` steps of `kind`: (images/s, CPU s per step of the main
        thread, of the others, images/s net of run delay, run delay share, the core it ran
        on), over both ranks (rank `solo_rank`'s alone for `single`)."""
        comm.all_arrive(600)
        runs = kind != "single" or comm.rank == solo_rank
        # one step first, not timed: a rank that slept through the window before starts on
        # cold caches (LeNet's first step after 0.2 s asleep took 7% longer than the next),
        # which would charge whichever set-up follows a 1-rank window
        phases.window = None
        if runs:
            go(kind, 1)
        comm.all_arrive(600)
        phases.window = (r, kind) if r >= 0 and kind in ("independent", "dual", "dual_spin") \
            else None
        delay = run_delay()
        wall, c, p = time.perf_counter(), time.thread_time(), time.process_time()
        if runs:
            go(kind, steps)
        else:
            idle()  # the other rank during a 1-rank window: asleep, not polling
        wall, c = time.perf_counter() - wall, time.thread_time() - c
        p, delay = time.process_time() - p, run_delay() - delay
        if kind == "single" and runs:
            comm.all_arrive(600)  # wakes the other rank (idle)
        if phases.window is not None:
            at = phases.seconds.setdefault(phases.window, {})
            at["step"] = at.get("step", 0.0) + c
        # each rank's images/s, gathered after the window (out of its timing)
        every = comm.allgather(np.array([batch * steps / wall if runs else 0.0, c / steps,
                                         (p - c) / steps,
                                         batch * steps / max(wall - delay, 1e-9) if runs else 0.0,
                                         delay / wall, core()]), "gathering the window's rates")
        if kind == "single":
            return tuple(float(v) for v in every[solo_rank])
        return (float(every[:, 0].sum()), float(every[:, 1].mean()), float(every[:, 2].mean()),
                float(every[:, 3].sum()), float(every[:, 4].mean()))

    def go(kind: str, n: int) -> None:
        """n steps of `kind` on this rank."""
        if kind in ("dual", "dual_spin", "dual_mpi"):
            train_steps({"dual": dp, "dual_spin": dp_spin, "dual_mpi": dp_mpi}[kind], plan, X,
                        y, rng, 2 * batch, n, phases=phases)
        elif kind == "naive":
            train_steps(solo, solo, X, y, rng, batch, n,
                        after=lambda: comm.allreduce(sums, "the naive control's allreduce"))
        else:
            train_steps(solo, solo, X, y, rng, batch, n, phases=phases)

    def idle() -> None:
        """Sleep (0.2 ms naps) until rank 0 ends its window: a polling rank 1 would take CPU
        from rank 0 or the machine's other jobs (Comm.wait yields the core for 50 ms first)."""
        request = comm.ctl.Ibarrier()
        while not request.Test():
            time.sleep(2e-4)

    rates = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}
    others = {k: [] for k in kinds}  # CPU of the process's other threads (MPI's, the pools')
    paired = {k: [] for k in kinds[1:]}  # per round: the kind's ABBA ratio to `single`
    paired_net = {k: [] for k in kinds[1:]}  # the same, each window net of its run delay
    delays = {k: [] for k in kinds}  # per window: the share of it a rank waited for a core
    core_speed = []  # per block: the faster core's 1-rank images/s over the slower one's
    for r in range(-1, rounds):  # round -1 warms them up
        for kind in kinds[1:][r % (len(kinds) - 1):] + kinds[1:][:r % (len(kinds) - 1)]:
            got = {}
            # ABBA: single, kind, kind, single, the windows moments apart; the two means'
            # ratio cancels a drift of the machine's speed that is linear over the block. The
            # two 1-rank windows run on different ranks, so on both cores: this VM's two
            # cores differ in speed by up to a third for seconds at a time (which one is
            # faster changes), and a 1-rank baseline from one core only would make the ratio
            # depend on where rank 0 happened to run (docs/distributed.md)
            first = r % 2  # the rank of the block's first 1-rank window
            for at, k in enumerate(("single", kind, kind, "single")):
                got[at] = window(r, k, first if at == 0 else 1 - first)
            if r >= 0:
                single = got[0][0] + got[3][0]
                if got[0][5] != got[3][5]:  # the two 1-rank windows ran on different cores
                    fast, slow = sorted((got[0][0], got[3][0]), reverse=True)
                    core_speed.append(fast / slow)
                paired[kind].append((got[1][0] + got[2][0]) / single)
                paired_net[kind].append((got[1][3] + got[2][3]) / (got[0][3] + got[3][3]))
                for at, k in enumerate(("single", kind, kind, "single")):
                    rates[k].append(got[at][0])
                    cpu[k].append(got[at][1])
                    others[k].append(got[at][2])
                    delays[k].append(got[at][4])
    report = dp.comm_report(blocking_repeats=20)
    # the share of dp's steps whose wait slept (the rank preempted in the step before)
    report["contended_share"] = dp.buckets.contended_steps / max(1, dp.buckets.step)
    report_mpi = dp_mpi.comm_report(blocking_repeats=20)
    dp.close()
    dp_spin.close()
    dp_mpi.close()
    split = {}
    for kind in ("independent", "dual", "dual_spin"):
        # totals over the rounds per step (not medians per phase: medians of the parts do not
        # add up to the median of the whole, and the phases should add up to the step)
        names = ("forward", "backward", "pack", "sum", "wait", "update")
        total = np.array([sum(phases.seconds.get((r, kind), {}).get(k, 0.0) for r in range(rounds))
                          for k in names + ("step",)]) / (2 * rounds * steps)  # two windows a round
        total[-1] -= total[:-1].sum()  # the rest: Python around the phases
        every = comm.allgather(total, "gathering the phases")
        split[kind] = {k: round(float(v) * 1e3, 3)
                       for k, v in zip(names + ("other",), every.mean(axis=0))
                       if kind != "independent" or k not in ("pack", "sum", "wait")}
        split[kind]["step"] = round(float(every.sum(axis=1).mean()) * 1e3, 3)
    if not comm.is_root:
        return {}
    return {"rates": rates, "paired": paired, "paired_net": paired_net, "delays": delays,
            "core_speed": core_speed,
            "cpu_s_per_step": cpu,
            "other_threads_cpu_s_per_step": others, "comm": report, "comm_mpi": report_mpi,
            "cpu_phases": split}


def run_delay() -> float:
    """Seconds this thread has waited, runnable, for a core (futex.run_delay: the time other
    jobs took from it); 0.0 where the kernel does not say."""
    from dagnet.dist import futex

    return futex.run_delay() or 0.0


def core() -> int:
    """The core this thread last ran on (/proc/thread-self/stat's 39th field); -1 if unknown."""
    try:
        with open("/proc/thread-self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        return -1


def exact(model: str, batch: int, steps: int) -> dict:
    """`steps` float64 steps at global batch `batch`, with --sync-bn when under mpiexec."""
    from dagnet.dist.launch import launcher_size
    from dagnet.models import get_model

    dist = launcher_size() is not None
    plan = dagnet.compile(get_model(model), dtype="float64", bucket_mb=4 if dist else None)
    model_, root = plan, True
    if dist:
        from dagnet.dist import Comm, DataParallel

        model_ = DataParallel(plan, Comm(), sync_bn=True)
        root = model_.comm.is_root
    train_steps(model_, plan, *data(plan, 256, np.float64), batch, steps)
    if dist:
        model_.close()
    return {"params": {k: v.tolist() for k, v in plan.params.items()}} if root else {}


def sweep(sizes: int) -> dict:
    """Seconds of a 2-rank allreduce of float32 arrays of 8 B, 32 B, ... (`sizes` of them, x4
    each: 12 go to 32 MiB): the 10th percentile of the repeats, the network's own cost with
    as little of the shared machine's scheduling noise as the repeats allow."""
    from dagnet.dist import Comm

    comm = Comm()
    out = {}
    for nbytes in [8 * 4 ** k for k in range(sizes)]:
        a = np.ones(nbytes // 4, dtype=np.float32)
        times = []
        for _ in range(40 if nbytes < 1 << 20 else 15):
            comm.all_arrive(60)
            t = time.perf_counter()
            comm.allreduce(a, "timing")
            times.append(time.perf_counter() - t)
        out[nbytes] = float(np.percentile(times, 10))
    return out if comm.is_root else {}


# -- the driver ----------------------------------------------------------------------------------
def mpiexec() -> str | None:
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                        + os.environ.get("PATH", ""))


def spawn(ranks: int, *args) -> dict:
    cmd = [sys.executable, __file__, "--worker", *map(str, args)]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


def throughput(model: str, rounds: int, batch: int, steps: int) -> dict:
    """1 rank, 2 independent processes and 2 ranks in ABBA blocks of windows of one job (see
    ab); ratios: medians over the rounds of each block's ratio, rates: medians over the
    windows (`rounds_*`: every window's images/s in order, 1 rank's from every block)."""
    load = os.getloadavg()
    r = spawn(2, "ab", model, batch, steps, rounds)
    rates, c, cpu = r["rates"], r["comm"], r["cpu_s_per_step"]
    others = r["other_threads_cpu_s_per_step"]
    one, ind, two, two_mpi, naive = (float(np.median(rates[k])) for k in
                                     ("single", "independent", "dual", "dual_mpi", "naive"))
    ms = {k: round(float(np.median(v)) * 1e3, 2) for k, v in cpu.items()}

    def paired(a: str, b: str, k: float = 1.0) -> list:
        # per round: a's ABBA ratio to the 1-rank windows around it over k x b's (b = single:
        # 1); each ratio from windows moments apart, so the machine's drift cancels
        return [x / (k * (1.0 if b == "single" else z))
                for x, z in zip(r["paired"][a], r["paired"].get(b, r["paired"][a]))]

    ratios = paired("dual", "single", 2)
    return {"per_rank_batch": batch, "rounds": rounds, "steps_per_window": steps,
            "images_per_s_1_rank": round(one, 1), "images_per_s_2_independent": round(ind, 1),
            "images_per_s_2_ranks": round(two, 1),
            "images_per_s_2_ranks_mpi": round(two_mpi, 1),
            "images_per_s_2_naive_allreduce": round(naive, 1),
            # the headline: the median over the rounds of each round's 2-rank window over 2x
            # its 1-rank window (paired windows, so the machine's drift between rounds cancels)
            "scaling_efficiency": median(ratios),
            "scaling_efficiency_quartiles": [round(float(q), 3)
                                             for q in np.percentile(ratios, [25, 75])],
            "scaling_efficiency_rounds": [round(x, 3) for x in ratios],
            # per block whose two 1-rank windows ran on different cores: the faster core's
            # images/s over the slower one's. Lockstep runs at the slower core's pace, so 2 /
            # (1 + this) bounds the efficiency below the ceiling (median, quartiles, blocks)
            "core_speed_ratio": median(r["core_speed"]) if r["core_speed"] else None,
            "core_speed_ratio_quartiles": [round(float(q), 3) for q in
                                           np.percentile(r["core_speed"] or [1.0], [25, 75])],
            "core_speed_blocks": len(r["core_speed"]),
            # the same with each window's time net of the run delay (the time a rank waited,
            # runnable, for a core other jobs held): what is left is the code's own cost and
            # lockstep's (a rank idle while the other is held up stays in); on a quiet machine
            # it equals the headline
            "scaling_efficiency_net_of_run_delay": median([x / 2 for x in r["paired_net"]["dual"]]),
            "scaling_efficiency_net_quartiles": [round(float(q) / 2, 3) for q in
                                                 np.percentile(r["paired_net"]["dual"], [25, 75])],
            "machine_ceiling_net_of_run_delay": median([x / 2 for x in
                                                        r["paired_net"]["independent"]]),
            # per kind, the median share of a window a rank waited for a core: this run's load
            "run_delay_share": {k: round(float(np.median(v)), 3) for k, v in r["delays"].items()},
            # the same from the medians of all rounds' windows, taken at different moments
            "scaling_efficiency_of_medians": round(two / (2 * one), 3),
            # the same step with the buckets summed by MPI's Iallreduce (several machines)
            "scaling_efficiency_mpi": median(paired("dual_mpi", "single", 2)),
            "shared_memory_over_mpi": median(paired("dual", "dual_mpi")),
            # the shared-memory wait sleeping on a futex when the rank was preempted in its
            # last step (dagnet's default) over the same wait always spinning
            "nap_over_spin": median(paired("dual", "dual_spin")),
            "nap_over_spin_quartiles": [round(float(q), 3) for q in
                                        np.percentile(paired("dual", "dual_spin"), [25, 75])],
            "scaling_efficiency_spin": median(paired("dual_spin", "single", 2)),
            "machine_ceiling_2_procs": median(paired("independent", "single", 2)),
            "machine_ceiling_of_medians": round(ind / (2 * one), 3),
            # the part of the ceiling data-parallel training keeps: 1 - this is dagnet's loss
            "efficiency_of_ceiling": median(paired("dual", "independent")),
            # the control: lockstep plus the bytes, without dagnet's machinery
            "naive_allreduce_of_ceiling": median(paired("naive", "independent")),
            "rounds_1_rank": [round(x, 1) for x in rates["single"]],
            "rounds_2_independent": [round(x, 1) for x in rates["independent"]],
            "rounds_2_ranks": [round(x, 1) for x in rates["dual"]],
            "rounds_2_ranks_mpi": [round(x, 1) for x in rates["dual_mpi"]],
            "rounds_2_naive_allreduce": [round(x, 1) for x in rates["naive"]],
            # CPU time a rank spent per step (load-independent): 2 ranks minus independent is
            # what data parallelism costs on the CPU (sharding, packing, polling, spinning)
            "cpu_ms_per_step": {"1_rank": ms["single"], "2_independent": ms["independent"],
                                "2_ranks": ms["dual"], "2_ranks_spin": ms["dual_spin"],
                                "2_ranks_mpi": ms["dual_mpi"],
                                "2_naive_allreduce": ms["naive"]},
            # ... and where it goes, per rank (totals over the rounds, mean of the ranks): CPU
            # ms per step of each phase, exclusive of the phases nested in it, adding up to
            # `step`; `wait` is the polling while the other rank finishes (its summing `sum`)
            # CPU ms per step of a rank's threads other than the main one (MPI's, OpenBLAS's,
            # libgomp's): none of them should work in a one-thread rank
            "other_threads_cpu_ms_per_step": {
                k: round(max(0.0, float(np.median(v))) * 1e3, 3) for k, v in (
                    ("1_rank", others["single"]), ("2_independent", others["independent"]),
                    ("2_ranks", others["dual"]), ("2_ranks_mpi", others["dual_mpi"]))},
            "cpu_ms_per_step_phases": {"2_independent": r["cpu_phases"]["independent"],
                                       "2_ranks": r["cpu_phases"]["dual"],
                                       "2_ranks_spin": r["cpu_phases"]["dual_spin"]},
            "forward_ms": round(c["forward_s"] * 1e3, 2),
            "backward_ms": round(c["backward_s"] * 1e3, 2),
            "wait_after_backward_ms": round(c["wait_s"] * 1e3, 3),
            "buckets": c["buckets"], "allreduce_bytes": c["bytes"],
            "communication_ms": round(c["blocking_allreduce_s"] * 1e3, 3),
            "exposed_wait_ms": round(c["exposed_wait_s"] * 1e3, 3),
            "rank_skew_ms": round(c["skew_s"] * 1e3, 3),
            # the share of the steps each rank finished its backward last: near 1/2 each, the
            # skew is noise; far from it, one rank is systematically slower
            "last_to_finish_share": [round(x, 3) for x in c["last_share"]],
            "overlap_fraction": round(c["overlap_fraction"], 3),
            "contended_share": round(c["contended_share"], 3),
            "mpi": {k: round(r["comm_mpi"][v] * 1e3, 3) for k, v in (
                ("wait_after_backward_ms", "wait_s"), ("exposed_wait_ms", "exposed_wait_s"),
                ("rank_skew_ms", "skew_s"), ("communication_ms", "blocking_allreduce_s"))},
            "load_average_before_after": [round(load[0], 2), round(os.getloadavg()[0], 2)]}


def median(xs: list) -> float:
    return round(float(np.median(xs)), 3)


def exactness(model: str, batch: int, steps: int) -> float:
    """max over params of max|two - one| / max|one| (floored at 1e-3 of the largest param)."""
    one = spawn(1, "exact", model, batch, steps)["params"]
    two = spawn(2, "exact", model, batch, steps)["params"]
    one = {k: np.asarray(v) for k, v in one.items()}
    floor = 1e-3 * max(float(np.max(np.abs(v))) for v in one.values())
    return max(float(np.max(np.abs(np.asarray(two[k]) - v))) / max(float(np.max(np.abs(v))), floor)
               for k, v in one.items())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the tests run this)")
    ap.add_argument("--rounds", type=int,
                    help=f"rounds of windows per model (default: {ROUNDS})")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                    help="the models to measure (default: both)")
    ap.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        kind, *rest = args.worker
        if kind == "sweep":
            out = sweep(int(rest[0]))
        else:
            out = (ab if kind == "ab" else exact)(rest[0], *map(int, rest[1:]))
        if out:
            print(json.dumps(out))
        return
    if mpiexec() is None:
        raise SystemExit("bench_dist.py needs mpiexec and mpi4py: pip install -e '.[dist]'")
    import dist_cost_model as cm

    names = args.models[:1] if args.quick else tuple(args.models)
    models = {m: throughput(m, 1 if args.quick else args.rounds or ROUNDS[m], 64,
                            2 if args.quick else STEPS[m]) for m in names}
    exact_steps = 3 if args.quick else 100
    diff = {m: exactness(m, 32, exact_steps) for m in names}
    times = {int(k): v for k, v in spawn(2, "sweep", 6 if args.quick else 12).items()}
    alpha, beta = cm.fit(list(times), list(times.values()))
    zoo = cm.zoo_predictions(alpha, beta, names if args.quick else None)
    print(json.dumps({
        # medians of the rounds' ratios (each 2-rank window over 2x the 1-rank window of its
        # round); the models' *_of_medians are the ratios of the medians over all rounds
        "summary": {"scaling_efficiency_2_ranks": {m: r["scaling_efficiency"] for m, r in models.items()},
                    "machine_ceiling_2_procs": {m: r["machine_ceiling_2_procs"] for m, r in models.items()},
                    "max_rel_param_diff_vs_single": max(diff.values())},
        "models": models,
        "exactness": {"dtype": "float64", "steps": exact_steps, "global_batch": 32,
                      "sync_bn": True, "max_rel_param_diff": diff},
        "allreduce_2_ranks_s": times,
        "cost_model": zoo,
        "machine": {"cpus": os.cpu_count(), "threads_per_rank": 1,
                    "load_average": os.getloadavg(),
                    "note": "2 cores shared with other jobs: 2 ranks take both cores"},
    }, indent=1))


if __name__ == "__main__":
    main()
