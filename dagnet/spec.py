"""YAML/JSON specs <-> Graph, in a sequential and a general form.

Sequential form (a layer stack, as in config-file-driven course code):

    name: lenet
    input: {shape: [1, 28, 28]}        # the input node `x`; dtype float32 unless given
    layers:
      - {type: conv, num_filters: 20, filter_size: 5, stride: 1, pad: 0}
      - {type: relu}
      - {type: pool, size: 2, stride: 2}
      - {type: affine, hidden: 500}
      - {type: relu}
      - {type: affine, hidden: 10}
    loss: softmax                      # softmax (default) | svm | none

Layer types and key names accept the usual aliases (conv/conv2d, pool/max_pool, fc/affine with
hidden/units/num_outputs, bn/batchnorm/spatial_batchnorm, ...; see `_LAYER_TYPES` and
`_KEY_ALIASES`). A layer is named after its type and how many layers of that type came before
(conv1, relu1, pool1, fc1, bn1, drop1, ...); the layer feeding the loss is `scores`; `name:`
overrides both. The labels input is `y` (int64) and the loss node `loss`. Top-level `init` and
`weight_scale` are defaults for every conv and affine layer.

General form (any DAG: skip connections, branches, shared params):

    name: block
    nodes:
      - {name: x, op: input, shape: [16, 8, 8]}
      - {name: conv1, op: conv2d, inputs: [x], filters: 16, size: 3, pad: 1}
      - {name: sum, op: add, inputs: [conv1, x]}
    outputs: [sum]                     # optional: default the losses, else the sinks

A conv2d, affine or batchnorm node that lists only its data input is made by the builder, which
creates its params (`conv1.w`, `conv1.b`); a node that lists every input, params included, is
added as is, its other keys being its attrs. `input` nodes take shape/dtype, `param` nodes
shape/init/scale/value/decay/fan_in/fan_out. `graph_to_spec` writes every node that way, so
Graph -> spec -> Graph is exact, through YAML or JSON text too.

Files are read with a yaml.SafeLoader only (as yaml.safe_load, plus refusing duplicate keys): a
spec is data and never runs code. Every mistake is a
SpecError naming the key path (`layers[3].num_filters: must be a positive integer, got -2`);
shape and attr errors found while building keep their class with the key path prefixed.
"""
from __future__ import annotations

import copy
import difflib
import json
import os

import networkx as nx
import numpy as np
import yaml

from dagnet.errors import DagnetError, GraphError, SpecError
from dagnet.graph import INITIALIZERS, INPUT, PARAM, Graph
from dagnet.ops import registered_ops

_EXTENSIONS = (".yaml", ".yml", ".json")
_NODE_KEYS = ("name", "op", "inputs")


# -- value checks: each takes (key path, value), returns the value or raises SpecError ------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _fail(path: str, wanted: str, v):
    hint = ""
    if isinstance(v, str):
        try:
            float(v)
            # YAML 1.1 needs a dot in a float: 1e-5 is read as the string '1e-5'.
            hint = " (a string: write numbers like 1e-5 as 1.0e-5 in YAML)"
        except ValueError:
            pass
    raise SpecError(f"{path}: must be {wanted}, got {v!r}{hint}")


def _positive_int(path, v):
    if not _is_int(v) or v <= 0:
        _fail(path, "a positive integer", v)
    return v


def _integer(path, v):
    if not _is_int(v):
        _fail(path, "an integer", v)
    return v


def _int_or_pair(minimum: int, wanted: str):
    def check(path, v):
        items = v if isinstance(v, (list, tuple)) and len(v) == 2 else [v]
        if not all(_is_int(a) and a >= minimum for a in items):
            _fail(path, wanted, v)
        return v
    return check


_positive_pair = _int_or_pair(1, "a positive integer or a pair of them")
_nonnegative_pair = _int_or_pair(0, "a non-negative integer or a pair of them")


def _number(path, v):
    if not _is_number(v):
        _fail(path, "a number", v)
    return v


def _positive_number(path, v):
    if not _is_number(v) or v <= 0:
        _fail(path, "a positive number", v)
    return v


def _fraction(path, v):
    if not _is_number(v) or not 0 <= v <= 1:
        _fail(path, "a number in [0, 1]", v)
    return v


def _drop_probability(path, v):
    if not _is_number(v) or not 0 <= v < 1:
        _fail(path, "a drop probability in [0, 1)", v)
    return v


def _boolean(path, v):
    if not isinstance(v, bool):
        _fail(path, "true or false", v)
    return v


def _initializer(path, v):
    if v not in INITIALIZERS:
        _fail(path, f"one of {', '.join(INITIALIZERS)}", v)
    return v


def _dtype(path, v):
    try:
        ok = isinstance(v, str) and np.dtype(v).kind in "fiu"
    except TypeError:
        ok = False
    if not ok:
        _fail(path, "a float or integer dtype name such as float32 or int64", v)
    return v


def _dims(path, v):
    """A per-example or param shape: positive sizes ([] for a scalar such as a label)."""
    if not isinstance(v, (list, tuple)) or not all(_is_int(d) and d > 0 for d in v):
        _fail(path, "a list of positive integers", v)
    return v


def _target_shape(path, v):
    """A reshape target: sizes, at most one of them -1 (inferred)."""
    if not isinstance(v, (list, tuple)) or not all(_is_int(d) and d >= -1 for d in v) \
            or list(v).count(-1) > 1:
        _fail(path, "a list of positive integers with at most one -1", v)
    return v


_CHECKS = {
    "filters": _positive_int, "units": _positive_int, "fan_in": _positive_int,
    "fan_out": _positive_int, "size": _positive_pair, "stride": _positive_pair,
    "pad": _nonnegative_pair, "init": _initializer, "weight_scale": _positive_number,
    "scale": _positive_number, "value": _number, "alpha": _number, "delta": _number,
    "eps": _positive_number, "momentum": _fraction, "p": _drop_probability, "floor": _boolean,
    "decay": _boolean, "axis": _integer, "dtype": _dtype, "shape": _dims,
}


def _schema(*keys, **special) -> dict:
    return {**{k: _CHECKS[k] for k in keys}, **special}


# The keywords of each builder method (`g.conv2d(x, filters=..)`): the keys of a layer, or of a
# general-form node made by the builder. For param-free ops they are also the node's attrs.
_BUILDER_KEYS = {
    "conv2d": _schema("filters", "size", "stride", "pad", "init", "weight_scale", "floor"),
    "affine": _schema("units", "init", "weight_scale"),
    "batchnorm": _schema("eps", "momentum"),
    "max_pool2d": _schema("size", "stride", "pad", "floor"),
    "avg_pool2d": _schema("size", "stride", "pad", "floor"),
    "dropout": _schema("p"),
    "leaky_relu": _schema("alpha"),
    "elu": _schema("alpha"),
    "reshape": _schema(shape=_target_shape),
    "concat": _schema("axis"),
    "svm_loss": _schema("delta"),
    **{op: {} for op in ("relu", "sigmoid", "tanh", "softmax", "global_avg_pool", "flatten",
                         "add", "softmax_cross_entropy")},
}
_REQUIRED = {"conv2d": ("filters", "size"), "affine": ("units",), "reshape": ("shape",)}
# Ops whose builder creates params, with the attrs it writes: a node that lists its params in
# `inputs` carries only these.
_PARAM_OWNER_ATTRS = {"conv2d": ("stride", "pad", "floor"), "affine": (),
                      "batchnorm": ("eps", "momentum")}
_INPUT_KEYS = _schema("shape", "dtype")
_PARAM_KEYS = _schema("shape", "init", "scale", "value", "decay", "fan_in", "fan_out")

# Sequential form: op -> (name prefix, layer type aliases).
_LAYER_TYPES = {
    "conv2d": ("conv", ("conv", "conv2d", "convolution")),
    "max_pool2d": ("pool", ("pool", "max_pool", "maxpool", "max_pool2d")),
    "avg_pool2d": ("avgpool", ("avg_pool", "avgpool", "avg_pool2d")),
    "global_avg_pool": ("gap", ("global_avg_pool", "gap")),
    "affine": ("fc", ("affine", "fc", "dense", "linear")),
    "batchnorm": ("bn", ("batchnorm", "bn", "batch_norm", "spatial_batchnorm")),
    "dropout": ("drop", ("dropout",)),
    "relu": ("relu", ("relu",)),
    "leaky_relu": ("leaky_relu", ("leaky_relu",)),
    "elu": ("elu", ("elu",)),
    "sigmoid": ("sigmoid", ("sigmoid",)),
    "tanh": ("tanh", ("tanh",)),
    "softmax": ("softmax", ("softmax",)),
    "flatten": ("flatten", ("flatten",)),
    "reshape": ("reshape", ("reshape",)),
}
_LAYER_OF = {alias: op for op, (_, aliases) in _LAYER_TYPES.items() for alias in aliases}
# Course-code key names -> builder keywords.
_KEY_ALIASES = {"num_filters": "filters", "filter_size": "size", "kernel_size": "size",
                "pool_size": "size", "padding": "pad", "hidden": "units", "hidden_dim": "units",
                "num_outputs": "units"}
_LOSSES = {"softmax": "softmax_cross_entropy", "softmax_cross_entropy": "softmax_cross_entropy",
           "cross_entropy": "softmax_cross_entropy", "svm": "svm_loss", "svm_loss": "svm_loss",
           "hinge": "svm_loss", "none": None}


# -- helpers for structure and messages --------------------------------------------------------
def _suggest(word, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_keys(path: str, item: dict, allowed, required=(), note: str = "") -> None:
    """SpecError for the first unknown or missing key of a mapping."""
    for key in item:
        if key not in allowed:
            raise SpecError(f"{path}: unknown key '{key}'{_suggest(key, allowed)} "
                            f"(allowed: {', '.join(allowed)}){note}")
    for key in required:
        if key not in item:
            raise SpecError(f"{path}: missing key '{key}'")


def _mapping(path: str, v) -> dict:
    if not isinstance(v, dict):
        _fail(path, "a mapping (key: value)", v)
    return v


def _sequence(path: str, v) -> list:
    if not isinstance(v, (list, tuple)):
        _fail(path, "a list", v)
    return list(v)


def _string(path: str, v) -> str:
    if not isinstance(v, str) or not v:
        _fail(path, "a non-empty string (quote names YAML would read as numbers or booleans)", v)
    return v


def _checked_values(path: str, item: dict, schema: dict) -> dict:
    return {k: schema[k](f"{path}.{k}", v) for k, v in item.items() if k in schema}


def _build(path: str, call, *args, **kwargs):
    """Run a builder call; its structural errors become SpecErrors, the others (ShapeError,
    AttrError, ...) keep their class; both get the key path in front."""
    try:
        return call(*args, **kwargs)
    except GraphError as e:
        raise SpecError(f"{path}: {e}") from None
    except DagnetError as e:
        raise type(e)(f"{path}: {e}") from None


# -- reading -----------------------------------------------------------------------------
class _DuplicateKey(yaml.YAMLError):
    pass


class _SpecLoader(yaml.SafeLoader):
    """yaml.SafeLoader (plain data only, never code) that refuses duplicate keys, which
    PyYAML would otherwise silently resolve to the last value."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:  # an unhashable key: construct_mapping reports it
                break
            if dup:
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                   f"(first at line {seen[key] + 1}); keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _json_pairs(pairs):
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ValueError(f"duplicate key {dup!r}; keep one")
    return dict(pairs)


def _json_loads(text: str):
    """json.loads refusing duplicate keys (ValueError), as the YAML loader does."""
    return json.loads(text, object_pairs_hook=_json_pairs)


def _parse(text: str, where: str, fmt: str) -> object:
    try:
        if fmt == "json":
            return _json_loads(text)
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader: plain data only
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply to be a spec") from None
    except ValueError as e:
        raise SpecError(f"{where}: not valid JSON: {e}") from None
    except _DuplicateKey as e:
        raise SpecError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        # One line: the problem and where (PyYAML's own text spans several, with a caret).
        detail = getattr(e, "problem", None) or str(e).splitlines()[0]
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            detail += f" (line {mark.line + 1}, column {mark.column + 1})"
        raise SpecError(f"{where}: not valid YAML (plain data only: tags such as !!python/... "
                        f"are refused): {detail}") from None


def _read_file(path: str) -> object:
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXTENSIONS:
        raise SpecError(f"{path}: unknown spec extension '{ext}'; use {', '.join(_EXTENSIONS)}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec file: {e}") from None
    return _parse(text, path, "json" if ext == ".json" else "yaml")


def _read(source) -> dict:
    """The spec mapping from a path, a YAML/JSON string or a dict."""
    if isinstance(source, dict):
        return source
    if isinstance(source, os.PathLike):
        data = _read_file(os.fspath(source))
    elif isinstance(source, str):
        one_line = "\n" not in source
        if one_line and (source.lower().endswith(_EXTENSIONS) or os.path.isfile(source)):
            data = _read_file(source)
        elif source.lstrip().startswith(("{", "[")):
            # JSON first: YAML 1.1 would read JSON's 1e-05 as a string.
            try:
                data = _json_loads(source)
            except RecursionError:
                raise SpecError("spec text: nested too deeply to be a spec") from None
            except ValueError:
                data = _parse(source, "spec text", "yaml")
        else:
            data = _parse(source, "spec text", "yaml")
    else:
        raise SpecError(f"spec: expected a file path, a YAML/JSON string or a dict, "
                        f"got {type(source).__name__}")
    return _top_level(data)


def _top_level(data) -> dict:
    if not isinstance(data, dict):
        raise SpecError(f"spec: the top level must be a mapping with 'layers' or 'nodes', "
                        f"got {type(data).__name__} {data!r:.60}")
    return data


# -- sequential form ------------------------------------------------------------------------
def _layer_kwargs(path: str, layer: dict, op: str, defaults: dict) -> dict:
    """Builder keywords of one layer: aliases resolved, values checked, defaults applied."""
    schema = _BUILDER_KEYS[op]
    allowed = ["type", "name", *schema, *(a for a, k in _KEY_ALIASES.items() if k in schema)]
    _check_keys(path, layer, allowed)
    kwargs, given_as = {}, {}
    for key, value in layer.items():
        if key in ("type", "name"):
            continue
        kw = _KEY_ALIASES.get(key, key)
        if kw in kwargs:
            raise SpecError(f"{path}: '{given_as[kw]}' and '{key}' give the same setting; keep one")
        kwargs[kw], given_as[kw] = schema[kw](f"{path}.{key}", value), key
    for kw in _REQUIRED.get(op, ()):
        if kw not in kwargs:
            aliases = [a for a, k in _KEY_ALIASES.items() if k == kw]
            raise SpecError(f"{path}: missing key '{kw}' (also spelled {', '.join(aliases)})")
    return {**{k: v for k, v in defaults.items() if k in schema}, **kwargs}


def _from_sequential(spec: dict) -> Graph:
    _check_keys("spec", spec, ("name", "input", "layers", "loss", "init", "weight_scale"),
                required=("input", "layers"))
    g = Graph(_string("name", spec.get("name", "graph")))
    inp = _mapping("input", spec["input"])
    _check_keys("input", inp, _INPUT_KEYS, required=("shape",))
    x = _build("input", g.input, "x", **_checked_values("input", inp, _INPUT_KEYS))
    loss_name = spec.get("loss", "softmax")
    if loss_name is not None and (not isinstance(loss_name, str) or loss_name not in _LOSSES):
        _fail("loss", f"one of {', '.join(_LOSSES)}", loss_name)
    loss = _LOSSES.get(loss_name)
    labels = g.input("y", (), dtype="int64") if loss else None
    defaults = {k: _CHECKS[k](k, spec[k]) for k in ("init", "weight_scale") if k in spec}
    layers = _sequence("layers", spec["layers"])
    if not layers:
        raise SpecError("layers: must list at least one layer")
    counts: dict[str, int] = {}
    h = x
    for i, layer in enumerate(layers):
        path = f"layers[{i}]"
        layer = _mapping(path, layer)
        if "type" not in layer:
            raise SpecError(f"{path}: missing key 'type'")
        kind = layer["type"]
        if not isinstance(kind, str) or kind not in _LAYER_OF:
            raise SpecError(f"{path}.type: unknown layer type {kind!r}{_suggest(kind, _LAYER_OF)} "
                            f"Known types: {', '.join(sorted(_LAYER_OF))}")
        op = _LAYER_OF[kind]
        kwargs = _layer_kwargs(path, layer, op, defaults)
        counts[op] = counts.get(op, 0) + 1
        name = layer.get("name")
        if name is None:
            prefix = _LAYER_TYPES[op][0]
            name = "scores" if loss and i == len(layers) - 1 else f"{prefix}{counts[op]}"
        h = _build(path, getattr(g, op), h, name=_string(f"{path}.name", name), **kwargs)
    if loss:
        _build("loss", getattr(g, loss), h, labels)
    return g


# -- general form --------------------------------------------------------------------------
def _node_schema(op: str, inputs: list):
    """(schema of the node's other keys or None for any, required keys, built by the builder)."""
    if op == INPUT:
        return _INPUT_KEYS, ("shape",), False
    if op == PARAM:
        return _PARAM_KEYS, ("shape",), False
    if op in _PARAM_OWNER_ATTRS:
        if len(inputs) == 1:
            return _BUILDER_KEYS[op], _REQUIRED.get(op, ()), True
        return _schema(*_PARAM_OWNER_ATTRS[op]), (), False
    return _BUILDER_KEYS.get(op), (), False


def _parse_node(i: int, item) -> dict:
    """One entry of `nodes:` checked: name, op, inputs, attrs, its key path and build kind."""
    path = f"nodes[{i}]"
    item = _mapping(path, item)
    for key in ("name", "op"):
        if key not in item:
            raise SpecError(f"{path}: missing key '{key}'")
    name = _string(f"{path}.name", item["name"])
    path = f"{path} ({name})"
    op = _string(f"{path}.op", item["op"])
    known = [INPUT, PARAM, *registered_ops()]
    if op not in known:
        raise SpecError(f"{path}.op: unknown op {op!r}{_suggest(op, known)} "
                        f"Known ops: {', '.join(sorted(known))}")
    if op in (INPUT, PARAM):
        if "inputs" in item:
            raise SpecError(f"{path}: {op} nodes take no 'inputs'")
        inputs = []
    elif "inputs" not in item:
        raise SpecError(f"{path}: missing key 'inputs'")
    else:
        inputs = _sequence(f"{path}.inputs", item["inputs"])
        for j, src in enumerate(inputs):
            _string(f"{path}.inputs[{j}]", src)
    attrs = {k: v for k, v in item.items() if k not in _NODE_KEYS}
    schema, required, by_builder = _node_schema(op, inputs)
    if schema is not None:
        note = (f" (a {op} node listing its params in inputs takes only its attrs; list only its "
                f"data input to have the builder make the params)"
                if op in _PARAM_OWNER_ATTRS and not by_builder else "")
        _check_keys(path, attrs, [*_NODE_KEYS, *schema], required, note)
        _checked_values(path, attrs, schema)
    return {"index": i, "path": path, "name": name, "op": op, "inputs": inputs, "attrs": attrs,
            "by_builder": by_builder}


def _missing_input(node: dict, j: int, names) -> SpecError:
    src = node["inputs"][j]
    return SpecError(f"{node['path']}.inputs[{j}]: no node named '{src}'{_suggest(src, names)}")


def _add_node(g: Graph, node: dict, declared: set) -> None:
    name, op, attrs, path = node["name"], node["op"], node["attrs"], node["path"]
    if op == INPUT:
        _build(path, g.input, name, **attrs)
    elif op == PARAM:
        if ("fan_in" in attrs) != ("fan_out" in attrs):
            raise SpecError(f"{path}: give both fan_in and fan_out, or neither")
        # Like the builder: weights decay, constant-initialised biases and scales do not.
        constant = attrs.get("init", "gaussian") in ("zeros", "ones", "constant")
        decay = attrs.get("decay", not constant)
        _build(path, g.param, name, **{**attrs, "decay": decay})
    elif node["by_builder"]:
        src = node["inputs"][0]
        if src not in g:
            if src in declared:
                raise SpecError(f"{path}.inputs[0]: '{src}' comes later in the list; a node whose "
                                f"params the builder makes must come after its input")
            raise _missing_input(node, 0, declared)
        _build(f"nodes[{node['index']}]", getattr(g, op), src, name=name, **attrs)
    else:
        _build(path, g.add_node, op, node["inputs"], attrs, name)
        if all(src in g and _has_shape(g.node(src)) for src in node["inputs"]):
            # Inputs known: infer now, so a shape error names this node (not a later consumer).
            _build(f"nodes[{node['index']}]", g.shape_of, name)


def _has_shape(n) -> bool:
    return n.op in (INPUT, PARAM) or "shape" in n.meta


def _infer_shapes(g: Graph, paths: dict) -> None:
    """Infer the shapes left (nodes listed before their inputs) in topological order, so that
    a shape error names its own node's key path."""
    try:
        order = list(nx.topological_sort(g.nx))
    except nx.NetworkXUnfeasible:
        return  # a cycle: compile()'s validate pass reports it, printing the cycle
    for name in order:
        _build(paths.get(name, name), g.shape_of, name)


def _from_general(spec: dict) -> Graph:
    _check_keys("spec", spec, ("name", "nodes", "outputs"), required=("nodes",))
    g = Graph(_string("name", spec.get("name", "graph")))
    nodes = [_parse_node(i, item) for i, item in enumerate(_sequence("nodes", spec["nodes"]))]
    first: dict[str, dict] = {}
    for node in nodes:
        if node["name"] in first:
            raise SpecError(f"{node['path']}.name: duplicate name '{node['name']}' "
                            f"(nodes[{first[node['name']]['index']}] has it too)")
        first[node["name"]] = node
    declared = set(first)
    for node in nodes:
        _add_node(g, node, declared)
    known = [n.name for n in g]
    for node in nodes:
        for j, src in enumerate(node["inputs"]):
            if src not in g:
                raise _missing_input(node, j, known)
    if "outputs" in spec:
        outputs = _sequence("outputs", spec["outputs"])
        for j, out in enumerate(outputs):
            if _string(f"outputs[{j}]", out) not in g:
                raise SpecError(f"outputs[{j}]: no node named '{out}'{_suggest(out, known)}")
        g.outputs = outputs
    _infer_shapes(g, {n["name"]: f"nodes[{n['index']}]" for n in nodes})
    return g


# -- public API ------------------------------------------------------------------------------
def graph_from_spec(spec) -> Graph:
    """A Graph from a spec: a .yaml/.yml/.json path, a YAML/JSON string, or a dict."""
    return _from_data(_read(spec))


def load_spec(path) -> Graph:
    """A Graph from a .yaml/.yml or .json spec file (the format follows the extension)."""
    return _from_data(_top_level(_read_file(os.fspath(path))))


def _from_data(data: dict) -> Graph:
    if "layers" in data and "nodes" in data:
        raise SpecError("spec: give either 'layers' (sequential form) or 'nodes' (general form), "
                        "not both")
    if "layers" in data:
        return _from_sequential(data)
    if "nodes" in data:
        return _from_general(data)
    raise SpecError(f"spec: needs 'layers' (sequential form) or 'nodes' (general form); "
                    f"found keys {', '.join(map(str, data)) or 'none'}")


def graph_to_spec(graph: Graph) -> dict:
    """The general-form spec of a graph, every node explicit (params included): plain data
    that YAML or JSON can hold, from which graph_from_spec rebuilds an equal graph."""
    nodes = []
    for n in graph:
        clash = set(n.attrs) & set(_NODE_KEYS)
        if clash:
            raise SpecError(f"{n.name}: attr {sorted(clash)[0]!r} has the name of a node key; "
                            f"a spec cannot hold it")
        item = {"name": n.name, "op": n.op}
        if n.op not in (INPUT, PARAM):
            item["inputs"] = list(n.inputs)
        item.update(copy.deepcopy(n.attrs))
        nodes.append(item)
    spec = {"name": graph.name, "nodes": nodes}
    # Only declared outputs are written: the default (losses, else sinks) is recomputed.
    if graph.declared_outputs is not None:
        spec["outputs"] = graph.declared_outputs
    return spec


class _FlowMapping(dict):
    """A node of a saved YAML spec: written on one line."""


class _SpecDumper(yaml.SafeDumper):
    pass


_SpecDumper.add_representer(
    _FlowMapping, lambda d, m: d.represent_mapping("tag:yaml.org,2002:map", m, flow_style=True))


def save_spec(graph: Graph, path) -> None:
    """Write graph_to_spec(graph) to a .yaml/.yml (one node per line) or .json file."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXTENSIONS:
        raise SpecError(f"{path}: unknown spec extension '{ext}'; use {', '.join(_EXTENSIONS)}")
    spec = graph_to_spec(graph)
    if ext == ".json":
        text = json.dumps(spec, indent=2) + "\n"
    else:
        spec["nodes"] = [_FlowMapping(n) for n in spec["nodes"]]
        text = yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, default_flow_style=False,
                         width=1000)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)

