"""Draw a compiled ExecutionPlan over the graph as declared, so a reader sees what the compiler
did: fused groups boxed around their original ops and labelled with the pattern that fired,
step numbers, near misses dashed with the reason, pruned nodes greyed, in-place steps marked;
optionally the backward sweep, the memory plan and per-step timings.

    dot = render_plan(plan, "plan.svg", show_backward=True, show_memory=True)
"""
from __future__ import annotations

import math

import graphviz

from dagnet.compiler.buckets import bucket_starts
from dagnet.errors import DagnetError
from dagnet.graph import CONSTANT, PARAM
from dagnet.viz import style
from dagnet.viz.fold import find_repeats
from dagnet.viz.graph import (Cluster, annotated, block_clusters, block_mode, box_label, describe,
                              edge_attrs, emit, esc, folded_params, nest, node_attrs, node_id, save,
                              title_label, wrap)

GRAD = "grad/"  # id prefix of backward-sweep nodes (no colon: that would name a port)


def render_plan(plan, path=None, format: str | None = None, show_backward: bool = False,
                show_memory: bool = False, timings: dict | None = None, show_shapes: bool = True,
                show_params: bool = True, rankdir: str = "TB", collapse_params: bool = True,
                label=None, blocks: str | None = "auto", title: str | None = None) -> graphviz.Digraph:
    """The compiled plan drawn over its declared graph; written to `path` when given.

    show_backward: the backward sweep beside the forward one (gradients flow upwards).
    show_memory: each value's buffer (colored edges) and the memory peak. timings:
    {step: {"forward": s, "backward": s}} (see profile_plan) as heat colors. label: a hook
    fn(node) -> str for the box text. blocks: for runs of repeated blocks, "fold" draws the
    first block in full and the others as one box, "cluster" boxes each block, "auto" folds
    graphs of more than AUTO_FOLD_OPS ops."""
    if show_backward and plan.mode != "train":
        raise DagnetError("this plan was compiled with mode='eval' and has no backward sweep; "
                          "compile with mode='train' to draw it")
    src = annotated(plan.source)
    d = _Drawing(plan, src, collapse_params, block_mode(src, blocks), show_shapes, show_memory, timings)
    for n in src:
        d.add_node(n, show_params, label)
    clusters = d.fused_clusters() + d.block_clusters()
    misses = d.near_miss_clusters()
    _, rejected = nest(clusters + misses)
    # a near miss that cannot be boxed without cutting another box is drawn on its edges; a
    # fused group cut by a block boundary loses its box (the step numbers still tell)
    clusters = [c for c in clusters + misses if c not in rejected]
    edges = d.edges([c for c in rejected if c in misses])
    same_rank = []
    if show_backward:
        edges += d.backward(same_rank)
    dot = emit(f"{src.name}_plan", title_label(title or f"{src.name} · execution plan", d.subtitle()),
               rankdir, d.nodes, edges, clusters, same_rank)
    if path is not None:
        save(dot, path, format)
    return dot


class _Drawing:
    """The pieces of one plan picture, computed from the plan's graphs and meta."""

    def __init__(self, plan, src, collapse_params, blocks, show_shapes, show_memory, timings):
        self.plan, self.src, self.blocks = plan, src, blocks
        self.show_shapes, self.show_memory, self.timings = show_shapes, show_memory, timings
        self.step_of = {m: s for s in plan.steps for m in s.members}
        self.pruned = set(plan.graph.meta.get("pruned", []))
        self.fusion = plan.graph.meta.get("fusion", {"fused": [], "near_misses": []})
        self.memory = plan.graph.meta.get("memory", {})
        self.repeats = find_repeats(src) if blocks else []
        # folding keeps each run's first block in full: it shows what every copy compiles to
        self.run_of = ({v: i for i, r in enumerate(self.repeats) for b in r.blocks[1:] for v in b}
                       if blocks == "fold" else {})
        users = src.consumer_map()
        self.hidden = folded_params(src) if collapse_params else set()
        # the params and constants (attention's 1/sqrt(d)) that only folded blocks read
        self.hidden |= {n.name for n in src if n.op in (PARAM, CONSTANT) and users.get(n.name)
                        and all(u in self.run_of for u, _ in users[n.name])}
        slowest = max((sum(t.values()) for t in timings.values()), default=0) if timings else 0
        self.slowest = slowest or 1.0
        self.peak = self._peak() if show_memory else None
        self.nodes = {}
        self.frozen = getattr(plan, "frozen", set())  # fine-tuning: params given no gradient

    def where(self, name: str) -> str:
        """The id drawn for a node name: its own, or its folded run's box."""
        return f"block/{self.run_of[name]}" if name in self.run_of else node_id(name)

    # -- forward ----------------------------------------------------------------------------
    def add_node(self, n, show_params, label) -> None:
        if n.name in self.hidden or self.where(n.name) in self.nodes:
            return
        if n.name in self.run_of:
            self.nodes[self.where(n.name)] = self._fold_box(self.repeats[self.run_of[n.name]])
            return
        attrs = {}
        step = self.step_of.get(n.name)
        marks, lines = [], describe(n, self.src, self.show_shapes, show_params, self.hidden)
        if n.name in self.pruned:
            attrs.update(style.PRUNED)
            lines.append("pruned: no requested output needs it")
        if step is not None and not step.fused:
            marks.append((f"#{step.index}", style.STEP_MARK))
        if step is not None and step.inplace:
            marks.append(("↺", style.INPLACE_MARK))
            lines.append((f"in place: overwrites {step.inputs[0]}", style.INPLACE_MARK))
        if step is not None and n.name == step.members[-1]:
            lines += self._value_lines(step)
            if self.timings and not step.fused:
                lines.append(self._time_line(step))
                attrs["fillcolor"] = self._heat(step)
        frozen = [v for v in n.inputs if v in self.frozen]
        if frozen:
            attrs.update(style.FROZEN)
            marks.append(("❄", style.FROZEN_MARK))
            lines.append((f"frozen: {', '.join(frozen)}", style.FROZEN_MARK))
        if self.peak and self.peak[0] == n.name:
            attrs.update(style.PEAK)
            lines.append((self.peak[1], style.PEAK["color"]))
        self.nodes[node_id(n.name)] = node_attrs(n, lines, marks, label, **attrs)

    def _fold_box(self, r) -> dict:
        """One box for a run's blocks after the first: which, how many, what each compiles to."""
        folded = [v for b in r.blocks[1:] for v in b]
        steps = sorted({self.step_of[v].index for v in folded if v in self.step_of})
        per_block = [s for s in self.plan.steps if set(s.members) & set(r.blocks[0])]
        lines = [f"{r.prefixes[1]} … {r.prefixes[-1]}"] if r.prefixes[1] else []
        lines.append(f"each like {r.prefixes[0] or 'the first block'}: {len(r.blocks[0])} ops in "
                     f"{len(per_block)} steps, {sum(1 for s in per_block if s.fused)} fused")
        if steps:
            lines.append(f"steps #{steps[0]} … #{steps[-1]}")
        lines.append(f"{style.count_text(sum(self.src.node(v).meta['params'] for v in folded))} params in all")
        params = {v for u in folded for v in self.src.node(u).inputs if self.src.node(v).op == PARAM}
        cold = bool(params) and params <= self.frozen
        if cold:
            lines.append(("frozen: no gradient", style.FROZEN_MARK))
        attrs = {**style.BLOCK_NODE, "label": box_label(f"{r.name} × {r.count - 1} more", lines),
                 "tooltip": ", ".join(folded)}
        if cold:
            attrs.update({k: style.FROZEN[k] for k in ("color", "penwidth")})
        if self.peak and self.peak[0] in folded:
            attrs.update(style.PEAK)
        return attrs

    def _value_lines(self, step) -> list:
        if not self.show_memory:
            return []
        size = style.bytes_text(math.prod(step.shape) * self.plan.dtype.itemsize)
        if step.buffer < 0:
            return [f"{size} (fixed, not batched)"]
        return [(f"■ buffer {step.buffer} · {size} per example", style.buffer_color(step.buffer))]

    def _time_line(self, step) -> str:
        t = self.timings.get(step.name, {})
        parts = [f"{k} {style.seconds_text(v)}" for k, v in t.items() if v]
        return " · ".join(parts) or "not timed"

    def _heat(self, step) -> str:
        return style.heat_color(sum(self.timings.get(step.name, {}).values()) / self.slowest)

    def _peak(self):
        """(node name or grad id to mark, text) for the planned peak (values and workspace)."""
        total = self.memory.get("total")
        if not total:
            return None
        t, steps = total["peak_step"], self.plan.steps
        text = f"▲ memory peak: {style.bytes_text(total['peak'])} per example"
        if t < len(steps):
            return steps[t].members[-1], text
        step = steps[2 * len(steps) - 1 - t]
        return GRAD + step.name, text + " (in backward)"

    # -- boxes ------------------------------------------------------------------------------
    def fused_clusters(self) -> list[Cluster]:
        out = []
        for step in self.plan.steps:
            if not step.fused or any(m in self.run_of for m in step.members):
                continue
            note = self.plan.kernel_note(step)
            lines = ["one fused kernel" + (f": {note}" if note else "")]
            lines += [self._time_line(step)] if self.timings else []
            head = f'<font color="{style.STEP_MARK}"><b>#{step.index}</b></font> <b>{esc(step.pattern)}</b>'
            attrs = {**style.FUSED_CLUSTER, "tooltip": f"{step.name} <- pattern {step.pattern}",
                     "label": "<" + "<br/>".join([head] + [f'<font point-size="9">{esc(x)}</font>'
                                                           for x in lines]) + ">"}
            if self.timings:
                attrs["bgcolor"] = self._heat(step)
            out.append(Cluster(f"step{step.index}", self._ids(step.members), attrs))
        return out

    def near_miss_clusters(self) -> list[Cluster]:
        out = []
        for i, nm in enumerate(self.fusion.get("near_misses", [])):
            if any(v in self.run_of for v in nm["nodes"]):
                continue
            text = [f"<b>✗ not fused: {esc(nm['pattern'])}</b>"]
            text += [f'<font point-size="9">{esc(x)}</font>' for x in wrap(nm["reason"], 52)]
            out.append(Cluster(f"miss{i}", self._ids(nm["nodes"]),
                               {**style.NEAR_MISS, "tooltip": nm["reason"],
                                "label": "<" + '<br align="left"/>'.join(text) + '<br align="left"/>>'}))
        return out

    def block_clusters(self) -> list[Cluster]:
        return block_clusters(self.repeats, self.src, self.hidden) if self.blocks == "cluster" else []

    def _ids(self, members) -> set:
        """Node ids of these members and of the drawn params that feed only them."""
        inside = set(members)
        users = self.src.consumer_map()
        params = {n.name for n in self.src if n.op == PARAM and n.name not in self.hidden
                  and all(u in inside for u, _ in users.get(n.name, []))}
        return {node_id(v) for v in inside | params}

    # -- edges ------------------------------------------------------------------------------
    def edges(self, rejected_misses) -> list:
        marked = {}  # (src, dst) -> near miss drawn on its edges
        for c in rejected_misses:
            nm = self.fusion["near_misses"][int(c.key[4:])]
            for a, b in zip(nm["nodes"], nm["nodes"][1:]):
                marked[(a, b)] = nm
        out, seen = [], set()
        for n in self.src:
            for s in n.inputs:
                tail, head = self.where(s), self.where(n.name)
                if s in self.hidden or tail == head or (tail, head) in seen:
                    continue
                if s in self.run_of or n.name in self.run_of:
                    seen.add((tail, head))  # one edge in or out of a folded run
                out.append((tail, head, self._edge(s, n.name, marked.get((s, n.name)))))
        return out

    def _edge(self, s, dst, near_miss) -> dict:
        attrs = edge_attrs(self.src.node(s), self.show_shapes)
        step = self.step_of.get(s)
        if dst in self.pruned or s in self.pruned:
            attrs.update(style.PRUNED_EDGE)
        elif step is not None and step is self.step_of.get(dst):
            attrs.update(style.INNER_EDGE)  # inside a fused kernel: never stored
        elif self.show_memory and step is not None and step.buffer >= 0 and s == step.members[-1]:
            attrs.update(color=style.buffer_color(step.buffer), penwidth="2.2")
        if near_miss:
            attrs.update(color=style.NEAR_MISS["color"], fontcolor=style.NEAR_MISS["fontcolor"],
                         style="dashed", label=f" ✗ {near_miss['pattern']}: {near_miss['reason']}")
        return attrs

    # -- backward ---------------------------------------------------------------------------
    def grad_id(self, step) -> str:
        return GRAD + self.where(step.members[-1])

    def backward(self, same_rank: list) -> list:
        """Add one node per backward step beside its forward value; returns gradient edges."""
        self.bucket_starts = bucket_starts(getattr(self.plan, "bucket_plan", None))
        info = self.plan.graph.meta.get("backward", {})
        fan_in, seeds = info.get("fan_in", {}), set(info.get("seeds", []))
        by_name = {s.name: s for s in self.plan.backward_steps}
        edges, seen = [], set()
        for k, step in enumerate(self.plan.backward_steps):
            gid = self.grad_id(step)
            if gid not in self.nodes:
                self.nodes[gid] = self._grad_node(k, step, fan_in, seeds)
                same_rank.append([self.where(step.members[-1]), gid])
            for p, need in zip(step.inputs, step.needs):
                if need and p in by_name and (self.grad_id(by_name[p]), gid) not in seen:
                    seen.add((self.grad_id(by_name[p]), gid))
                    if self.grad_id(by_name[p]) != gid:
                        # drawn from the earlier value so the sweep lines up with the forward
                        # one; dir=back puts the arrowhead where the gradient arrives
                        edges.append((self.grad_id(by_name[p]), gid, {**style.GRADIENT_EDGE, "dir": "back"}))
            if step.name in seeds:
                edges.append((self.where(step.members[-1]), gid,
                              {**style.GRADIENT_EDGE, "style": "dotted", "label": " seed"}))
        return edges

    def _grad_node(self, k, step, fan_in, seeds) -> dict:
        folded = step.members[-1] in self.run_of
        if folded:
            r = self.repeats[self.run_of[step.members[-1]]]
            title, lines = f"∇ {r.name} × {r.count - 1} more", ["backward of the folded blocks"]
        else:
            title, lines = f"∇ {step.name}", [f"{step.op_name} backward"]
            if step.name in seeds:
                lines.append("seed: d loss = 1")
            if step.name in fan_in:
                lines.append(f"sums {fan_in[step.name]} incoming gradients")
            params = [p for p, need in zip(step.inputs, step.needs) if need and p in self.plan.params]
            if params:
                lines += wrap("→ grads of " + ", ".join(params))
            for i in self.bucket_starts.get(step.name, []):  # data-parallel: compile(bucket_mb=)
                b = self.plan.bucket_plan["buckets"][i]
                lines.append((f"⇄ starts allreduce of bucket {i} ({style.bytes_text(b['bytes'])})",
                              style.GRADIENT_EDGE["color"]))
            for port, (p, need) in enumerate(zip(step.inputs, step.needs)):
                if not need and step.op.needs_grad(port) and p not in self.plan.params:
                    lines.append(f"skips d{p} (nothing needs it)")
        attrs = {**style.BACKWARD, "tooltip": f"backward of {step.name}"}
        if self.timings and not folded:
            spent = self.timings.get(step.name, {}).get("backward", 0)
            lines.append(style.seconds_text(spent))
            attrs["fillcolor"] = style.heat_color(spent / self.slowest)
        if self.peak and self.peak[0] == GRAD + step.name:
            attrs.update(style.PEAK)
            lines.append((self.peak[1], style.PEAK["color"]))
        marks = [] if folded else [(f"#{k}", style.GRADIENT_EDGE["color"])]
        attrs["label"] = box_label(title, lines, marks)
        return attrs

    # -- title ------------------------------------------------------------------------------
    def subtitle(self) -> str:
        plan = self.plan
        fused = sum(1 for s in plan.steps if s.fused)
        parts = [f"{len(plan.steps)} steps", f"{fused} fused",
                 f"{len(self.fusion.get('near_misses', []))} near misses",
                 f"{len(self.pruned)} pruned", f"mode {plan.mode}"]
        if getattr(plan, "bucket_plan", None):
            parts.append(f"{len(plan.bucket_plan['buckets'])} allreduce buckets")
        if self.frozen:
            cold = sum(plan.params[p].size for p in self.frozen if p in plan.params)
            parts.append(f"❄ {style.count_text(cold)} params frozen, "
                         f"{len(plan.backward_steps)} steps run backward")
        if self.run_of:
            parts.append("folded: " + ", ".join(f"{r.name} × {r.count}" for r in self.repeats))
        if self.show_memory and self.memory:
            parts.append(f"peak {style.bytes_text(plan.peak_bytes(1))} per example "
                         f"({style.bytes_text(plan.peak_bytes(1, workspace=False))} of values)")
        if self.timings:
            name, t = max(self.timings.items(), key=lambda kv: sum(kv[1].values()))
            parts.append(f"heat: time per step, slowest {name} {style.seconds_text(sum(t.values()))}")
        return " · ".join(parts)
