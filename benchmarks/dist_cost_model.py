"""An alpha-beta cost model of data-parallel training with planned allreduce buckets.

    python benchmarks/dist_cost_model.py --alpha 5e-6 --beta 4e-10      # seconds, s/byte
    python benchmarks/dist_cost_model.py --from bench_dist.json        # the measured fit

Allreduce of n bytes over P ranks (ring: reduce-scatter then allgather, each 2(P-1) messages
of n/P bytes): T(P, n) = 2(P-1) alpha + 2 (P-1)/P n beta. Two ranks give T(2, n) = 2 alpha +
n beta, which is what `fit` fits to measured 2-rank allreduce times (least squares, relative
errors, so that small and large messages count alike).

A training step (weak scaling: each rank keeps its batch, so its compute time C stays the
same at any P): the plan's backward sweep ends each bucket at a known step; with the steps'
measured backward times, bucket i's allreduce can start at t_i (seconds into backward). The
allreduces run one after the other on the network: f_i = max(t_i, f_{i-1}) + T(P, n_i). The
communication not hidden is max(0, f_last - B) (B: the backward's length), and the scaling
efficiency is C / (C + exposed).

Where the bucket size should go: k buckets of s = G/k bytes (G: all gradients) keep the
network busy for k 2(P-1) alpha + 2 G beta (P large); as long as that fits in the backward
(B), only the last bucket is exposed, 2(P-1) alpha + 2 s beta, so the best s is the smallest
that still fits: s* = 2(P-1) alpha G / (B - 2 G beta). It grows linearly with the number of
ranks (each bucket pays the latency 2(P-1) times), and without bound once 2 G beta nears B:
then the network, not the overlap, is the limit, and one bucket (the fewest latencies) is best.
`predict` reports s* beside the simulated sweep over bucket sizes (gradients are never split,
so the sweep's steps are coarser than s*).
"""
from __future__ import annotations

import argparse
import json

import dagnet  # noqa: F401  (before numpy: dagnet/procenv.py)
import numpy as np

RANKS = (2, 8, 64, 512)
BUCKET_MB = (1 / 64, 1 / 16, 1 / 4, 1, 4, 16, 64)


def fit(sizes, seconds) -> tuple[float, float]:
    """(alpha, beta) of T(2, n) = 2 alpha + n beta, fitted to 2-rank allreduce times."""
    n, t = np.asarray(sizes, float), np.asarray(seconds, float)
    a = np.stack([np.full_like(n, 2.0), n], axis=1) / t[:, None]  # rows scaled: relative errors
    (alpha, beta), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    return max(float(alpha), 0.0), max(float(beta), 0.0)


def allreduce_time(p: int, nbytes: float, alpha: float, beta: float) -> float:
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta


def step_time(profile: dict, buckets: list, p: int, alpha: float, beta: float) -> dict:
    """The modelled step at p ranks. profile: {"forward_s", "backward": [(step, s)] in backward
    order, "update_s"}; buckets: [{"bytes", "after": step}] in start order."""
    ends, t = {}, 0.0
    for name, s in profile["backward"]:
        t += s
        ends[name] = t
    backward = t
    finish = 0.0
    for b in buckets:
        finish = max(ends[b["after"]], finish) + allreduce_time(p, b["bytes"], alpha, beta)
    exposed = max(0.0, finish - backward)
    compute = profile["forward_s"] + backward + profile["update_s"]
    return {"compute_s": compute, "exposed_s": exposed, "efficiency": compute / (compute + exposed)}


def s_star(profile: dict, grad_bytes: int, p: int, alpha: float, beta: float):
    """The analytic bucket size (MiB) of the module docstring; "all" when bandwidth-bound."""
    backward = sum(t for _, t in profile["backward"])
    room = backward - 2 * grad_bytes * beta
    if room <= 0:
        return "all"
    return round(min(grad_bytes, 2 * (p - 1) * alpha * grad_bytes / room) / 2**20, 4)


def buckets_for(plan_graph, bucket_mb: float, itemsize: int) -> list:
    """The bucket pass's buckets for a compiled train graph at another threshold."""
    from dagnet.compiler.buckets import MB, plan_buckets

    g = plan_buckets(plan_graph, int(np.ceil(bucket_mb * MB)), itemsize)
    return g.meta["buckets"]["buckets"]


def predict(models: dict, alpha: float, beta: float, ranks=RANKS, sizes=BUCKET_MB) -> dict:
    """{model: {P: {"default": efficiency at the default bucket size, "best_mb", "best",
    "s_star_mb"}}}. models: {name: {"profile": ..., "graph": compiled train graph, "itemsize":
    int, "params_bytes": int}} (see profile_model)."""
    from dagnet.compiler.buckets import DEFAULT_BUCKET_MB

    out = {}
    for name, m in models.items():
        rows = {}
        for p in ranks:
            eff = {mb: step_time(m["profile"], buckets_for(m["graph"], mb, m["itemsize"]), p,
                                 alpha, beta)["efficiency"] for mb in sizes}
            # the default unless another size does better (in the 4th decimal)
            best = max(eff, key=lambda mb: (round(eff[mb], 4), mb == DEFAULT_BUCKET_MB, -mb))
            rows[p] = {"default": round(eff[DEFAULT_BUCKET_MB], 4), "best_mb": best,
                       "best": round(eff[best], 4),
                       "s_star_mb": s_star(m["profile"], m["params_bytes"], p, alpha, beta)}
        out[name] = rows
    return out


def profile_model(name: str, batch: int = 64, repeats: int = 3) -> dict:
    """Compile a zoo model (float32), time its steps with plan.profile on one thread."""
    import dagnet
    from dagnet.models import get_model

    g = get_model(name)
    plan = dagnet.compile(g)
    shape = plan.input_specs["x"]["shape"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(shape)).astype(np.float32)
    classes = plan.graph.node(plan.scores_name).meta["shape"][-1]
    y = rng.integers(0, classes, batch)
    times = plan.profile(x, y, repeats=repeats)
    nbytes = sum(a.nbytes for a in plan.params.values())
    return {"graph": plan.graph, "itemsize": plan.dtype.itemsize, "params_bytes": nbytes,
            "profile": {"forward_s": sum(t["forward"] for t in times.values()),
                        "backward": [(s.name, times[s.name]["backward"]) for s in plan.backward_steps],
                        # an SGD-momentum update reads and writes ~4 arrays of the params
                        "update_s": 4 * nbytes / 5e9}}


#: the zoo's CIFAR/MNIST-sized models: profiled at batch 64 on one thread in seconds each (the
#: ImageNet-sized ones - resnet50, vgg16, alexnet, googlenet, ... - take minutes and
#: gigabytes per profile: name them with --models)
SMALL_ZOO = ("two_layer_net", "fc_net", "three_layer_convnet", "lenet", "lenet_bn",
             "convnet_deep", "resnet_small")


def zoo_predictions(alpha: float, beta: float, names=None) -> dict:
    models = {n: profile_model(n) for n in (names or SMALL_ZOO)}
    return {"alpha_s": alpha, "beta_s_per_byte": beta,
            "params_MiB": {n: round(m["params_bytes"] / 2**20, 3) for n, m in models.items()},
            "efficiency": predict(models, alpha, beta)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alpha", type=float, help="latency per message, seconds")
    ap.add_argument("--beta", type=float, help="seconds per byte")
    ap.add_argument("--from", dest="source", help="a bench_dist.py JSON output: use its fit")
    ap.add_argument("--models", nargs="*", help="zoo models (default: SMALL_ZOO)")
    args = ap.parse_args()
    if args.source:
        with open(args.source) as f:
            fitted = json.load(f)["cost_model"]
        alpha, beta = fitted["alpha_s"], fitted["beta_s_per_byte"]
    elif args.alpha is not None and args.beta is not None:
        alpha, beta = args.alpha, args.beta
    else:
        ap.error("give --alpha and --beta, or --from bench_dist.json")
    print(json.dumps(zoo_predictions(alpha, beta, args.models), indent=1, default=str))


if __name__ == "__main__":
    main()
