"""Repeated blocks of a graph, found by structure, so that big graphs can be drawn folded.

The op nodes are cut into segments at the values every path goes through (a residual block's
output is one; its inner values are not, the skip edge jumps over them). Each segment is hashed
with networkx's Weisfeiler-Lehman graph hash over op, attrs, output shape and wiring, and runs of
consecutive equal segment sequences become a Repeat: `b × 8`.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass

import networkx as nx

from dagnet.graph import LEAVES, Graph
from dagnet.compiler.shapes import topological_order

MIN_BLOCK_OPS = 2  # a "block" of one op repeated is a chain, not a block


@dataclass
class Repeat:
    """A run of structurally identical consecutive blocks (op node names, in order)."""

    blocks: list
    key: str

    @property
    def count(self) -> int:
        return len(self.blocks)

    @property
    def nodes(self) -> list:
        return [n for b in self.blocks for n in b]

    @property
    def prefixes(self) -> list:
        """Each block's common dotted name prefix ('b3' for b3.conv1, b3.relu, ...), or ''."""
        return [_dotted_prefix(b) for b in self.blocks]

    @property
    def name(self) -> str:
        """What the blocks are called: their shared prefix without the counter, else 'block'."""
        common = os.path.commonprefix(self.prefixes).rstrip("._-0123456789")
        return common or "block"


def find_repeats(graph: Graph) -> list[Repeat]:
    """Runs of >= 2 identical consecutive blocks in `graph` (shapes inferred), in graph order."""
    segments = _segments(graph)
    keys = [_segment_hash(graph, seg, prev) for seg, prev in
            zip(segments, [None] + [s[-1] for s in segments[:-1]])]
    def run(start, period):
        count = 1
        while _equal(keys, start, start + count * period, period):
            count += 1
        if count < 2:
            return None
        blocks = [sum(segments[start + k * period:start + (k + 1) * period], []) for k in range(count)]
        # a chain repeats in every rotation ([relu, body] or [body, relu]): among equal covers,
        # prefer the one whose blocks share the deepest name prefixes (s2.b3.conv1 ... s2.b3.relu)
        named = sum(len(p.split(".")) for p in map(_dotted_prefix, blocks) if p)
        return (count * period, named, -period, -start), blocks

    ops = [0]  # ops[k]: op count of the first k segments
    for seg in segments:
        ops.append(ops[-1] + len(seg))
    repeats, i = [], 0
    while i < len(segments):
        best = None
        periods = _smallest_periods(keys[i:])
        tried = []  # periods whose blocks are big enough
        for period in range(1, (len(segments) - i) // 2 + 1):
            if ops[i + period] - ops[i] < MIN_BLOCK_OPS:
                continue
            q = periods[period - 1]
            if q < period and period % q == 0 and any(period % t == 0 and t % q == 0 for t in tried):
                # copies of a smaller block already tried, which covers at least as much: without
                # this skip a chain of 1,000 alternating ops took 29 s
                continue
            tried.append(period)
            if run(i, period) is None:
                continue
            for start in range(i, i + period):
                found = run(start, period)
                if found is not None and (best is None or found[0] > best[0]):
                    best = (found[0], found[1], start, period)
        if best is None:
            i += 1
            continue
        _, blocks, start, period = best
        repeats.append(Repeat(blocks, "/".join(keys[start:start + period])))
        i = start + len(blocks) * period
    return repeats


def _equal(keys: list, a: int, b: int, length: int) -> bool:
    """keys[a:a+length] == keys[b:b+length], the first keys compared before slicing."""
    return b + length <= len(keys) and keys[a] == keys[b] and keys[a:a + length] == keys[b:b + length]


def _smallest_periods(keys: list) -> list[int]:
    """For each prefix keys[:k+1], its smallest period (KMP failure function), in O(len)."""
    fail = [0] * len(keys)
    for k in range(1, len(keys)):
        j = fail[k - 1]
        while j and keys[k] != keys[j]:
            j = fail[j - 1]
        fail[k] = j + (keys[k] == keys[j])
    return [k + 1 - f for k, f in enumerate(fail)]


def _segments(graph: Graph) -> list[list[str]]:
    """Op nodes in topological order, cut after every node no op-to-op edge jumps over."""
    order = [v for v in topological_order(graph) if graph.node(v).op not in LEAVES]
    pos = {v: i for i, v in enumerate(order)}
    users = graph.consumer_map()
    reach = {v: max([pos[u] for u, _ in users.get(v, [])] + [pos[v]]) for v in order}
    segments, current, furthest = [], [], -1  # furthest: last position an earlier node feeds
    for i, v in enumerate(order):
        current.append(v)
        if furthest <= i:
            segments.append(current)
            current = []
        furthest = max(furthest, reach[v])
    if current:
        segments.append(current)
    return segments


def _segment_hash(graph: Graph, segment: list[str], entry: str | None) -> str:
    """WL hash of a segment's op nodes and edges, plus the previous cut as a node 'in' (so
    which nodes read the block input, e.g. a skip connection, counts)."""
    view = nx.DiGraph()  # the WL hash takes no multigraphs: parallel edges merge their ports
    inside = set(segment)
    for v in segment:
        n = graph.node(v)
        attrs = sorted((k, str(x)) for k, x in n.attrs.items())
        view.add_node(v, label=f"{n.op}|{attrs}|{n.meta.get('shape')}")
    if entry is not None:
        view.add_node("<in>", label="in")
    for v in segment:
        for port, src in enumerate(graph.node(v).inputs):
            tail = src if src in inside else "<in>" if src == entry else None
            if tail is not None:
                ports = view.edges[tail, v]["port"] + "," if view.has_edge(tail, v) else ""
                view.add_edge(tail, v, port=ports + str(port))
    with warnings.catch_warnings():
        # networkx 3.5 changed its directed hashes; they are only compared within one call here
        warnings.simplefilter("ignore", UserWarning)
        return nx.weisfeiler_lehman_graph_hash(view, node_attr="label", edge_attr="port")


def _dotted_prefix(names: list[str]) -> str:
    """The longest common prefix of names that ends at a '.' boundary (without the dot)."""
    common = os.path.commonprefix([n + "." for n in names])
    return re.sub(r"\.[^.]*$", "", common) if "." in common else ""
