"""lint(graph, ran): the invariants every graph between passes keeps (like torch.fx's
graph.lint()). A failure is a compiler bug, never a user mistake: run_passes(lint=True) checks
the graph after each pass, and the tests switch that on for every compile.

Structure: unique names, every input a node of the graph, inputs and params without inputs,
registered ops with their arity, outputs that exist, no cycle; once scheduled, every node after
its inputs and op nodes numbered in order. Meta: only the keys of compiler/meta.py, and each
key on the nodes that must carry it once a pass that writes it has run.
"""
from __future__ import annotations

from dagnet.graph import LEAVES, Graph
from dagnet.ops import get_op
from dagnet.ops.fusion import FusedOp
from dagnet.compiler.meta import GRAPH_KEYS, NODE_KEYS


class LintError(RuntimeError):
    """A graph between passes breaks an invariant: a bug in the pass named in the message."""


def lint(graph: Graph, ran=()) -> None:
    """Raise LintError on the first broken invariant; ran: the passes run so far, in order."""
    where = f"after pass '{ran[-1]}'" if ran else "before the passes"
    problems = _structure(graph, ran) + _meta(graph, set(ran))
    if problems:
        raise LintError(f"{where}: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                      if len(problems) > 1 else ""))


def _structure(graph: Graph, ran) -> list[str]:
    problems = []
    names = [n.name for n in graph]
    if len(set(names)) != len(names):
        problems.append(f"node names repeat: {sorted({x for x in names if names.count(x) > 1})}")
    position = {name: i for i, name in enumerate(names)}
    for n in graph:
        if n.op in LEAVES:
            if n.inputs:
                problems.append(f"{n.op} node '{n.name}' has inputs {n.inputs}")
            continue
        op = get_op(n.op, n.name)
        try:
            op.check_arity(len(n.inputs), n.name)
        except Exception as e:  # noqa: BLE001 - the message is the finding
            problems.append(str(e))
        for s in n.inputs:
            if s not in position:
                problems.append(f"'{n.name}' reads '{s}', which is not a node of the graph")
            elif "schedule" in ran and position[s] > position[n.name]:
                problems.append(f"scheduled '{n.name}' comes before its input '{s}'")
        if isinstance(op, FusedOp) and op.chain and len(n.attrs.get("members", ())) != len(op.chain):
            problems.append(f"fused node '{n.name}' has {len(n.attrs.get('members', ()))} members "
                            f"for the chain {op.chain}")
    missing = [o for o in graph.outputs if o not in position]
    if missing:
        problems.append(f"outputs {missing} are not nodes of the graph")
    if not problems and "schedule" not in ran and _has_cycle(graph):  # scheduled: ordered above
        problems.append("the graph has a cycle")
    if "schedule" in ran:
        steps = [n.meta.get("step") for n in graph if n.op not in LEAVES]
        if steps != list(range(len(steps))):
            problems.append(f"op nodes are not numbered 0..{len(steps) - 1} in order: {steps}")
    return problems


def _has_cycle(graph: Graph) -> bool:
    """Kahn's algorithm over the inputs lists: a cycle leaves nodes never freed."""
    waiting = {n.name: len(set(n.inputs)) for n in graph}
    users: dict[str, list] = {}
    for n in graph:
        for s in set(n.inputs):
            users.setdefault(s, []).append(n.name)
    ready = [name for name, k in waiting.items() if k == 0]
    freed = 0
    while ready:
        name = ready.pop()
        freed += 1
        for u in users.get(name, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return freed != len(waiting)


def _meta(graph: Graph, ran: set) -> list[str]:
    problems = [f"graph.meta key '{k}' is not declared in compiler/meta.py"
                for k in graph.meta if k not in GRAPH_KEYS]
    problems += [f"graph.meta lacks '{k}', which pass '{m.writers[0]}' writes"
                 for k, m in GRAPH_KEYS.items() if m.writers[0] in ran and k not in graph.meta]
    # the keys each kind of node must carry by now: those a pass that ran writes
    due = {kind: {k for k, m in NODE_KEYS.items() if m.nodes == kind and ran & set(m.writers)}
           for kind in ("all", "op", "fused")}
    declared = NODE_KEYS.keys()
    for n in graph:
        undeclared = n.meta.keys() - declared
        if undeclared:
            problems.append(f"'{n.name}' has meta keys {sorted(undeclared)} not declared in "
                            f"compiler/meta.py")
        must = due["all"] | (due["op"] if n.op not in LEAVES else set()) \
            | (due["fused"] if "fused_group" in n.meta else set())
        for k in sorted(must - n.meta.keys()):
            problems.append(f"'{n.name}' lacks meta '{k}' (written by {', '.join(NODE_KEYS[k].writers)})")
    return problems
