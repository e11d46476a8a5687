"""Pass: fuse chains that match a pattern into one node. Graph -> copy.

A chain fuses only when every inner value has exactly one consumer (edge) and is not a
requested output, and the pattern allows the mode. The fused node is named by joining the
members' names with '+', takes the first member's inputs plus the other members' extra inputs
(params), and carries meta["fused_group"] (member names) and meta["pattern"].
graph.meta["fusion"] = {"fused": [...], "near_misses": [...], "aliases": {member: fused}}:
every group records the pattern that fired; every chain that matched a pattern's ops but was
not fused records why.
"""
from __future__ import annotations

from dagnet.graph import INPUT, PARAM, Graph, Node
from dagnet.ops import get_op
from dagnet.compiler.patterns import patterns_from_registry
from dagnet.compiler.shapes import topological_order


def _chain(graph: Graph, users: dict, start: Node, ops: tuple):
    """Follow port-0 consumers from `start` matching `ops`; returns the member nodes (possibly
    shorter than ops when the chain stops) - the first consumer with the right op is followed."""
    members = [start]
    for op in ops[1:]:
        nxt = [graph.node(c) for c, port in users.get(members[-1].name, [])
               if port == 0 and graph.node(c).op == op]
        if not nxt:
            break
        members.append(nxt[0])
    return members


def _blocker(users: dict, members: list[Node], outputs: set, pattern, mode: str) -> str | None:
    """Why this complete chain cannot fuse, or None."""
    if mode not in pattern.modes:
        return f"mode '{mode}' forbids it: {pattern.mode_reason}"
    for inner in members[:-1]:
        used_by = users.get(inner.name, [])
        if len(used_by) != 1:
            names = ", ".join(sorted({u for u, _ in used_by}))
            return f"'{inner.name}' has {len(used_by)} users ({names}); its value must be kept"
        if inner.name in outputs:
            return f"'{inner.name}' is a requested output"
    return None


def fuse(graph: Graph, outputs: list[str] | None = None, mode: str = "train",
         patterns=None) -> Graph:
    """patterns: default, those of the fused ops registered now (compiler/patterns.py)."""
    outputs = set(graph.outputs if outputs is None else outputs)
    patterns = sorted(patterns_from_registry() if patterns is None else patterns,
                      key=lambda p: -len(p.ops))
    taken: set[str] = set()
    groups, near_misses = [], []
    users = graph.consumer_map()
    for name in topological_order(graph):
        start = graph.node(name)
        if start.op in (INPUT, PARAM) or name in taken:
            continue
        fired, missed = None, []
        for pattern in patterns:
            if start.op != pattern.ops[0]:
                continue
            members = _chain(graph, users, start, pattern.ops)
            if len(members) != len(pattern.ops) or any(m.name in taken for m in members):
                continue
            reason = _blocker(users, members, outputs, pattern, mode)
            if reason is None:
                fired = (pattern, members)
                break
            missed.append({"pattern": pattern.name, "nodes": [m.name for m in members],
                           "reason": reason})
        # patterns are tried longest first, so every miss recorded here explains why a longer
        # chain than the one that fired (if any) did not fuse
        near_misses += missed
        if fired:
            pattern, members = fired
            taken.update(m.name for m in members)
            groups.append((pattern, members))
    return _rewrite(graph, groups, near_misses)


def _rewrite(graph: Graph, groups, near_misses) -> Graph:
    g = graph.copy()
    aliases = {}
    for pattern, members in groups:
        fused_name = "+".join(m.name for m in members)
        inputs = list(members[0].inputs)
        for m in members[1:]:
            inputs += m.inputs[1:]
        node = Node(fused_name, pattern.fused_op,
                    {"members": [{"name": m.name, "op": m.op, "attrs": dict(m.attrs)}
                                 for m in members]},
                    inputs,
                    {"fused_group": [m.name for m in members], "pattern": pattern.name})
        node.meta.update(shape=members[-1].meta.get("shape"), batched=members[-1].meta.get("batched"),
                         params=sum(m.meta.get("params", 0) for m in members),
                         flops=sum(m.meta.get("flops", 0) for m in members))
        stateful = [m.name for m in members if get_op(m.op).stateful]
        if stateful:
            node.meta["state_key"] = stateful[0]
        aliases[members[-1].name] = fused_name
        # the fused node takes the place of the first member; the others go
        g.set_nodes([node if n.name == members[0].name else n for n in g
                     if n.name == members[0].name or n.name not in node.meta["fused_group"]])
    # consumers of a group's last member now read the fused node
    for n in g:
        n.inputs = [aliases.get(s, s) for s in n.inputs]
    g.outputs = [aliases.get(o, o) for o in g.outputs]
    g.meta["fusion"] = {
        "fused": [{"node": "+".join(m.name for m in ms), "pattern": p.name,
                   "members": [m.name for m in ms]} for p, ms in groups],
        "near_misses": near_misses,
        "aliases": aliases,
    }
    return g
