"""The vocabulary both spec forms share, derived from the op declarations: op names and their
aliases (conv, fc, bn, ...), the keys of a layer or node (each attribute's name and its
aliases, the course names num_filters, filter_size, hidden, ...), and the value checks, each
SpecError naming its key path (`layers[3].num_filters: must be a positive integer, got -2`).
"""
from __future__ import annotations

from dagnet.errors import DagnetError, GraphError, SpecError
from dagnet.errors import did_you_mean
from dagnet.ops import registered_ops
from dagnet.ops.declare import REQUIRED, Attr, Port


def fail(path: str, wanted: str, v):
    raise SpecError(f"{path}: must be {wanted}, got {v!r}{_yaml_hint(v)}")


def _yaml_hint(v) -> str:
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return ""
        # YAML 1.1 needs a dot in a float: 1e-5 is read as the string '1e-5'.
        return " (a string: write numbers like 1e-5 as 1.0e-5 in YAML)"
    return ""


def mapping(path: str, v) -> dict:
    if not isinstance(v, dict):
        fail(path, "a mapping (key: value)", v)
    return v


def sequence(path: str, v) -> list:
    if not isinstance(v, (list, tuple)):
        fail(path, "a list", v)
    return list(v)


def string(path: str, v) -> str:
    if not isinstance(v, str) or not v:
        fail(path, "a non-empty string (quote names YAML would read as numbers or booleans)", v)
    return v


def check_keys(path: str, item: dict, allowed, required=(), note: str = "") -> None:
    """SpecError for the first unknown or missing key of a mapping."""
    for key in item:
        if key not in allowed:
            raise SpecError(f"{path}: unknown key '{key}'{did_you_mean(key, allowed)} "
                            f"(allowed: {', '.join(allowed)}){note}")
    for key in required:
        if key not in item:
            raise SpecError(f"{path}: missing key '{key}'")


def check_value(path: str, attr, v):
    """v if the declaration `attr` takes it, else a SpecError at `path`."""
    problem = attr.problem(v)
    if problem:
        raise SpecError(f"{path}: {problem}{_yaml_hint(v)}")
    return v


def bind(path: str, item: dict, fixed, decls, note: str = "") -> dict:
    """{attr: value} of a layer or node: its keys other than `fixed` resolved through the
    declarations `decls` (names and aliases), each value checked, the required ones present."""
    allowed = [*fixed, *(a.name for a in decls), *(al for a in decls for al in a.aliases)]
    values, given_as = {}, {}
    for key, value in item.items():
        if key in fixed:
            continue
        a = next((a for a in decls if key == a.name or key in a.aliases), None)
        if a is None:
            raise SpecError(f"{path}: unknown key '{key}'{did_you_mean(key, allowed)} "
                            f"(allowed: {', '.join(allowed)}){note}")
        if a.name in values:
            raise SpecError(f"{path}: '{given_as[a.name]}' and '{key}' give the same setting; "
                            f"keep one")
        values[a.name] = check_value(f"{path}.{key}", a, value)
        given_as[a.name] = key
    for a in decls:
        if a.required and a.name not in values:
            also = f" (also spelled {', '.join(a.aliases)})" if a.aliases else ""
            raise SpecError(f"{path}: missing key '{a.name}'{also}")
    return values


def build(path: str, call, *args, **kwargs):
    """Run a builder call; its structural errors become SpecErrors, the others (ShapeError,
    AttrError, ...) keep their class; both get the key path in front."""
    try:
        return call(*args, **kwargs)
    except GraphError as e:
        raise SpecError(f"{path}: {e}") from None
    except DagnetError as e:
        raise type(e)(f"{path}: {e}") from None


# -- ops by name ---------------------------------------------------------------------------------
def declared_ops() -> dict:
    """The registered ops that declare their attributes (fused ops do not), by name."""
    return {name: op for name, op in registered_ops().items() if op.attributes is not None}


def _by_name(ops) -> dict:
    """{name or alias: op}: names first, so an alias never hides an op of that name."""
    table = {a: op for op in ops for a in op.aliases}
    table.update({op.name: op for op in ops})
    return table


def operand_ports(op) -> list:
    """The data ports after the first that a sequential layer gives as constants (`y: 2.0` of
    `{type: mul}`): those taking unbatched values; a variadic one once, as its second (x1)."""
    data = [p for p in op.ports if p.batched]
    if data and data[0].variadic:  # add's x1; einsum (one operand or more) takes none
        many = data[0].either and data[0].least > 1
        return [Port(f"{data[0].name}1", either=True, doc=data[0].doc)] if many else []
    return [p for p in data[1:]]


def operand_decls(op) -> tuple:
    """The keys of a sequential layer's constant operands, as declarations (numbers or nested
    lists, required)."""
    return tuple(Attr(p.name, "tensor", REQUIRED, doc=f"a constant operand{': ' + p.doc if p.doc else ''}")
                 for p in operand_ports(op))


def layer_types() -> dict:
    """{layer type: op} of the sequential form: ops that are no loss whose first port takes
    the layer below, every other data port a constant the layer gives (mul's y)."""
    def fits(op):
        data = [p for p in op.ports if p.batched]
        if not data or op.kind == "loss" or data[0].dtype != "float":
            return False
        if data[0].variadic:
            return data[0].either
        return all(p.either for p in data[1:])
    return _by_name([op for op in declared_ops().values() if fits(op)])


def losses() -> dict:
    """{loss name or alias: op} for the sequential form's `loss:` key."""
    return _by_name([op for op in declared_ops().values() if op.kind == "loss"])


def op_named(name: str):
    """The op a general-form node names (an op name or an alias), or None."""
    ops = registered_ops()
    if name in ops:
        return ops[name]
    return _by_name([op for op in declared_ops().values() if op.kind != "loss"]).get(name)


def builder_keys(op) -> tuple:
    """The declarations a layer, or a node the builder makes, may set."""
    return tuple(op.attributes)


def node_keys(op) -> tuple:
    """The declarations a node listing all its inputs may set (those stored on the node)."""
    return tuple(a for a in op.attributes if a.node)


def owns_params(op) -> bool:
    """Whether the builder makes params for op (conv2d's w and b)."""
    return any(not p.batched and p.init for p in op.ports)
