"""The analysis results passes leave on a graph: every node.meta and graph.meta key, who writes
it and what it holds, as data (the docs render this table; compiler/lint.py checks graphs
against it; a test checks that every pass writes only the keys it is listed for).

`nodes`: which nodes carry the key once its first writer among the passes has run: "all",
"op" (not inputs or params), "fused" (nodes the fuse pass made), or "some" (optional).
"""
from __future__ import annotations

from typing import NamedTuple


class MetaKey(NamedTuple):
    key: str
    scope: str  # "node" or "graph"
    writers: tuple  # the passes that write it ("builder": dagnet.Graph, before any pass)
    nodes: str
    holds: str


META = (
    MetaKey("shape", "node", ("builder", "infer_shapes", "fuse"), "all",
            "per-example shape of a batched value (no batch axis); else the full shape (params, "
            "constants, unbatched values)"),
    MetaKey("batched", "node", ("builder", "infer_shapes", "fuse"), "all",
            "whether the value carries the batch axis (batched inputs and what ops make of them; "
            "not params, constants or losses)"),
    MetaKey("params", "node", ("infer_shapes", "fuse"), "all",
            "parameter scalars: a param's size; for an op, those of the params it reads directly"),
    MetaKey("flops", "node", ("infer_shapes", "fuse"), "all",
            "forward FLOPs per example (rough, for plan.describe())"),
    MetaKey("fused_group", "node", ("fuse",), "fused", "the names of the fused nodes, in chain order"),
    MetaKey("pattern", "node", ("fuse",), "fused", "the pattern that fired (the fused op's name)"),
    MetaKey("state_key", "node", ("fuse",), "some",
            "of a fused node with a stateful member: that member, whose plan.state entry it uses"),
    MetaKey("step", "node", ("schedule",), "op", "the step's index in the execution order"),
    MetaKey("needs", "node", ("autodiff",), "op",
            "one bool per input port: whether backward computes that gradient"),
    MetaKey("inplace", "node", ("memory",), "op", "whether the step writes over its only input"),
    MetaKey("live", "node", ("memory",), "op",
            "(first, last) time step its value is alive; backward of step t is time 2S-1-t"),
    MetaKey("buffer", "node", ("memory",), "op",
            "the planned buffer its value lives in (-1: unbatched, counted in fixed_bytes)"),
    MetaKey("workspace_buffer", "node", ("memory",), "op",
            "the planned buffer its op builds its scratch in (-1: none)"),
    MetaKey("pruned", "graph", ("prune",), "", "the names of the nodes pruned, in graph order"),
    MetaKey("fusion", "graph", ("fuse",), "",
            "{fused: [{node, pattern, members}], near_misses: [{pattern, nodes, reason}], "
            "aliases: {last member: fused node}}"),
    MetaKey("backward", "graph", ("autodiff",), "",
            "{order: op nodes in backward order, fan_in: {value: summed gradients}, seeds: the "
            "losses, wrt: inputs differentiated, frozen: params given no gradient}"),
    MetaKey("jvp", "graph", ("forward_mode",), "",
            "{wrt: the inputs whose tangents are carried, order: the op nodes that carry one, "
            "in schedule order}"),
    MetaKey("memory", "graph", ("memory",), "",
            "{buffers: {id: bytes per example}, fixed_bytes, timeline, mode, activations and "
            "total: {peak, no_reuse, peak_step}, workspaces: {step: Span(start, end, bytes)}}"),
    MetaKey("buckets", "graph", ("buckets",), "",
            "data-parallel gradient allreduce: {bucket_bytes, first_bytes, itemsize, "
            "backward_steps, buckets: [{params, bytes, after: backward step, position}], "
            "no_grad}"),
)

NODE_KEYS = {m.key: m for m in META if m.scope == "node"}
GRAPH_KEYS = {m.key: m for m in META if m.scope == "graph"}


def table() -> str:
    """The table as Markdown (for docs)."""
    rows = ["| key | on | written by | carried by | holds |", "|---|---|---|---|---|"]
    for m in META:
        where = f"{m.nodes} nodes" if m.scope == "node" else "the graph"
        rows.append(f"| `{m.key}` | {m.scope}.meta | {', '.join(m.writers)} | {where} | {m.holds} |")
    return "\n".join(rows)
