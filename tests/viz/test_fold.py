"""find_repeats and folded drawings: repeated blocks found by structure (WL hash)."""
import pytest

from dagnet import Graph
from dagnet.viz import find_repeats, render_graph
from dagnet.viz.graph import AUTO_FOLD_OPS, annotated
from tests.compiler.nets import residual
from tests.viz import lenet, needs_dot, resnet, svg_groups, svg_text


def test_identical_residual_blocks_form_one_run():
    (run,) = find_repeats(annotated(resnet(blocks=8)))
    assert run.count == 8 and run.name == "b"
    assert run.prefixes == [f"b{i}" for i in range(1, 9)]
    assert run.blocks[0] == ["b1.conv1", "b1.bn1", "b1.relu1", "b1.conv2", "b1.bn2", "b1.add", "b1.relu2"]


def test_blocks_are_found_by_structure_not_by_name():
    g = Graph("anonymous")
    h = g.relu(g.conv2d(g.input("x", (2, 6, 6)), 4, 3, pad=1))
    for _ in range(5):  # auto-named nodes: conv2, bn1, relu2, add1, ... - no block prefixes
        h = g.relu(g.add(g.batchnorm(g.conv2d(h, 4, 3, pad=1)), h))
    (run,) = find_repeats(annotated(g))
    assert run.count == 5 and run.name == "block" and run.prefixes == [""] * 5


def test_a_different_block_breaks_the_run():
    g = resnet(blocks=6)
    g.node("b4.relu1").op = "tanh"  # same shapes, another op: the hash sees it
    runs = find_repeats(annotated(g))
    assert [r.prefixes for r in runs] == [["b1", "b2", "b3"], ["b5", "b6"]]


def test_no_repeats_where_shapes_differ():
    assert find_repeats(annotated(lenet())) == []
    assert find_repeats(annotated(residual())) == []


def test_fold_draws_a_run_as_one_box():
    g = resnet(blocks=8)
    src = render_graph(g, blocks="fold").source
    assert "b × 8" in src and "b1 … b8" in src and "7 ops each" in src
    assert '"b3.conv1" [' not in src and "box3d" in src


def test_auto_folds_only_big_graphs():
    small, big = resnet(blocks=2), resnet(blocks=10)
    assert sum(1 for n in small if n.op not in ("input", "param")) <= AUTO_FOLD_OPS
    assert "box3d" not in render_graph(small).source
    assert sum(1 for n in big if n.op not in ("input", "param")) > AUTO_FOLD_OPS
    assert "b × 10" in render_graph(big).source


@needs_dot
def test_folded_big_graph_is_small_and_readable(tmp_path):
    g = resnet(blocks=14)
    assert len(g) > 100
    path = tmp_path / "big.svg"
    render_graph(g, path)
    nodes = svg_groups(path, "node")
    assert len(nodes) < 15
    assert "b × 14" in svg_text(path)


@needs_dot
@pytest.mark.parametrize("collapse", [True, False])
def test_cluster_mode_boxes_every_block(tmp_path, collapse):
    g = resnet(blocks=3)
    path = tmp_path / "clusters.svg"
    render_graph(g, path, blocks="cluster", collapse_params=collapse)
    clusters = svg_groups(path, "cluster")
    assert sorted(clusters) == sorted(["cluster_run0"] + [f"cluster_block0_{k}" for k in range(3)])
    assert len(svg_groups(path, "node")) == len([n for n in g if not collapse or n.op != "param"])


def test_a_chain_of_a_thousand_ops_folds_into_one_run():
    # every period a multiple of 2 repeats here too; find_repeats once tried them all (29 s)
    g = Graph("chain")
    h = g.input("x", (8,))
    for i in range(500):
        h = g.relu(g.affine(h, 8, name=f"l{i}.fc"), name=f"l{i}.relu")
    (run,) = find_repeats(annotated(g))
    assert run.count == 499 and run.prefixes[:2] == ["l1", "l2"]  # l0 reads the input
    assert [g.node(v).op for v in run.blocks[0]] == ["affine", "relu"]
