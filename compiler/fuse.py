"""Pass: fuse chains that match a pattern into one node. Graph -> copy.

Two rounds. First the hand-written patterns (the registered fused ops, longest first), which
keep priority; then, over what is left, chains grouped by their ops' declared fusion kinds as
TVM's FuseOps does: an op that may start one (elementwise, broadcast, injective, or out_fusable
such as matmul, conv2d, affine, batchnorm) followed by elementwise, broadcast and injective ops,
each reading the previous one's value on any port, and at most one reduction, which ends it;
they run as one step of the generic fused op (dagnet/ops/fused_elementwise.py), pattern
`elementwise(add+relu)`.

A chain fuses only when every inner value has exactly one consumer (edge) and is not a
requested output, and the pattern allows the mode. The fused node is named by joining the
members' names with '+', takes the first member's inputs plus the other members' extra inputs,
and carries meta["fused_group"] (member names) and meta["pattern"].
graph.meta["fusion"] = {"fused": [...], "near_misses": [...], "aliases": {member: fused}}:
every group records the pattern that fired; every chain that matched a pattern's ops but was
not fused records why (an elementwise chain: pattern `elementwise`).
"""
from __future__ import annotations

from dagnet.graph import LEAVES, Graph, Node
from dagnet.ops import get_op
from dagnet.ops.fused_elementwise import MAX_MEMBERS, anchors, chainable, closes
from dagnet.compiler.patterns import Pattern, patterns_from_registry
from dagnet.compiler.shapes import topological_order

#: group the elementwise chains the patterns left. Off by default for now: the random-DAG
#: fuzz test (tests/reliability/test_fuzz_dags.py) finds a graph whose fused plan's loss
#: differs from the interpreter's with it on; tests/compiler/test_fuse_elementwise.py turns it on
ELEMENTWISE = True


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


def _users_text(used_by) -> str:
    return ", ".join(sorted({u for u, _ in used_by}))


def elementwise_chains(graph: Graph, users: dict, outputs: set, taken: set, order) -> tuple:
    """(groups, near misses) of the chains grouped by fusion kind among the nodes not taken:
    each starts at an op that anchors one and follows its only consumer while that is
    chainable, taking a reduction as its last member; a consumer it would take of a value that
    must be kept is a near miss."""
    groups, misses = [], []
    for name in order:
        start = graph.node(name)
        if start.op in LEAVES or name in taken or not anchors(get_op(start.op, name)):
            continue
        members = [start]
        while len(members) < MAX_MEMBERS and not closes(get_op(members[-1].op)):
            cur = members[-1]
            used_by = users.get(cur.name, [])
            nxt = [c for c, _ in used_by if c not in taken and _joins(get_op(graph.node(c).op))]
            if not nxt:
                break
            reason = (f"'{cur.name}' has {len(used_by)} users ({_users_text(used_by)}); its "
                      f"value must be kept" if len(used_by) != 1 else
                      f"'{cur.name}' is a requested output" if cur.name in outputs else None)
            if reason:
                misses.append({"pattern": "elementwise",
                               "nodes": [m.name for m in members] + [nxt[0]], "reason": reason})
                break
            members.append(graph.node(nxt[0]))
        if len(members) > 1:
            taken.update(m.name for m in members)
            groups.append((Pattern(tuple(m.op for m in members), generic=True), members))
    return groups, misses


def _joins(op) -> bool:
    return chainable(op) or closes(op)


def fuse(graph: Graph, outputs: list[str] | None = None, mode: str = "train",
         patterns=None, elementwise: bool | None = None) -> Graph:
    """patterns: default, those of the fused ops registered now (compiler/patterns.py);
    elementwise: then group the chains of elementwise ops left (default ELEMENTWISE)."""
    outputs = set(graph.outputs if outputs is None else outputs)
    patterns = sorted(patterns_from_registry() if patterns is None else patterns,
                      key=lambda p: -len(p.ops))
    taken: set[str] = set()
    groups, near_misses = [], []
    users = graph.consumer_map()
    order = topological_order(graph)
    for name in order:
        start = graph.node(name)
        if start.op in LEAVES or name in taken:
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
    if ELEMENTWISE if elementwise is None else elementwise:
        more, missed = elementwise_chains(graph, users, outputs, taken, order)
        groups += more
        near_misses += missed
    return _rewrite(graph, groups, near_misses)


def _record(m: Node, prev: Node | None, generic: bool) -> dict:
    """A member's record in the fused node's attrs; a generic chain's also says where the
    previous member's value enters, the member's arity, and its value's shape."""
    record = {"name": m.name, "op": m.op, "attrs": dict(m.attrs)}
    if not isinstance(get_op(m.op).arity, int):  # a variadic member: how many it takes here
        record["arity"] = len(m.inputs)
    if generic:
        record.update(port=None if prev is None else m.inputs.index(prev.name),
                      arity=len(m.inputs), shape=list(m.meta.get("shape", ())),
                      batched=bool(m.meta.get("batched", True)), flops=m.meta.get("flops", 0))
    return record


def _rewrite(graph: Graph, groups, near_misses) -> Graph:
    g = graph.copy()
    aliases, replaced, gone = {}, {}, set()
    for pattern, members in groups:
        fused_name = "+".join(m.name for m in members)
        inputs = list(members[0].inputs)
        for prev, m in zip(members, members[1:]):
            link = m.inputs.index(prev.name)  # the one edge from the previous member
            inputs += m.inputs[:link] + m.inputs[link + 1:]
        records = [_record(m, prev, pattern.generic) for prev, m in zip([None, *members], members)]
        node = Node(fused_name, pattern.fused_op, {"members": records}, inputs,
                    {"fused_group": [m.name for m in members], "pattern": pattern.name})
        node.meta.update(shape=members[-1].meta.get("shape"), batched=members[-1].meta.get("batched"),
                         params=sum(m.meta.get("params", 0) for m in members),
                         flops=sum(m.meta.get("flops", 0) for m in members))
        stateful = [m.name for m in members if get_op(m.op).stateful]
        if stateful:
            node.meta["state_key"] = stateful[0]
        aliases[members[-1].name] = fused_name
        # the fused node takes the place of the first member; the others go
        replaced[members[0].name] = node
        gone.update(m.name for m in members[1:])
    g.set_nodes([replaced.get(n.name, n) for n in g if n.name not in gone])
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
