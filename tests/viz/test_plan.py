"""render_plan: fused clusters, step numbers, near misses, pruning, in place, backward, memory,
timings and folded blocks."""
import re

import pytest

import dagnet
from dagnet import DagnetError
from dagnet.viz import render_plan, style
from dagnet.viz.plan import GRAD
from dagnet.viz.style import PRUNED, heat_color
from tests.compiler.nets import residual
from tests.viz import crossed_titles, lenet, needs_dot, resnet, svg_groups, svg_text


def lenet_with_probe():
    """LeNet plus a dead branch (pruned when only the loss is asked for)."""
    g = lenet()
    g.tanh(g.node("pool2"), name="probe")
    return g


@needs_dot
def test_fused_plan_svg_has_one_cluster_per_fused_step(tmp_path):
    plan = dagnet.compile(lenet())
    fused = [s for s in plan.steps if s.fused]
    assert len(fused) == 3
    path = tmp_path / "plan.svg"
    render_plan(plan, path)
    clusters = svg_groups(path, "cluster")
    assert sorted(clusters) == sorted(f"cluster_step{s.index}" for s in fused)
    text = svg_text(path)
    for s in fused:
        assert f"#{s.index}" in text and s.pattern in text
    # fused members keep their own boxes inside the cluster: every declared op is drawn
    nodes = svg_groups(path, "node")
    assert {n.name for n in plan.source if n.op != "param"} == set(nodes)


def test_fused_conv_relu_pool_boxes_name_their_kernel():
    from dagnet.ops.conv import takes_direct
    from dagnet.ops.fused import ConvReLUPool

    plan = dagnet.compile(lenet())
    src = render_plan(plan).source
    # conv1 runs by the direct kernels (where built) or the columns; conv2 takes the rows
    # where the CPU's row kernel pays (AVX2+)
    conv1_direct = takes_direct((1, 28, 28), (20, 1, 5, 5), 1, 0)
    conv2_rows = ConvReLUPool().uses_rows(plan.params["conv2.w"].shape)
    assert src.count("one fused kernel: direct: dense backward") == int(conv1_direct)
    assert src.count("one fused kernel: im2col columns: dense backward") == \
        2 - conv2_rows - conv1_direct
    assert src.count("one fused kernel: patch rows: sparse backward") == int(conv2_rows)


def test_unfused_steps_are_numbered_in_execution_order():
    plan = dagnet.compile(lenet(), fuse=False)
    src = render_plan(plan).source
    found = [int(m) for m in re.findall(r"<b>#(\d+)</b>", src)]
    assert found == list(range(len(plan.steps)))


def test_near_miss_is_dashed_with_its_reason():
    plan = dagnet.compile(lenet(), outputs=["loss", "relu1"])
    miss = plan.graph.meta["fusion"]["near_misses"][0]
    assert "requested output" in miss["reason"]
    src = render_plan(plan).source
    assert "subgraph cluster_miss0" in src and "dashed" in src
    assert "not fused: conv2d+relu+max_pool2d" in src and "is a requested output" in src
    # the miss's dashed box holds the smaller group that did fuse
    body = src.split("subgraph cluster_miss0")[1]
    assert body.index("subgraph cluster_step0") < body.index("}")


def test_mode_near_miss_in_train_mode_names_the_mode():
    src = render_plan(dagnet.compile(residual())).source
    assert "mode &#x27;train&#x27; forbids it" in src or "mode 'train' forbids it" in src


def test_pruned_nodes_are_greyed():
    plan = dagnet.compile(lenet_with_probe(), outputs=["loss"])
    assert plan.graph.meta["pruned"] == ["probe"]
    src = render_plan(plan).source
    line = next(l for l in src.splitlines() if l.strip().startswith("probe ["))
    assert PRUNED["fillcolor"] in line and "pruned" in line
    assert "1 pruned" in src


def test_in_place_steps_are_marked():
    plan = dagnet.compile(residual(), fuse=False)  # fused, its relus run inside their chains
    inplace = [s for s in plan.steps if s.inplace]
    assert inplace
    src = render_plan(plan).source
    for s in inplace:
        assert f"in place: overwrites {s.inputs[0]}" in src


def test_backward_sweep_has_a_node_per_backward_step_and_gradient_edges():
    plan = dagnet.compile(residual())
    src = render_plan(plan, show_backward=True).source
    for s in plan.backward_steps:
        assert f'"{GRAD}{s.members[-1]}"' in src or f"{GRAD}{s.members[-1]} " in src
    # one edge per (step, value): a generic chain reading a value on two ports gets one
    assert src.count("dir=back") == len({
        (s.name, p) for s in plan.backward_steps for p, need in zip(s.inputs, s.needs)
        if need and p in {b.name for b in plan.backward_steps}})
    assert "skips dx" in src and "sums 2 incoming gradients" in src and "seed" in src


def test_backward_of_an_eval_plan_is_refused():
    with pytest.raises(DagnetError, match="mode='train'"):
        render_plan(dagnet.compile(lenet(), mode="eval"), show_backward=True)


def test_memory_shows_buffers_and_marks_the_peak():
    plan = dagnet.compile(residual())
    src = render_plan(plan, show_memory=True).source
    for s in plan.steps:
        if s.buffer >= 0:
            assert f"buffer {s.buffer} ·" in src
    assert src.count("memory peak") == 1
    # the planned total peak (values and kept scratch), 18.2 KB for this net (18.7 KB with
    # its batchnorm+add+relu a generic chain, which keeps its inputs for backward)
    assert f"peak {style.bytes_text(plan.peak_bytes(1))} per example" in src
    assert "peak 18.2 KB per example" in src


def test_timings_color_steps_by_heat():
    plan = dagnet.compile(lenet(), fuse=False)
    slow = plan.steps[0].name
    timings = {s.name: {"forward": 1e-4, "backward": 1e-4} for s in plan.steps}
    timings[slow] = {"forward": 2e-3, "backward": 2e-3}
    src = render_plan(plan, timings=timings).source
    assert heat_color(1.0) in src and heat_color(0.05) in src
    assert f"slowest {slow} 4.00 ms" in src and "forward 2.00 ms · backward 2.00 ms" in src


@needs_dot
def test_everything_at_once_renders(tmp_path):
    plan = dagnet.compile(residual())
    timings = {s.name: {"forward": 1e-4 * (i + 1), "backward": 2e-4} for i, s in enumerate(plan.steps)}
    path = tmp_path / "all.svg"
    render_plan(plan, path, show_backward=True, show_memory=True, timings=timings,
                collapse_params=False, rankdir="LR")
    nodes = svg_groups(path, "node")
    assert len(nodes) == len(plan.source) + len(plan.backward_steps)


@needs_dot
def test_big_plan_folds_repeated_blocks_but_shows_the_first(tmp_path):
    plan = dagnet.compile(resnet(blocks=8))
    path = tmp_path / "resnet.svg"
    render_plan(plan, path, show_backward=True)
    text = svg_text(path)
    assert "b × 7 more" in text and "b2 … b8" in text
    nodes = set(svg_groups(path, "node"))
    assert "b1.conv1" in nodes and "b5.conv1" not in nodes
    assert len(nodes) < 40
    unfolded = render_plan(plan, blocks=None).source
    assert "b5.conv1" in unfolded and "more" not in unfolded
    assert "subgraph cluster_run0" in render_plan(plan, blocks="cluster").source


@needs_dot
@pytest.mark.parametrize("make, kw", [(lenet, {"show_backward": True}), (residual, {}),
                                      (residual, {"show_memory": True, "rankdir": "LR"}),
                                      (lambda: resnet(blocks=3), {"blocks": "cluster"})])
def test_no_edge_runs_through_a_group_title(make, kw):
    plan = dagnet.compile(make())
    dot = render_plan(plan, **kw)
    assert crossed_titles(dot) == []
