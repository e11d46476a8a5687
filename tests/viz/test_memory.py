"""plot_memory and live_bytes: the memory plan as a Gantt chart with the peak marked."""
import numpy as np
import pytest

import dagnet
from dagnet import DagnetError
from dagnet.viz import live_bytes, plot_memory, style
from tests.compiler.nets import residual
from tests.viz import lenet, png_size


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_live_bytes_agree_with_the_planned_peak(mode):
    plan = dagnet.compile(residual(), mode=mode)
    mem = plan.graph.meta["memory"]
    values, work = live_bytes(plan)
    assert len(values) == mem["timeline"] == len(plan.steps) * (2 if mode == "train" else 1)
    assert values.max() == mem["activations"]["peak"]
    assert (values + work).max() == mem["total"]["peak"]
    assert int(np.argmax(values + work)) == mem["total"]["peak_step"]


def test_gantt_has_a_bar_per_value_and_marks_the_peak(tmp_path):
    plan = dagnet.compile(residual())
    fig = plot_memory(plan, tmp_path / "memory.png")
    gantt, curve = fig.axes
    assert len(gantt.patches) == len(plan.steps) + sum(s.workspace_buffer >= 0 for s in plan.steps)
    labels = [t.get_text() for t in gantt.get_yticklabels()]
    assert labels[0] == "fixed" and all(f"buffer {b} " in " ".join(labels) for b in
                                        {s.buffer for s in plan.steps if s.buffer >= 0})
    peak = [t.get_text() for t in curve.texts]
    mem = plan.graph.meta["memory"]["total"]
    # at the end of forward, most values kept (the generic chains keep their inputs)
    assert plan.steps[mem["peak_step"]].name == "loss"
    assert peak == [f"peak {style.bytes_text(mem['peak'])} at loss"] == ["peak 18.2 KB at loss"]
    w, h = png_size(tmp_path / "memory.png")
    assert (w, h) == (round(fig.get_figwidth() * fig.dpi), round(fig.get_figheight() * fig.dpi))


def test_eval_plan_has_no_backward_half(tmp_path):
    plan = dagnet.compile(lenet(), mode="eval")
    fig = plot_memory(plan, tmp_path / "eval.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "forward" in texts and "backward" not in texts


def test_a_plan_without_memory_meta_is_refused():
    plan = dagnet.compile(lenet())
    del plan.graph.meta["memory"]
    with pytest.raises(DagnetError, match="memory"):
        plot_memory(plan)


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_every_buffer_has_a_row_workspace_buffers_included(mode):
    plan = dagnet.compile(lenet(), mode=mode)
    mem = plan.graph.meta["memory"]
    workspace_steps = [s for s in plan.steps if s.workspace_buffer >= 0]
    assert workspace_steps  # the convs build their im2col columns in planned buffers
    gantt = plot_memory(plan).axes[0]
    labels = [t.get_text() for t in gantt.get_yticklabels()]
    assert [l.split(" ·")[0] for l in labels if l.startswith("buffer")] == \
        [f"buffer {b}" for b in sorted(mem["buffers"])]
    # one bar per value and one per step that builds its scratch in a planned buffer
    assert len(gantt.patches) == len(plan.steps) + len(workspace_steps)
    for s in workspace_steps:
        assert "workspace" in next(l for l in labels if l.startswith(f"buffer {s.workspace_buffer} "))
    assert sum(bool(p.get_hatch()) for p in gantt.patches) == len(workspace_steps)  # values solid


def test_peak_label_stays_inside_the_chart():
    plan = dagnet.compile(lenet())
    assert plan.graph.meta["memory"]["total"]["peak_step"] == 1  # near the y-axis
    fig = plot_memory(plan)
    renderer = _drawn(fig)
    curve = fig.axes[1]
    box, label = curve.get_window_extent(renderer), next(t for t in curve.texts if t.get_text().startswith("peak"))
    extent = label.get_window_extent(renderer)
    assert box.x0 <= extent.x0 and extent.x1 <= box.x1


def test_the_workspace_band_is_explained():
    plan = dagnet.compile(lenet())
    fig = plot_memory(plan)
    curve = fig.axes[1]
    legend = [t.get_text() for t in curve.get_legend().get_texts()]
    assert any("kept for backward" in t for t in legend) and any("transient" in t for t in legend)
    caption = " ".join(fig.get_supxlabel().split())  # one space for every break and no-break space
    assert "im2col" in caption
    # the steps whose kept scratch makes the flat band, with their sizes
    for name, (start, end, size) in plan.graph.meta["memory"]["workspaces"].items():
        if ":" not in name and end > start:
            assert f"{name} {style.bytes_text(size)}" in caption
