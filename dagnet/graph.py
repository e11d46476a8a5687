"""The graph IR: Nodes with ordered inputs, a Graph that owns them, and the builder API.

    g = Graph("lenet")
    x = g.input("x", (1, 28, 28))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, filters=20, size=5)), size=2)
    scores = g.affine(h, 10)
    g.softmax_cross_entropy(scores, y)

A node is `input` (a placeholder; shape without the batch dimension), `param` (a trainable
array with a named initializer; one param node feeding two ops is a shared weight), an op node,
or a loss node. Builder methods create the weight/bias params of their op and compute output
shapes eagerly, so a mistake fails at the line that made it. Analysis results live in
`node.meta` (documented keys: "shape", "params", "fused_group", "pattern"); passes copy the
graph rather than mutate it. `graph.nx` is the networkx MultiDiGraph view (edges keyed by port,
so `add(x, x)` keeps both edges).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from dagnet.errors import AttrError, DagnetError, GraphError, ShapeError
from dagnet.ops import get_op

INPUT, PARAM = "input", "param"
INITIALIZERS = ("gaussian", "he", "xavier", "zeros", "ones", "constant")
# Characters reserved by the compiler: '+' joins the names of a fused group.
_RESERVED = "+"
#: Most values one example (or one param) may hold: 2**40 float32s are 4 TiB. Beyond it a size
#: is a typo, and checking here keeps every later product of sizes inside int64.
MAX_ELEMENTS = 2 ** 40
#: Largest window attr (size, stride, pad) accepted: no image is this large.
MAX_WINDOW = 2 ** 16 - 1
_WINDOW_ATTRS = ("size", "stride", "pad")


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
        """'input', 'param', 'loss' or 'op'."""
        if self.op in (INPUT, PARAM):
            return self.op
        return "loss" if get_op(self.op, self.name).kind == "loss" else "op"

    def copy(self) -> "Node":
        """A copy whose attrs, inputs and meta containers are new. Nested values are shared:
        passes replace meta/attrs entries, they never mutate them in place."""
        return Node(self.name, self.op, dict(self.attrs), list(self.inputs), dict(self.meta))


def _name_of(v) -> str:
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

    def node(self, name) -> Node:
        name = _name_of(name)
        try:
            return self._nodes[name]
        except KeyError:
            raise GraphError(f"no node named '{name}' in graph '{self.name}'") from None

    def __contains__(self, name) -> bool:
        return _name_of(name) in self._nodes

    def __iter__(self):
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        kinds = {}
        for n in self:
            kinds[n.op if n.op in (INPUT, PARAM) else "ops"] = kinds.get(
                n.op if n.op in (INPUT, PARAM) else "ops", 0) + 1
        return f"<Graph '{self.name}': {len(self)} nodes {kinds}, outputs {self.outputs}>"

    def copy(self) -> "Graph":
        g = Graph(self.name)
        g._nodes = {k: n.copy() for k, n in self._nodes.items()}
        g._outputs = None if self._outputs is None else list(self._outputs)
        g.meta = dict(self.meta)
        return g

    def remove_node(self, name) -> None:
        """Delete a node (compiler passes call this on their own copy)."""
        del self._nodes[_name_of(name)]

    def set_nodes(self, nodes) -> None:
        """Replace all nodes by `nodes` (Node objects, in order); for compiler rewrites."""
        self._nodes = {n.name: n for n in nodes}

    def reorder(self, names) -> None:
        """Put the nodes in the given order (a permutation of all names)."""
        names = [_name_of(v) for v in names]
        if sorted(names) != sorted(self._nodes):
            raise GraphError("reorder needs every node name exactly once")
        self._nodes = {k: self._nodes[k] for k in names}

    def consumers(self, name) -> list[tuple[str, int]]:
        """(consumer name, port) for every edge leaving `name`, in node order."""
        return self.consumer_map().get(_name_of(name), [])

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
    def losses(self) -> list[Node]:
        return [n for n in self if n.op not in (INPUT, PARAM) and n.kind == "loss"]

    @property
    def outputs(self) -> list[str]:
        """Declared outputs; by default every loss, else every op node nobody consumes."""
        if self._outputs is not None:
            return list(self._outputs)
        losses = [n.name for n in self.losses]
        if losses:
            return losses
        used = {s for n in self for s in n.inputs}
        return [n.name for n in self if n.op not in (INPUT, PARAM) and n.name not in used]

    @property
    def declared_outputs(self) -> list[str] | None:
        """The outputs set explicitly, or None when the defaults (losses, else sinks) apply."""
        return None if self._outputs is None else list(self._outputs)

    @outputs.setter
    def outputs(self, names) -> None:
        self._outputs = None if names is None else [_name_of(v) for v in names]

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

    # -- low-level construction -------------------------------------------------------------
    def add_node(self, op: str, inputs=(), attrs=None, name: str | None = None) -> Node:
        """Append a node as is (no shape work). Inputs may name nodes added later; the
        compiler's validate pass reports any that never appear."""
        if op not in (INPUT, PARAM):
            get_op(op, name)  # unknown ops fail here, with suggestions
        name = self._fresh_name(op) if name is None else str(name)
        reserved = any(c in name for c in _RESERVED) and _RESERVED not in op  # fused ops may
        if not name or reserved or name != name.strip():
            raise GraphError(f"bad node name {name!r}: names must be non-empty, without "
                             f"surrounding spaces and without '{_RESERVED}' (reserved for fused groups)")
        if name in self._nodes:
            raise GraphError(f"duplicate node name '{name}' (an existing {self._nodes[name].op} "
                             f"node has it); choose another name")
        node = Node(name, op, _plain(dict(attrs or {})), [_name_of(v) for v in inputs])
        self._nodes[name] = node
        return node

    def _fresh_name(self, op: str) -> str:
        i = 1
        while f"{op}{i}" in self._nodes:
            i += 1
        return f"{op}{i}"

    # -- shapes while building -------------------------------------------------------------
    def shape_of(self, v) -> tuple:
        """Per-example output shape of a node (params: full shape), inferred on demand."""
        n = self.node(v)
        if "shape" not in n.meta:
            if n.op in (INPUT, PARAM):
                n.meta["shape"] = tuple(n.attrs["shape"])
            else:
                op = get_op(n.op, n.name)
                op.check_arity(len(n.inputs), n.name)
                shapes = [self.shape_of(s) for s in n.inputs]
                n.meta["shape"] = infer_node_shape(op, n, shapes)
        return n.meta["shape"]

    def _op(self, op: str, inputs, attrs, name) -> Node:
        node = self.add_node(op, inputs, attrs, name)
        try:
            self.shape_of(node)
        except DagnetError:
            del self._nodes[node.name]  # leave the graph as it was before the failing call
            raise
        return node

    # -- builder: placeholders and params ---------------------------------------------------
    def input(self, name: str, shape, dtype: str = "float32") -> Node:
        """A placeholder fed at run time; `shape` excludes the batch dimension."""
        shape = _dims(name, "input", shape)
        if any(d <= 0 for d in shape):
            raise ShapeError(f"{name}: input shape must be positive, got {shape}")
        check_size(name, "input", shape)
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            kind = None
        if kind is None or kind not in "fiu":
            raise GraphError(f"{name}: input dtype must be a float or integer type such as "
                             f"float32 or int64, got {dtype!r}")
        return self.add_node(INPUT, (), {"shape": list(shape), "dtype": str(np.dtype(dtype))}, name)

    def param(self, name: str, shape, init: str = "gaussian", scale: float | None = None,
              value: float | None = None, decay: bool = True, fan_in: int | None = None,
              fan_out: int | None = None) -> Node:
        """A trainable array; `init` one of gaussian (std `scale`), he, xavier, zeros, ones,
        constant (`value`); `decay` says whether L2 weight decay applies (weights yes, biases no)."""
        shape = _dims(name, "param", shape)
        if any(d <= 0 for d in shape):
            raise ShapeError(f"{name}: param shape must be positive, got {shape}")
        check_size(name, "param", shape)
        if not isinstance(init, str) or init not in INITIALIZERS:
            raise GraphError(f"{name}: unknown initializer '{init}'; use one of {', '.join(INITIALIZERS)}")
        attrs = {"shape": list(shape), "init": init, "decay": bool(decay)}
        if scale is not None:
            attrs["scale"] = _real(name, "scale", scale, positive=True)
        if value is not None:
            attrs["value"] = _real(name, "value", value)
        if fan_in is not None or fan_out is not None:
            if fan_in is None or fan_out is None:
                raise GraphError(f"{name}: give both fan_in and fan_out, or neither")
            attrs["fan_in"] = _count(name, "fan_in", fan_in)
            attrs["fan_out"] = _count(name, "fan_out", fan_out)
        return self.add_node(PARAM, (), attrs, name)

    def _weight(self, owner: str, port: str, shape, init, weight_scale, given, fans=(None, None)):
        if given is not None:
            have = self.shape_of(given)
            if tuple(have) != tuple(shape):
                raise ShapeError(f"{owner}: shared param '{_name_of(given)}' has shape {tuple(have)} "
                                 f"but this layer needs {tuple(shape)}")
            return self.node(given)
        fan_in, fan_out = fans if init in ("he", "xavier") else (None, None)
        return self.param(f"{owner}.{port}", shape, init=init, scale=weight_scale,
                          decay=init not in ("zeros", "ones", "constant"),
                          fan_in=fan_in, fan_out=fan_out)

    def _owner_name(self, op: str, name) -> str:
        name = self._fresh_name(op) if name is None else str(name)
        if name in self._nodes:
            raise GraphError(f"duplicate node name '{name}'; choose another name")
        return name

    # -- builder: layers with params -------------------------------------------------------
    def affine(self, x, units: int, init: str = "he", weight_scale: float | None = None,
               name=None, w=None, b=None) -> Node:
        """Fully connected: (N, *) -> (N, units), w (D, units), b (units,)."""
        name = self._owner_name("affine", name)
        units = _count(name, "units", units)
        d = math.prod(self.shape_of(x))
        wn = self._weight(name, "w", (d, units), init, weight_scale, w, (d, units))
        bn = self._weight(name, "b", (units,), "zeros", None, b)
        return self._op("affine", [x, wn, bn], {}, name)

    def conv2d(self, x, filters: int, size, stride=1, pad=0, init: str = "he",
               weight_scale: float | None = None, floor: bool = False, name=None, w=None,
               b=None) -> Node:
        """2-D convolution: (N, C, H, W) -> (N, filters, H', W'), w (filters, C, kh, kw)."""
        name = self._owner_name("conv", name)
        xs = self.shape_of(x)
        if len(xs) != 3:
            raise ShapeError(f"{name}: conv2d needs a (C, H, W) input per example, "
                             f"'{_name_of(x)}' has shape {tuple(xs)}")
        filters = _count(name, "filters", filters)
        kh, kw = _pair(name, "size", size)
        fans = (xs[0] * kh * kw, filters * kh * kw)
        wn = self._weight(name, "w", (filters, xs[0], kh, kw), init, weight_scale, w, fans)
        bn = self._weight(name, "b", (filters,), "zeros", None, b)
        attrs = {"stride": stride, "pad": pad}
        if floor:
            attrs["floor"] = True
        return self._op("conv2d", [x, wn, bn], attrs, name)

    def batchnorm(self, x, eps: float = 1e-5, momentum: float = 0.9, name=None,
                  gamma=None, beta=None) -> Node:
        """Batch normalisation per feature (N, D) or per channel over (N, H, W) for (N, C, H, W)."""
        name = self._owner_name("bn", name)
        xs = self.shape_of(x)
        if len(xs) not in (1, 3):
            raise ShapeError(f"{name}: batchnorm needs a (D,) or (C, H, W) input per example, "
                             f"'{_name_of(x)}' has shape {tuple(xs)}")
        c = xs[0]
        gn = self._weight(name, "gamma", (c,), "ones", None, gamma)
        bn = self._weight(name, "beta", (c,), "zeros", None, beta)
        return self._op("batchnorm", [x, gn, bn], {"eps": eps, "momentum": momentum}, name)

    spatial_batchnorm = batchnorm

    # -- builder: ops without params ----------------------------------------------------------
    def op(self, op: str, *inputs, name=None, **attrs) -> Node:
        """Any registered op (including your own) with the given inputs and attrs."""
        return self._op(op, list(inputs), attrs, name)

    def relu(self, x, name=None) -> Node:
        return self._op("relu", [x], {}, name)

    def leaky_relu(self, x, alpha: float = 0.01, name=None) -> Node:
        return self._op("leaky_relu", [x], {"alpha": alpha}, name)

    def sigmoid(self, x, name=None) -> Node:
        return self._op("sigmoid", [x], {}, name)

    def tanh(self, x, name=None) -> Node:
        return self._op("tanh", [x], {}, name)

    def elu(self, x, alpha: float = 1.0, name=None) -> Node:
        return self._op("elu", [x], {"alpha": alpha}, name)

    def softmax(self, x, name=None) -> Node:
        return self._op("softmax", [x], {}, name)

    def max_pool2d(self, x, size=2, stride=None, pad=0, floor: bool = False, name=None) -> Node:
        return self._op("max_pool2d", [x], _pool_attrs(size, stride, pad, floor), name)

    def avg_pool2d(self, x, size=2, stride=None, pad=0, floor: bool = False, name=None) -> Node:
        return self._op("avg_pool2d", [x], _pool_attrs(size, stride, pad, floor), name)

    def global_avg_pool(self, x, name=None) -> Node:
        return self._op("global_avg_pool", [x], {}, name)

    def dropout(self, x, p: float = 0.5, name=None) -> Node:
        return self._op("dropout", [x], {"p": p}, name)

    def flatten(self, x, name=None) -> Node:
        return self._op("flatten", [x], {}, name)

    def reshape(self, x, shape, name=None) -> Node:
        try:
            target = [_as_int(d) for d in shape]
        except TypeError:
            raise AttrError(f"{name or 'reshape'}: reshape needs a per-example target shape (a "
                            f"list of integers, at most one -1), got {shape!r}") from None
        return self._op("reshape", [x], {"shape": target}, name)

    def add(self, *xs, name=None) -> Node:
        return self._op("add", list(xs), {}, name)

    def concat(self, *xs, axis: int = 1, name=None) -> Node:
        return self._op("concat", list(xs), {"axis": axis}, name)

    def softmax_cross_entropy(self, scores, labels, name=None) -> Node:
        return self._op("softmax_cross_entropy", [scores, labels], {}, name or "loss")

    def svm_loss(self, scores, labels, delta: float = 1.0, name=None) -> Node:
        return self._op("svm_loss", [scores, labels], {"delta": delta}, name or "loss")

    # -- specs ------------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec) -> "Graph":
        """Build from a YAML/JSON file path, a YAML/JSON string, or a dict (see dagnet.spec)."""
        from dagnet.spec import graph_from_spec

        return graph_from_spec(spec)

    def to_spec(self) -> dict:
        """The lossless general-form spec (a plain dict: dump it as YAML or JSON)."""
        from dagnet.spec import graph_to_spec

        return graph_to_spec(self)


def infer_node_shape(op, n: Node, in_shapes: list) -> tuple:
    """op.infer_shape for node n; errors name the node. An attr of the wrong type (say a
    string where a number belongs) is an AttrError, not a Python TypeError/ValueError."""
    check_window_attrs(n)
    try:
        out = tuple(op.infer_shape(in_shapes, n.attrs))
    except DagnetError as e:
        raise type(e)(f"{n.name}: {e}") from None
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
        raise AttrError(f"{n.name}: op '{n.op}' cannot use its attrs {n.attrs} with input "
                        f"shapes {[tuple(s) for s in in_shapes]} ({type(e).__name__}: {e}); "
                        f"check the attr names and types (numbers, not strings)") from None
    check_size(n.name, "output", out)
    return out


def check_size(owner: str, what: str, shape) -> None:
    """ShapeError if a shape holds more than MAX_ELEMENTS values (per example for values)."""
    try:
        count = math.prod(int(d) for d in shape)
    except (TypeError, ValueError):
        return  # not a shape of integers: the caller's own checks report it
    if count > MAX_ELEMENTS:
        raise ShapeError(f"{owner}: {what} shape {tuple(shape)} holds {count:.3g} values"
                         f"{' per example' if what != 'param' else ''}, more than any machine "
                         f"can hold (limit {MAX_ELEMENTS:.3g}); check the sizes, strides and pads")


def check_window_attrs(n: Node) -> None:
    """AttrError for a size/stride/pad attr beyond MAX_WINDOW: no image is that large, and the
    ops' shape arithmetic (and its help text, which searches for a fitting stride) would
    crawl through numbers that big."""
    for key in _WINDOW_ATTRS:
        v = n.attrs.get(key)
        items = v if isinstance(v, (list, tuple)) else [v]
        if any(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a > MAX_WINDOW
               for a in items):
            raise AttrError(f"{n.name}: {n.op} {key} {v!r} is larger than any image "
                            f"(at most {MAX_WINDOW}); check the value")


def _as_int(v) -> int:
    """v as an int if it is an integer (int, numpy integer, or a float such as 3.0); else TypeError."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    raise TypeError(v)


def _dims(owner: str, what: str, shape) -> tuple:
    """A shape as a tuple of ints; ShapeError naming the owner if it is not a sequence of integers."""
    try:
        return tuple(_as_int(d) for d in shape)
    except TypeError:
        hint = " (per example: without the batch dimension)" if what == "input" else ""
        raise ShapeError(f"{owner}: {what} shape must be a sequence of positive integers"
                         f"{hint}, got {shape!r}") from None


def _count(owner: str, key: str, v) -> int:
    """A positive integer builder argument (units, filters, ...); AttrError otherwise."""
    try:
        n = _as_int(v)
    except TypeError:
        n = 0
    if n <= 0:
        raise AttrError(f"{owner}: {key} must be a positive integer, got {v!r}")
    return n


def _pair(owner: str, key: str, v) -> tuple[int, int]:
    """An int or an (int, int) pair of positive integers (kernel sizes); AttrError otherwise."""
    items = [v, v] if np.isscalar(v) else v
    try:
        items = list(items)
        pair = tuple(_as_int(a) for a in items)
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) <= 0:
        raise AttrError(f"{owner}: {key} must be a positive integer or a pair of them, got {v!r}")
    return pair


def _real(owner: str, key: str, v, positive: bool = False) -> float:
    """A number builder argument; AttrError otherwise (and when positive, unless > 0)."""
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    try:
        x = float(v) if ok else None
    except OverflowError:
        x = None
    if x is None or not np.isfinite(x) or (positive and x <= 0):
        raise AttrError(f"{owner}: {key} must be a {'positive ' if positive else ''}finite "
                        f"number, got {v!r}")
    return x


def _plain(v):
    """Attrs as plain YAML/JSON data (tuples -> lists, numpy scalars -> Python), so a spec
    round trip gives back equal attrs."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _pool_attrs(size, stride, pad, floor) -> dict:
    attrs = {"size": size, "stride": size if stride is None else stride, "pad": pad}
    if floor:
        attrs["floor"] = True
    return attrs
