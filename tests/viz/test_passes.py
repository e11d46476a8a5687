"""diff and the film strip: what changed between graphs, and what each compiler pass did."""
import dagnet
from dagnet.viz import diff, film_strip, pass_frames
from dagnet.viz.passes import status
from dagnet.viz.style import DIFF
from tests.compiler.nets import residual
from tests.viz import lenet, needs_dot, svg_groups, svg_text


def node_line(src, name):
    return next(l for l in src.splitlines() if l.strip().startswith((f"{name} [", f'"{name}" [')))


def test_diff_colors_added_removed_and_changed_nodes():
    a, b = lenet(), lenet()
    b.remove_node("relu3")
    b.node("fc2").inputs[0] = "fc1"
    b.tanh(b.node("fc2"), name="extra")
    b.node("relu1").op = "tanh"
    assert len(set(DIFF.values())) == len(DIFF)
    src = diff(a, b).source
    assert DIFF["removed"] in node_line(src, "relu3") and "dashed" in node_line(src, "relu3")
    assert DIFF["added"] in node_line(src, "extra")
    assert DIFF["changed"] in node_line(src, "fc2") and "inputs were relu3" in node_line(src, "fc2")
    assert DIFF["changed"] in node_line(src, "relu1") and "was relu" in node_line(src, "relu1")
    assert "penwidth" not in node_line(src, "conv1") and "520 params" in node_line(src, "conv1")
    assert "+ added 1 · − removed 1 · ~ changed 2" in src


def test_diff_of_plans_shows_the_fused_nodes():
    src = diff(dagnet.compile(lenet(), fuse=False), dagnet.compile(lenet())).source
    assert DIFF["added"] in node_line(src, "conv1+relu1+pool1")
    assert DIFF["removed"] in node_line(src, "conv1")


def test_meta_only_changes_are_listed():
    g = lenet()
    h = g.copy()
    h.node("conv1").meta["step"] = 0
    assert status(g.node("conv1"), h.node("conv1")) == "annotated"
    assert "step = 0" in diff(g, h).source


def test_pass_frames_are_the_declared_graph_then_one_per_pass():
    frames = pass_frames(residual())
    assert [name for name, _ in frames] == ["declared", "validate", "infer_shapes", "prune", "fuse",
                                           "schedule", "autodiff", "memory"]
    fuse = frames[4][1].source
    assert "+ added 4" in fuse and "stem+stem_bn+stem_relu" in fuse  # 2 patterns, 2 generic chains
    assert "buffer = " in frames[-1][1].source
    eval_frames = pass_frames(residual(), mode="eval", fuse=False)
    assert [name for name, _ in eval_frames][-2:] == ["schedule", "memory"]


@needs_dot
def test_film_strip_writes_one_picture_per_pass_with_stable_ids(tmp_path):
    paths = film_strip(lenet(), tmp_path / "strip")
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "00_declared.svg", "01_validate.svg", "02_infer_shapes.svg", "03_prune.svg", "04_fuse.svg",
        "05_schedule.svg", "06_autodiff.svg", "07_memory.svg"]
    before, after = set(svg_groups(paths[3], "node")), set(svg_groups(paths[4], "node"))
    assert "conv1" in before and "conv1" in after  # the removed node is still drawn, dashed
    assert after - before == {"conv1+relu1+pool1", "conv2+relu2+pool2", "fc1+relu3"}
    assert "− removed" in svg_text(paths[4])
