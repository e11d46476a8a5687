"""The builder: dagnet.Graph, the IR container (dagnet.ir) with methods that make nodes.

    g = Graph("lenet")
    x = g.input("x", (1, 28, 28))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, filters=20, size=5)), size=2)
    scores = g.affine(h, 10)
    g.softmax_cross_entropy(scores, y)

There is one method per registered op, made from the op's declarations (dagnet.ops.declare):
its data inputs come first, then its attributes in declared order (the course names among
their aliases: num_filters=, filter_size=, hidden=, ...), then `name`, then the params it owns
(`w=`, `b=`, `gamma=`, ...) to share an existing param instead of making one. Every argument is
checked against the declarations and the output shape inferred at once, so a mistake fails at
the line that made it, and a failing call leaves the graph as it was. `g.op(name, *inputs,
**attrs)` adds any registered op (your own too) with the inputs and attrs as given.
"""
from __future__ import annotations

import inspect

import numpy as np

from dagnet.errors import AttrError, CycleError, DagnetError, GraphError, ShapeError, did_you_mean
from dagnet.init import CONSTANT_INITS, FAN_INITS, fans
from dagnet.infer import check_leaf_attrs, infer_node, is_batched, leaf_shape
from dagnet.ir import CONSTANT, INPUT, LEAVES, PARAM, Graph as IRGraph, Node, name_of, plain
from dagnet.ops import get_op, registered_ops
from dagnet.ops.declare import REQUIRED, Same, resolve_default

__all__ = ["Graph", "INPUT", "PARAM", "CONSTANT", "LEAVES", "Node", "build"]


class Graph(IRGraph):
    """A static DAG of named nodes, built op by op (see the module docstring)."""

    #: reads a spec for from_spec: dagnet.spec builds graphs through this builder, so this
    #: module cannot import it; it plugs its reader in here when it loads (the dagnet package
    #: imports it, so Graph.from_spec always works)
    spec_reader = None

    @classmethod
    def from_spec(cls, spec) -> "Graph":
        """Build from a YAML/JSON file path, a YAML/JSON string, or a dict (see dagnet.spec)."""
        return cls.spec_reader(spec, cls)

    # -- shapes while building ---------------------------------------------------------------
    def shape_of(self, v) -> tuple:
        """Output shape of a node, inferred on demand: per example for a batched value (no
        batch axis), else the full shape (params, constants; see batched()).

        Its unshaped ancestors are inferred first by a depth-first walk with a stack of its
        own, not recursion: a long chain listed consumers-first must not exhaust Python's
        stack, and a cycle is a CycleError naming it."""
        n = self.node(v)
        if "shape" in n.meta:
            return n.meta["shape"]
        stack, on_path = [self._enter(n)], {n.name}
        while stack:
            node, pending = stack[-1]
            src = next((s for s in pending if "shape" not in s.meta), None)
            if src is None:
                stack.pop()
                on_path.discard(node.name)
                if "shape" not in node.meta:
                    srcs = [self.node(s) for s in node.inputs]
                    node.meta["shape"], node.meta["batched"] = infer_node(
                        node, srcs, [s.meta["shape"] for s in srcs])
            elif src.name in on_path:
                path = [m.name for m, _ in stack]
                cycle = path[path.index(src.name):][::-1]
                raise CycleError(f"cycle: {' -> '.join(cycle + [cycle[0]])}; a graph must be "
                                 f"acyclic (remove one of these edges)")
            elif src.op in LEAVES:
                src.meta["shape"], src.meta["batched"] = leaf_shape(src), is_batched(src)
            else:
                stack.append(self._enter(src))
                on_path.add(src.name)
        return n.meta["shape"]

    def _enter(self, n: Node) -> tuple:
        """(n, an iterator over its input nodes) for shape_of's walk; leaves (inputs, params,
        constants) are shaped at once."""
        if n.op in LEAVES:
            n.meta["shape"], n.meta["batched"] = leaf_shape(n), is_batched(n)
            return n, iter(())
        get_op(n.op, n.name).check_arity(len(n.inputs), n.name)
        return n, iter([self.node(s) for s in n.inputs])

    def batched(self, v) -> bool:
        """Whether a node's value carries the batch axis (inferred with its shape)."""
        self.shape_of(v)
        return self.node(v).meta["batched"]

    # -- placeholders and params -----------------------------------------------------------
    def input(self, name: str, shape, dtype: str = "float32", batched: bool = True) -> Node:
        """A placeholder fed at run time: a batch of examples of `shape` (the batch dimension
        excluded), or with batched=False one array of exactly `shape`."""
        given = {"shape": shape, "dtype": dtype, "batched": None if batched is True else batched}
        return self.add_node(INPUT, (), check_leaf_attrs(name, INPUT, given), name)

    def constant(self, value, name: str | None = None, shape=None, dtype: str | None = None) -> Node:
        """A fixed, non-trainable array in the graph (never batched): a number, nested lists
        or a numpy array; a number with `shape` fills that shape. Floats take the plan's
        dtype; dtype="int64" makes indices."""
        given = {"value": plain(value), "shape": shape, "dtype": dtype}
        name = self.fresh_name("const") if name is None else str(name)
        return self.add_node(CONSTANT, (), check_leaf_attrs(name, CONSTANT, given), name)

    def param(self, name: str, shape, init: str = "gaussian", scale: float | None = None,
              value: float | None = None, decay: bool | None = None,
              fan_in: int | None = None, fan_out: int | None = None,
              low: float | None = None, high: float | None = None) -> Node:
        """A trainable array; `init` one of gaussian (std `scale`), he, xavier, uniform
        (U(-scale, scale) or U(low, high)), he_uniform, xavier_uniform, torch (PyTorch's
        default), zeros, ones, constant (`value`), as dagnet.init says; `decay` says whether L2
        weight decay applies (default: not for constant initializers, else yes)."""
        given = {"shape": shape, "init": init, "scale": scale, "value": value, "decay": decay,
                 "fan_in": fan_in, "fan_out": fan_out, "low": low, "high": high}
        attrs = check_leaf_attrs(name, PARAM, given)
        if attrs.get("decay") is None:
            attrs["decay"] = attrs["init"] not in CONSTANT_INITS
        order = ("shape", "init", "decay", "scale", "value", "low", "high", "fan_in", "fan_out")
        return self.add_node(PARAM, (), {k: attrs[k] for k in order if attrs.get(k) is not None},
                             name)

    # -- ops ---------------------------------------------------------------------------------
    def op(self, op: str, *inputs, name=None, **attrs) -> Node:
        """Any registered op (including your own) with the given inputs and attrs as they are (a
        number or array given for a port that takes unbatched values becomes a constant)."""
        op = get_op(op, name)
        if not any(_is_literal(v) for v in inputs):
            return _add(self, op, list(inputs), attrs, name)
        name = _node_name(self, op, name)
        before = list(self)
        try:
            return _add(self, op, _constant_operands(self, name, op, list(inputs)), attrs, name)
        except DagnetError:
            self.set_nodes(before)
            raise

    def __getattr__(self, name: str):
        # the builder methods of ops registered after this module loaded (your own ops)
        if not name.startswith("_"):
            op = registered_ops().get(name)
            if op is not None and op.attributes is not None:
                return builder_method(op).__get__(self)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __dir__(self):
        return sorted(set(super().__dir__()) | {n for n, o in registered_ops().items()
                                                  if o.attributes is not None})


# -- one builder method per op -------------------------------------------------------------------
def build(graph: Graph, op, args: tuple, kwargs: dict) -> Node:
    """g.<op>(*args, **kwargs): bind the arguments to the op's declarations, check them, make
    the params the op owns (unless given), add the node and infer its shape."""
    data = [p for p in op.ports if p.batched]
    owned = [p for p in op.ports if not p.batched]
    if any(p.variadic for p in op.ports):
        inputs, kwargs = list(args), dict(kwargs)
    else:
        inputs, kwargs = _bind_positional(op, data, owned, args, kwargs)
    name = _node_name(graph, op, kwargs.pop("name", None))
    given_params = {p.name: kwargs.pop(p.name) for p in owned if kwargs.get(p.name) is not None}
    for p in owned:
        kwargs.pop(p.name, None)
        if p.init is None and p.name not in given_params:
            raise GraphError(f"{name}: {op.name} needs its param '{p.name}' given ({p.name}=...)")
    values = _bind_attrs(name, op, kwargs)
    before = list(graph)
    try:
        inputs = _constant_operands(graph, name, op, inputs)
        params = _params(graph, name, op, inputs, values, given_params) if owned else []
        attrs = {a.name: values[a.name] for a in op.attributes if a.node and a.name in values
                 and (a.keep_default or values[a.name] != a.default)}
        return _add(graph, op, inputs + params, attrs, name)
    except DagnetError:
        graph.set_nodes(before)  # leave the graph as it was before the failing call
        raise


def _bind_positional(op, data, owned, args, kwargs):
    """(data inputs, keywords): positional values fill the data inputs, then the attrs in
    declared order, then name, then the params, as the method's signature shows."""
    kwargs = dict(kwargs)
    slots = [p.name for p in data] + [a.name for a in op.attributes] + ["name"] + \
        [p.name for p in owned]
    if len(args) > len(slots):
        raise GraphError(f"{op.name}() takes at most {len(slots)} positional values "
                         f"({', '.join(slots)}), got {len(args)}")
    for slot, v in zip(slots, args):
        if slot in kwargs:
            raise GraphError(f"{op.name}() got '{slot}' twice (by position and by keyword)")
        kwargs[slot] = v
    inputs = []
    for p in data:
        if p.name not in kwargs:
            raise GraphError(f"{op.name}() needs its input '{p.name}' ({p.doc or 'a value'})")
        inputs.append(kwargs.pop(p.name))
    return inputs, kwargs


def _is_literal(v) -> bool:
    """Whether a builder argument is a number or an array rather than a node (or its name)."""
    import numpy as np

    return isinstance(v, (int, float, list, tuple, np.ndarray, np.generic)) and not isinstance(v, bool)


def _constant_operands(graph: Graph, name: str, op, inputs: list) -> list:
    """The inputs with each number or array given for a port that takes unbatched values made
    a constant node `name.port` (g.mul(x, 2.0)); GraphError for one given elsewhere."""
    out = []
    for i, v in enumerate(inputs):
        if not _is_literal(v):
            out.append(v)
            continue
        port = op.ports[min(i, len(op.ports) - 1)]
        pname = f"{port.name}{i - len(op.ports) + 1}" if port.variadic else port.name
        if not op.takes_either(i):
            raise GraphError(f"{name}: {op.name}'s input '{pname}' takes a batched value, not "
                             f"the number or array {v!r}: give a node")
        dtype = "int64" if op.takes_ints(i) else None
        out.append(graph.constant(v, name=f"{name}.{pname}", dtype=dtype))
    return out


def _node_name(graph: Graph, op, name) -> str:
    if name is None:
        name = "loss" if op.kind == "loss" else graph.fresh_name(op.prefix)
    name = str(name)
    graph.check_fresh(name)
    return name


def _bind_attrs(name: str, op, kwargs: dict) -> dict:
    """{attr: value} from the keywords (aliases resolved), each checked, defaults filled in;
    AttrError naming the node, the op and the attr."""
    decls = list(op.attributes)
    given = {}
    for key, v in kwargs.items():
        a = op.attr(key)
        if a is None:
            known = [x.name for x in decls] + [al for x in decls for al in x.aliases]
            raise AttrError(f"{name} ({op.name}): no attr '{key}'{did_you_mean(key, known)} ({op.name} takes "
                            f"{', '.join(x.name for x in decls) or 'no attrs'})")
        if a.name in given:
            raise AttrError(f"{name} ({op.name}): '{given[a.name][0]}' and '{key}' give the "
                            f"same setting; keep one")
        given[a.name] = (key, v)
    values = {}
    for a in decls:
        key, v = given.get(a.name, (a.name, None))
        if v is None:
            d = resolve_default(a, values)
            if d is REQUIRED:
                raise AttrError(f"{name} ({op.name}): give {a.name} ({a.doc})")
            if d is not None:
                values[a.name] = d
            continue
        problem = a.problem(v)
        if problem:
            raise AttrError(f"{name} ({op.name}): {key} {problem}")
        values[a.name] = v
    return values


def _params(graph: Graph, name: str, op, inputs, values: dict, given: dict) -> list[str]:
    """The op's params: the given ones (shape-checked) or new param nodes `name.port`."""
    read = {k: op.attr(k).read(v) for k, v in values.items()}
    try:
        shapes = op.param_shapes(graph.shape_of(inputs[0]), read)
    except DagnetError as e:
        raise type(e)(f"{name}: {e}") from None
    out = []
    weights = [p for p in op.ports if p.init == "weight"]
    torch_like = bool(weights) and values.get("init") == "torch"
    for p in (p for p in op.ports if not p.batched):
        shape = tuple(shapes[p.name])
        if p.name in given:
            have = tuple(graph.shape_of(given[p.name]))
            if have != shape:
                raise ShapeError(f"{name}: shared param '{name_of(given[p.name])}' has shape "
                                 f"{have} but this layer needs {shape}")
            out.append(name_of(given[p.name]))
            continue
        init = values.get("init", "he") if p.init == "weight" else p.init
        scale = values.get("weight_scale") if p.init == "weight" else None
        value = read[p.value.attr] if isinstance(p.value, Same) else p.value
        decay = None
        if torch_like and p.init == "zeros":
            # PyTorch draws a layer's biases U(+-1/sqrt(fan_in)) with its weight's fan_in
            init, decay = "uniform", False
            scale = float(1 / np.sqrt(fans(tuple(shapes[weights[0].name]), {})[0]))
        fan_in, fan_out = fans(shape, {}) if init in FAN_INITS else (None, None)
        out.append(graph.param(f"{name}.{p.name}", shape, init=init, scale=scale, value=value,
                               decay=decay, fan_in=fan_in, fan_out=fan_out).name)
    return out


def _add(graph: Graph, op, inputs, attrs: dict, name) -> Node:
    node = graph.add_node(op.name, inputs, attrs, name)
    try:
        graph.shape_of(node)
    except DagnetError:
        graph.remove_node(node.name)  # leave the graph as it was before the failing call
        raise
    return node


def builder_method(op):
    """The Graph method that builds a node of `op`, with a signature and a docstring made
    from its declarations."""

    def method(self, *args, **kwargs):
        return build(self, op, args, kwargs)

    method.__name__ = method.__qualname__ = op.name
    method.__signature__ = _signature(op)
    method.__doc__ = _docstring(op)
    return method


def _signature(op) -> inspect.Signature:
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.variadic for p in op.ports)
    for p in op.ports:
        if p.batched:
            params.append(P(f"{p.name}s" if p.variadic else p.name,
                            P.VAR_POSITIONAL if p.variadic else P.POSITIONAL_OR_KEYWORD))
    kind = P.KEYWORD_ONLY if variadic else P.POSITIONAL_OR_KEYWORD
    for a in op.attributes:
        default = P.empty if a.required else None if isinstance(a.default, Same) else a.default
        params.append(P(a.name, kind, default=default))
    params.append(P("name", P.KEYWORD_ONLY if variadic else kind, default=None))
    for p in op.ports:
        if not p.batched:
            params.append(P(p.name, P.KEYWORD_ONLY if variadic else kind, default=None))
    return inspect.Signature(params)


def _docstring(op) -> str:
    lines = [op.doc, ""]
    for a in op.attributes:
        default = "required" if a.required else f"default {a.default!r}"
        also = f"; also {', '.join(a.aliases)}" if a.aliases else ""
        lines.append(f"{a.name}: {a.wanted} ({default}{also}): {a.doc}")
    owned = [p for p in op.ports if not p.batched]
    if owned:
        lines.append(f"{', '.join(p.name for p in owned)}: existing params to use (shared "
                     f"weights) instead of new ones named '<name>.{owned[0].name}', ...")
    return "\n".join(lines)


for _op in registered_ops().values():
    if _op.attributes is not None and not hasattr(Graph, _op.name):
        setattr(Graph, _op.name, builder_method(_op))
Graph.spatial_batchnorm = Graph.batchnorm
