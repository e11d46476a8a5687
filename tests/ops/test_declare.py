"""The Op contract's declarations: ports and attributes declared once, and what derives from
them (the legacy port metadata, the builder's methods, the checks every context shares)."""
import inspect

import numpy as np
import pytest

from dagnet import Graph
from dagnet.errors import AttrError, GraphError, ShapeError
from dagnet.ops import get_op, registered_ops
from dagnet.ops.base import EVERY_PORT, Op
from dagnet.ops.declare import REQUIRED, Attr, data, labels, variadic, weight

DECLARED = {n: op for n, op in registered_ops().items() if op.attributes is not None}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_every_built_in_op_declares_ports_attributes_and_a_doc(name):
    op = DECLARED[name]
    assert op.attributes is not None and op.ports and op.doc
    assert all(a.doc for a in op.attributes), [a.name for a in op.attributes if not a.doc]
    names = [a.name for a in op.attributes] + [al for a in op.attributes for al in a.aliases]
    assert len(names) == len(set(names)), f"{name}: an attr name or alias twice"
    # the metadata the compiler and the runtime read derives from the ports
    fixed = [p for p in op.ports if not p.variadic]
    assert op.input_names[:len(fixed)] == tuple(p.name for p in fixed)
    if any(p.variadic for p in op.ports):
        many = next(p for p in op.ports if p.variadic)
        assert op.arity == (len(fixed) + many.least, None) and op.batched_inputs is EVERY_PORT
    else:
        assert op.arity == len(op.ports)
        assert op.batched_inputs == tuple(i for i, p in enumerate(op.ports) if p.batched)


def test_legacy_metadata_derives_from_ports_unless_a_class_sets_it():
    class Mine(Op):
        name = "mine_for_test"
        ports = (data("scores"), labels("y"), weight("w"))
        attributes = ()

    mine = Mine()
    assert (mine.arity, mine.input_names, mine.batched_inputs, mine.differentiable_inputs) == \
        (3, ("scores", "y", "w"), (0, 1), (0, 2))

    class Many(Op):
        ports = (data("a"), variadic("x", 3))
        arity = (4, 9)  # set by the class itself: kept

    assert Many.input_names == ("a", "x0", "x1", "x2", "...") and Many.arity == (4, 9)


@pytest.mark.parametrize("attr, good, bad, wanted", [
    (Attr("n", "int", 1, "[1, inf)"), [1, np.int64(7)], [0, 2.0, True, "3"], "a positive integer"),
    (Attr("s", "pair", 1, "[1, 9]"), [3, [2, 3], (1, 9)], [0, [1, 10], [1, 2, 3], 2.5],
     "a positive integer or a pair of them, up to 9"),
    (Attr("q", "pads", 0, "[0, 9]"), [0, [1, 2], (1, 2, 3, 4)], [-1, [1, 2, 3], [0, 10], 1.0],
     "a non-negative integer, a pair of them (height, width) or four (top, left, bottom, "
     "right), up to 9"),
    (Attr("z", "scales", 1.0, "(0, inf)"), [2, 0.5, [2, 1.5], (np.float32(3), 1)],
     [0, [1, -2], [1, 2, 3], "2", float("inf")], "a positive number or a pair of them "
     "(height, width)"),
    (Attr("p", "number", 0.5, "[0, 1)"), [0, 0.99, np.float32(0.5)], [1, -0.1, float("nan"), "0.5"],
     "a number in [0, 1)"),
    (Attr("e", "number", 1.0, "(0, inf)"), [1e-9], [0, -1, float("inf")], "a positive number"),
    (Attr("d", "number", 1.0, "[0, inf)"), [0, 2], [-1e-9], "a non-negative number"),
    (Attr("b", "bool", False), [True, np.bool_(False)], [1, "true"], "true or false"),
    (Attr("c", "choice", "a", choices=("a", "b")), ["b"], ["c", 1], "one of a, b"),
    (Attr("t", "target", REQUIRED), [[2, -1], (3,), [0, 2]], [[-1, -1], [-2, 2], [2.0]],
     "a list of non-negative integers with at most one -1"),
    (Attr("i", "ints", REQUIRED), [[2, -5], (), [0]], [3, [1.0], "1"], "a list of integers"),
])
def test_one_check_per_kind(attr, good, bad, wanted):
    assert attr.wanted == wanted
    assert all(attr.problem(v) is None for v in good), [v for v in good if attr.problem(v)]
    for v in bad:
        assert attr.problem(v) == f"must be {wanted}, got {v!r}"


def test_read_attrs_fills_defaults_in_the_form_ops_compute_with():
    pool = get_op("max_pool2d")
    assert pool.read_attrs({}) == {"size": (2, 2), "stride": (2, 2), "pad": (0, 0, 0, 0),
                                   "floor": False, "dilation": (1, 1), "ceil_mode": False}
    assert pool.read_attrs({"pad": 1})["pad"] == (1, 1, 1, 1)
    assert pool.read_attrs({"pad": [1, 0]})["pad"] == (1, 0, 1, 0)
    assert pool.read_attrs({"pad": [0, 1, 1, 0]})["pad"] == (0, 1, 1, 0)
    assert pool.read_attrs({"size": [3, 2]})["stride"] == (3, 2)
    assert pool.infer_shape([(3, 6, 6)], {}) == (3, 3, 3)
    with pytest.raises(AttrError, match=r"^reshape: attr 'shape' is required"):
        get_op("reshape").read_attrs({})


def test_builder_signatures_come_from_the_declarations():
    params = list(inspect.signature(Graph.conv2d).parameters)
    assert params == ["self", "x", "filters", "size", "stride", "pad", "init", "weight_scale",
                      "floor", "dilation", "groups", "name", "w", "b"]
    assert list(inspect.signature(Graph.affine).parameters) == \
        ["self", "x", "units", "init", "weight_scale", "name", "w", "b"]
    assert str(inspect.signature(Graph.concat)) == "(self, *xs, axis=1, name=None)"
    assert str(inspect.signature(Graph.max_pool2d)) == \
        "(self, x, size=2, stride=None, pad=0, floor=False, dilation=1, ceil_mode=False, name=None)"
    assert "num_filters" in Graph.conv2d.__doc__ and Graph.spatial_batchnorm is Graph.batchnorm


def test_builder_binds_like_the_signature():
    g = Graph()
    x = g.input("x", (1, 8, 8))
    c = g.conv2d(x, 2, 3, 1, 1, "he", None, False, 1, 1, "c")  # every slot by position
    assert c.name == "c" and g.node("c").attrs == {"stride": 1, "pad": 1}
    r = g.relu(c, "r")  # a name by position, as before
    assert r.name == "r" and g.shape_of(g.max_pool2d(r)) == (2, 4, 4)
    with pytest.raises(GraphError, match=r"relu\(\) takes at most 2 positional values"):
        g.relu(c, "r2", 3)
    with pytest.raises(GraphError, match=r"got 'filters' twice"):
        g.conv2d(x, 2, 3, filters=2)
    with pytest.raises(AttrError, match=r"\(conv2d\): give size"):
        g.conv2d(x, 2)


def test_a_failing_builder_call_leaves_the_graph_as_it_was():
    g = Graph()
    x = g.input("x", (3, 5, 5))
    with pytest.raises(ShapeError, match=r"^conv1 \(conv2d, inputs x \(3, 5, 5\)"):
        g.conv2d(x, 4, 7, name="conv1")
    assert [n.name for n in g] == ["x"]  # neither the node nor the params it made


def test_node_attrs_are_checked_against_the_declarations():
    g = Graph()
    x = g.input("x", (4,))
    with pytest.raises(AttrError, match=r"^r \(relu\): no attr 'alpha' \(relu takes no attrs\)"):
        g.op("relu", x, alpha=0.1, name="r")
    with pytest.raises(AttrError, match=r"^fc \(affine\): 'units' is a builder argument"):
        g.param("w", (4, 2))
        g.param("b", (2,))
        g.op("affine", x, "w", "b", units=2, name="fc")
    assert "r" not in g and "fc" not in g


def test_param_decay_defaults_by_initializer():
    g = Graph()
    assert g.param("w", (2, 2)).attrs["decay"] is True
    assert g.param("b", (2,), init="zeros").attrs["decay"] is False
    assert g.param("c", (2,), init="zeros", decay=True).attrs["decay"] is True


def test_read_attrs_remembers_answers_but_tells_equal_looking_values_apart():
    conv, pool = get_op("conv2d"), get_op("max_pool2d")
    assert conv.read_attrs({"floor": True})["floor"] is True
    with pytest.raises(AttrError, match="floor must be true or false, got 1"):
        conv.read_attrs({"floor": 1})
    assert pool.read_attrs({"size": [2, 3]})["size"] == (2, 3)
    with pytest.raises(AttrError, match=r"size must be .*, got \[2, 3.0\]"):
        pool.read_attrs({"size": [2, 3.0]})
    got = pool.read_attrs({"size": 2})
    got["size"] = "changed"  # a caller's copy: the remembered answer stays
    assert pool.read_attrs({"size": 2})["size"] == (2, 2)


def test_your_own_declared_op_gets_a_builder_method_and_both_spec_forms():
    from dagnet.ops import base, register
    from dagnet.spec import graph_from_spec

    @register
    class Scale(Op):
        """x times a constant factor.  x: any shape -> same shape."""

        name = "scale_for_test"
        short = "scale"
        aliases = ("times_for_test",)
        ports = (data("x", "any shape"),)
        attributes = (Attr("factor", "number", 2.0, doc="the factor", aliases=("k",)),)
        fusion_kind = "elementwise"

        def infer_shape(self, in_shapes, attrs):
            self.read_attrs(attrs)
            return tuple(in_shapes[0])

    try:
        g = Graph()
        x = g.input("x", (3,))
        s = g.scale_for_test(x, k=3.0)
        assert (s.name, s.attrs) == ("scale1", {"factor": 3.0})
        assert "scale_for_test" in dir(g)
        with pytest.raises(AttrError, match=r"scale2 \(scale_for_test\): factor must be a number"):
            g.scale_for_test(x, factor="3")
        seq = graph_from_spec({"input": {"shape": [3]}, "loss": "none",
                               "layers": [{"type": "times_for_test", "k": 3.0}]})
        nodes = graph_from_spec({"nodes": [{"name": "x", "op": "input", "shape": [3]},
                                           {"name": "scale1", "op": "scale_for_test",
                                            "inputs": ["x"], "factor": 3.0}]})
        assert seq == nodes == g == Graph.from_spec(g.to_spec())
        assert seq.node("scale1").attrs == nodes.node("scale1").attrs == {"factor": 3.0}
    finally:
        del base._REGISTRY["scale_for_test"]


def test_index_and_either_ports_declare_dtype_and_batchedness():
    from dagnet.errors import DTypeError
    from dagnet.ops.declare import Port, indices, value

    class Lookup(Op):
        name = "lookup_for_test"
        ports = (indices("ids", "rows to take"), value("table"))
        attributes = ()

    op = Lookup()
    assert (op.int_inputs, op.either_inputs, op.differentiable_inputs) == ((0,), (0, 1), (1,))
    assert op.takes_ints(0) and not op.takes_ints(1) and op.takes_either(1)
    # labels keep their old meaning: batched integers without a gradient
    loss = get_op("softmax_cross_entropy")
    assert loss.takes_ints(1) and not loss.takes_ints(0) and not loss.takes_either(1)
    with pytest.raises(ValueError, match="gets no gradient"):
        Port("i", dtype="int")
    with pytest.raises(ValueError, match="dtype must be one of"):
        Port("i", dtype="int8", grad=False)

    # an integer value feeding a float port, and a float one an index port, fail at build time
    g = Graph()
    g.input("x", (3,))
    g.input("i", (3,), dtype="int64")
    g.add_node("relu", ["i"], name="r")
    with pytest.raises(DTypeError, match="only index ports"):
        g.shape_of("r")
    g.add_node("softmax_cross_entropy", ["x", "x"], name="l")
    with pytest.raises(DTypeError, match="takes integer indices"):
        g.shape_of("l")


def test_an_op_without_declared_ports_takes_labels_by_the_old_rule():
    class OldLoss(Op):
        name = "old_loss_for_test"
        arity, input_names, batched_inputs, differentiable_inputs = 2, ("s", "y"), (0, 1), (0,)

    assert OldLoss().takes_ints(1) and not OldLoss().takes_ints(0)
