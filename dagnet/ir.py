"""The graph IR: Nodes with ordered inputs, the Graph container that owns them and THE
topological order. (dagnet.infer checks a node and infers its shape; dagnet.graph, the builder,
adds the methods that make nodes.)

A node is `input` (a placeholder fed at run time: by default a batch of examples, its shape
without the batch dimension; with `batched: false` one array of its full shape), `param` (a
trainable array with a named initializer; one param node feeding two ops is a shared weight),
`constant` (a fixed array written in the graph: a number, or nested lists of numbers), an op
node, or a loss node. Inputs, params and constants are the leaves (LEAVES): no inputs, no step. Analysis results live in `node.meta` (the compiler documents its keys); passes
copy the graph rather than mutate it. `graph.nx` is the networkx MultiDiGraph view (edges keyed
by port, so `add(x, x)` keeps both edges). The builder (dagnet.graph) adds the methods that
make nodes with checked arguments and the params of layers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from dagnet.errors import CycleError, GraphError, did_you_mean
from dagnet.init import PARAM_ATTRS
from dagnet.ops import get_op
from dagnet.ops.declare import REQUIRED, Attr

INPUT, PARAM, CONSTANT = "input", "param", "constant"
#: the node kinds that are no ops: they have no inputs and are no steps of a plan
LEAVES = (INPUT, PARAM, CONSTANT)
#: the attributes of an input node
INPUT_ATTRS = (
    Attr("shape", "dims", REQUIRED, doc="per-example shape, without the batch dimension "
         "([] for a label); with batched false, the full shape",
         hint="per example: without the batch dimension"),
    Attr("dtype", "dtype", "float32", doc="float32/float64 for data, int64 for class labels "
         "and indices"),
    Attr("batched", "bool", True, doc="whether it is fed as a batch of examples (N, *shape); "
         "false: one array of exactly `shape`"),
)
#: the attributes of a constant node
CONSTANT_ATTRS = (
    Attr("value", "tensor", REQUIRED, doc="a number, or nested lists of numbers (one array)"),
    Attr("shape", "dims", None, doc="the shape a single number fills (default: the value's "
         "own shape)"),
    Attr("dtype", "dtype", "float32", doc="float32/float64: the plan's float dtype; int64: "
         "indices"),
)
#: the declared attributes of the node kinds that are no ops
LEAF_ATTRS = {INPUT: INPUT_ATTRS, PARAM: PARAM_ATTRS, CONSTANT: CONSTANT_ATTRS}
#: Characters reserved by the compiler: '+' joins the names of a fused group.
RESERVED = "+"
#: the keys of a node in the general spec form (its attrs are the other keys)
NODE_KEYS = ("name", "op", "inputs")


@dataclass
class Node:
    """One node of the IR: a unique name, an op name, static attrs and ordered input names."""

    name: str
    op: str
    attrs: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """'input', 'param', 'constant', 'loss' or 'op'."""
        if self.op in LEAVES:
            return self.op
        return "loss" if get_op(self.op, self.name).kind == "loss" else "op"

    def copy(self) -> "Node":
        """A copy whose attrs, inputs and meta containers are new. Nested values are shared:
        passes replace meta/attrs entries, they never mutate them in place."""
        return Node(self.name, self.op, dict(self.attrs), list(self.inputs), dict(self.meta))


def name_of(v) -> str:
    """The node name of a Node or a name."""
    return v.name if isinstance(v, Node) else str(v)


class Graph:
    """A static DAG of named nodes, kept in insertion order."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self._nodes: dict[str, Node] = {}
        self._outputs: list[str] | None = None
        #: graph-level analysis results of compiler passes ("pruned", "fusion", ...)
        self.meta: dict = {}

    # -- container ------------------------------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def node(self, name, doing: str | None = None) -> Node:
        """The node called name; else GraphError "cannot DOING: no such node ..." (or "no node
        named ...") with the closest name."""
        name = name_of(name)
        try:
            return self._nodes[name]
        except KeyError:
            what = f"cannot {doing}: no such node" if doing else f"no node named '{name}'"
            raise GraphError(f"{what} in graph '{self.name}'{did_you_mean(name, self._nodes)}") from None

    def __contains__(self, name) -> bool:
        return name_of(name) in self._nodes

    def __iter__(self):
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for n in self:
            key = n.op if n.op in LEAVES else "ops"
            kinds[key] = kinds.get(key, 0) + 1
        return f"<Graph '{self.name}': {len(self)} nodes {kinds}, outputs {self.outputs}>"

    def copy(self) -> "Graph":
        g = type(self)(self.name)
        g._nodes = {k: n.copy() for k, n in self._nodes.items()}
        g._outputs = None if self._outputs is None else list(self._outputs)
        g.meta = dict(self.meta)
        return g

    def remove_node(self, name) -> None:
        """Delete a node (compiler passes call this on their own copy)."""
        self.node(name)  # a GraphError naming the closest node if there is none of that name
        del self._nodes[name_of(name)]

    def set_nodes(self, nodes) -> None:
        """Replace all nodes by `nodes` (Node objects, in order); for compiler rewrites."""
        self._nodes = {n.name: n for n in nodes}

    def reorder(self, names) -> None:
        """Put the nodes in the given order (a permutation of all names)."""
        names = [name_of(v) for v in names]
        if sorted(names) != sorted(self._nodes):
            raise GraphError("reorder needs every node name exactly once")
        self._nodes = {k: self._nodes[k] for k in names}

    def consumers(self, name) -> list[tuple[str, int]]:
        """(consumer name, port) for every edge leaving `name`, in node order."""
        return self.consumer_map().get(name_of(name), [])

    def consumer_map(self) -> dict[str, list[tuple[str, int]]]:
        """{value: [(consumer name, port), ...]} for every value with a consumer (one O(edges)
        sweep; passes call it once rather than asking node by node)."""
        users: dict[str, list] = {}
        for n in self:
            for i, s in enumerate(n.inputs):
                users.setdefault(s, []).append((n.name, i))
        return users

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self if n.op == INPUT]

    @property
    def params(self) -> list[Node]:
        return [n for n in self if n.op == PARAM]

    @property
    def constants(self) -> list[Node]:
        return [n for n in self if n.op == CONSTANT]

    @property
    def losses(self) -> list[Node]:
        return [n for n in self if n.op not in LEAVES and n.kind == "loss"]

    @property
    def outputs(self) -> list[str]:
        """Declared outputs; by default every loss, else every op node nobody consumes."""
        if self._outputs is not None:
            return list(self._outputs)
        losses = [n.name for n in self.losses]
        if losses:
            return losses
        used = {s for n in self for s in n.inputs}
        return [n.name for n in self if n.op not in LEAVES and n.name not in used]

    @outputs.setter
    def outputs(self, names) -> None:
        self._outputs = None if names is None else [name_of(v) for v in names]

    @property
    def declared_outputs(self) -> list[str] | None:
        """The outputs set explicitly, or None when the defaults (losses, else sinks) apply."""
        return None if self._outputs is None else list(self._outputs)

    @property
    def nx(self) -> nx.MultiDiGraph:
        """The networkx view: one node per IR node (attribute `node`), one edge per input port."""
        view = nx.MultiDiGraph(name=self.name)
        for i, n in enumerate(self):
            view.add_node(n.name, node=n, index=i)
        for n in self:
            for port, src in enumerate(n.inputs):
                view.add_edge(src, n.name, key=port, port=port)
        return view

    def __eq__(self, other) -> bool:
        """Same name, outputs and nodes (name, op, attrs, inputs) in the same order; meta ignored."""
        if not isinstance(other, Graph):
            return NotImplemented
        mine = [(n.name, n.op, n.attrs, n.inputs) for n in self]
        theirs = [(n.name, n.op, n.attrs, n.inputs) for n in other]
        return self.name == other.name and mine == theirs and self._outputs == other._outputs

    # -- construction -----------------------------------------------------------------------
    def add_node(self, op: str, inputs=(), attrs=None, name: str | None = None) -> Node:
        """Append a node as is (no shape work). Inputs may name nodes added later; the
        compiler's validate pass reports any that never appear."""
        if op not in LEAVES:
            get_op(op, name)  # unknown ops fail here, with suggestions
        name = self.fresh_name(op) if name is None else str(name)
        reserved = any(c in name for c in RESERVED) and RESERVED not in op  # fused ops may
        if not name or reserved or name != name.strip():
            raise GraphError(f"bad node name {name!r}: names must be non-empty, without "
                             f"surrounding spaces and without '{RESERVED}' (reserved for fused groups)")
        self.check_fresh(name)
        given = inputs
        try:
            inputs = None if isinstance(inputs, (str, Node)) else list(inputs)
        except TypeError:
            inputs = None
        if inputs is None or not all(isinstance(v, (str, Node)) for v in inputs):
            raise GraphError(f"{name}: inputs must be a list of node names (or nodes), got "
                             f"{' '.join(repr(given).split()):.60}")
        if attrs is not None and not isinstance(attrs, dict):
            raise GraphError(f"{name}: attrs must be a dict, got {type(attrs).__name__}")
        node = Node(name, op, plain(dict(attrs or {})), [name_of(v) for v in inputs])
        self._nodes[name] = node
        return node

    def check_fresh(self, name: str) -> None:
        """GraphError if a node already has `name`."""
        if name in self._nodes:
            raise GraphError(f"duplicate node name '{name}' (an existing {self._nodes[name].op} "
                             f"node has it); choose another name")

    def fresh_name(self, prefix: str) -> str:
        """prefix1, prefix2, ...: the first that no node has."""
        i = 1
        while f"{prefix}{i}" in self._nodes:
            i += 1
        return f"{prefix}{i}"

    def to_spec(self) -> dict:
        """The lossless general-form spec, every node explicit (params included): plain data
        that YAML or JSON can hold (dagnet.spec reads it back into an equal graph)."""
        nodes = []
        for n in self:
            clash = set(n.attrs) & set(NODE_KEYS)
            if clash:
                raise GraphError(f"{n.name}: attr {sorted(clash)[0]!r} has the name of a node "
                                 f"key; a spec cannot hold it")
            item = {"name": n.name, "op": n.op}
            if n.op not in LEAVES:
                item["inputs"] = list(n.inputs)
            item.update(copy.deepcopy(n.attrs))
            nodes.append(item)
        spec = {"name": self.name, "nodes": nodes}
        # Only declared outputs are written: the default (losses, else sinks) is recomputed.
        if self._outputs is not None:
            spec["outputs"] = list(self._outputs)
        return spec


def topological_order(graph: Graph) -> list[str]:
    """THE order of the graph's nodes: topological, ties broken by insertion index, so every
    pass and interpreter sees one deterministic order."""
    view = graph.nx
    index = nx.get_node_attributes(view, "index")
    try:
        return list(nx.lexicographical_topological_sort(view, key=index.__getitem__))
    except nx.NetworkXUnfeasible:  # every caller (drawing, interpreting, compiling) needs a DAG
        cycle = [u for u, _, _ in nx.find_cycle(view)]
        raise CycleError(f"cycle: {' -> '.join(cycle + [cycle[0]])}; a graph must be acyclic "
                         f"(remove one of these edges)") from None


def plain(v):
    """Attrs as plain YAML/JSON data (tuples and arrays -> lists, numpy scalars -> Python), so
    a spec round trip gives back equal attrs."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v
