"""Pass: group the params' gradients into allreduce buckets, in the order the planned backward
sweep finishes them. Graph -> annotated copy.

Data-parallel training sums every gradient over the processes (allreduce). One allreduce per
gradient pays the network's latency once per param; one for all of them waits for the whole
backward sweep before the first byte moves. Buckets sit between (Horovod's fusion buffer,
PyTorch DDP's gradient buckets), and because dagnet's backward is planned, the compiler knows
exactly after which backward step each gradient is final - DDP finds out at run time with
hooks. A gradient is final after the last backward step that adds to it (a param shared by
several ops gets one contribution from each). Walking the backward order, the gradients
finished by each step join the open bucket; the bucket closes, and its nonblocking allreduce
starts, after the step that brings it to `bucket_bytes` (`first_bytes` for the first bucket,
smaller so that communication starts early, as in DDP), and the last bucket closes after the
last step that finishes one of its gradients. Params no backward step reaches get no bucket:
their gradient is zero on every process.

graph.meta["buckets"] = {"bucket_bytes", "first_bytes", "itemsize", "backward_steps",
  "buckets": [{"params": [names in packing order], "bytes": int, "after": backward step
  whose completion starts the allreduce, "position": that step's index in the backward
  order}], "no_grad": [params without a gradient]}.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import DagnetError
from dagnet.graph import PARAM, Graph

#: the default threshold: a few MB, between Horovod's 64 MB fusion buffer (for networks that
#: are mostly bandwidth) and latency-bound small models; see docs/distributed.md
DEFAULT_BUCKET_MB = 4.0
#: DDP's first bucket: 1 MB, so the first allreduce starts as soon as possible
DEFAULT_FIRST_MB = 1.0
MB = 1 << 20


def plan_buckets(graph: Graph, bucket_bytes: int = int(DEFAULT_BUCKET_MB * MB),
                 itemsize: int = 4, first_bytes: int | None = None) -> Graph:
    """Annotate graph.meta["buckets"] (see the module docstring); the graph must have been
    through autodiff (plan_backward)."""
    if "backward" not in graph.meta:
        raise DagnetError("plan_buckets needs the backward plan: run it after plan_backward "
                          "(compile with mode='train')")
    if bucket_bytes <= 0:
        raise DagnetError(f"the allreduce bucket size must be > 0 bytes, got {bucket_bytes} "
                          f"(bucket_mb / --bucket-mb must be positive)")
    first_bytes = min(bucket_bytes, int(DEFAULT_FIRST_MB * MB)) if first_bytes is None \
        else first_bytes
    g = graph.copy()
    sizes = {n.name: int(np.prod(n.attrs["shape"], dtype=np.int64)) * itemsize
             for n in g if n.op == PARAM}
    finished = _finished_by(g, set(sizes))
    buckets, current, position = [], [], {}
    order = g.meta["backward"]["order"]
    for k, step in enumerate(order):
        for p in finished.get(step, []):
            current.append(p)
            position[p] = k
        limit = first_bytes if not buckets else bucket_bytes
        if current and sum(sizes[p] for p in current) >= limit:
            buckets.append(_bucket(current, sizes, order, k))
            current = []
    if current:
        buckets.append(_bucket(current, sizes, order, max(position[p] for p in current)))
    in_bucket = {p for b in buckets for p in b["params"]}
    g.meta["buckets"] = {
        "bucket_bytes": int(bucket_bytes), "first_bytes": int(first_bytes), "itemsize": itemsize,
        "buckets": buckets, "backward_steps": len(order),
        "no_grad": [p for p in sizes if p not in in_bucket],
    }
    return g


def _finished_by(g: Graph, params: set) -> dict:
    """{backward step: [params whose gradient is final after it]}: each param's last
    contributor in backward order, the params in the order the step's inputs name them."""
    order = g.meta["backward"]["order"]
    last: dict[str, str] = {}
    for step in order:
        n = g.node(step)
        for src, need in zip(n.inputs, n.meta.get("needs", ())):
            if need and src in params:
                last[src] = step  # a later step in backward order adds to it again
    out: dict[str, list] = {}
    for step in order:
        for src in g.node(step).inputs:
            if last.get(src) == step and src not in out.get(step, []):
                out.setdefault(step, []).append(src)
    return out


def _bucket(params: list, sizes: dict, order: list, k: int) -> dict:
    return {"params": list(params), "bytes": sum(sizes[p] for p in params), "after": order[k],
            "position": k}


def describe_buckets(meta: dict) -> list[str]:
    """Text lines for plan.describe(): one per bucket, with where its allreduce starts."""
    if not meta:
        return []
    buckets = meta["buckets"]
    total = sum(b["bytes"] for b in buckets)
    lines = [f"allreduce buckets ({len(buckets)}, {total / MB:.2f} MiB of gradients; close at "
             f"{meta['first_bytes'] / MB:g} MiB for the first, {meta['bucket_bytes'] / MB:g} MiB "
             f"after; each bucket's allreduce (MPI's Iallreduce, or shared memory on one "
             f"machine) starts right after the backward step named, all are waited for before "
             f"the update):"]
    for i, b in enumerate(buckets):
        lines.append(f"  bucket {i}: {b['bytes'] / 1024:,.1f} KiB, starts after backward step "
                     f"{b['position'] + 1}/{meta['backward_steps']} '{b['after']}': {', '.join(b['params'])}")
    if meta["no_grad"]:
        lines.append(f"  no gradient (not reduced): {', '.join(meta['no_grad'])}")
    return lines


def bucket_starts(meta: dict) -> dict:
    """{backward step: [bucket indices whose allreduce starts right after it]}."""
    out: dict[str, list] = {}
    for i, b in enumerate((meta or {}).get("buckets", [])):
        out.setdefault(b["after"], []).append(i)
    return out
