import pytest

import dagnet
from dagnet import Graph
from dagnet.errors import CycleError, GraphError, ShapeError, UnknownOpError
from tests.compiler import nets


def test_cycle_is_printed():
    g = Graph("loop")
    x = g.input("x", (3,))
    g.add_node("relu", ["b"], name="a")
    g.add_node("add", ["a", "x"], name="b")
    with pytest.raises(CycleError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        dagnet.compile(g)


def test_unknown_op_suggests():
    g = Graph()
    with pytest.raises(UnknownOpError, match="unknown op 'rleu'.*'relu'"):
        g.add_node("rleu", ["x"])


def test_missing_input_names_node_and_port():
    g = Graph()
    g.input("x", (3,))
    g.add_node("relu", ["nope"], name="r")
    with pytest.raises(GraphError, match=r"r: input 0 \('x'\) names 'nope', which is not a node"):
        dagnet.compile(g)


def test_arity():
    g = Graph()
    g.input("x", (3,))
    g.add_node("relu", ["x", "x"], name="r")
    with pytest.raises(GraphError, match="r: op 'relu' takes 1 inputs"):
        dagnet.compile(g)


def test_duplicate_names():
    g = Graph()
    g.input("x", (3,))
    with pytest.raises(GraphError, match="duplicate node name 'x'"):
        g.input("x", (4,))
    with pytest.raises(GraphError, match="reserved"):
        g.input("a+b", (4,))


def test_shape_mismatch_names_node_op_and_shapes():
    g = Graph()
    x = g.input("x", (1, 8, 8))
    g.conv2d(x, 4, 3, name="conv1")
    g.param("w2", (4, 3, 3, 3))
    g.param("b2", (4,))
    g.add_node("conv2d", ["conv1", "w2", "b2"], {"stride": 1, "pad": 0}, name="conv2")
    with pytest.raises(ShapeError, match=r"conv2 \(conv2d.*conv1 \(4, 6, 6\).*4 channels.*3"):
        dagnet.compile(g, outputs=["conv2"])


def test_builder_fails_at_the_line_that_made_the_mistake():
    g = Graph()
    x = g.input("x", (3, 5, 5))
    with pytest.raises(ShapeError, match="conv1"):
        g.conv2d(x, 4, 7, name="conv1")  # kernel larger than the input
    assert "conv1" not in g  # the failing layer left nothing behind


def test_param_where_data_expected():
    g = Graph()
    g.input("x", (3,))
    w = g.param("w", (3, 2))
    g.add_node("max_pool2d", ["w"], {"size": 2}, name="r")
    with pytest.raises(ShapeError, match="r: op 'max_pool2d' input 0 .* must be a batched value"):
        dagnet.compile(g, outputs=["r"])
    g.remove_node("r")
    g.add_node("relu", ["w"], name="ok")  # elementwise ops take values without a batch axis
    assert dagnet.compile(g, outputs=["ok"]).forward({})["ok"].shape == (3, 2)


def test_every_pass_keeps_the_graph_valid():
    """Validation after every pass (fx's lint): each intermediate graph stays a valid DAG
    whose inputs all exist."""
    from dagnet.compiler import run_passes, validate

    seen = []

    def lint(name, g):
        seen.append(name)
        for n in g:
            for s in n.inputs:
                assert s in g, f"after {name}: {n.name} reads missing {s}"
        validate(g)

    run_passes(nets.residual(), trace=lint)
    assert seen == ["validate", "infer_shapes", "prune", "fuse", "schedule", "autodiff", "memory"]
