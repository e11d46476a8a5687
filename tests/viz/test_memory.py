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
    assert len(gantt.patches) == len(plan.steps)
    labels = [t.get_text() for t in gantt.get_yticklabels()]
    assert labels[0] == "fixed" and all(f"buffer {b} " in " ".join(labels) for b in
                                        {s.buffer for s in plan.steps if s.buffer >= 0})
    peak = [t.get_text() for t in curve.texts]
    mem = plan.graph.meta["memory"]["total"]
    assert plan.steps[mem["peak_step"]].name == "pool"  # late in forward, most values kept
    assert peak == [f"peak {style.bytes_text(mem['peak'])} at pool"] == ["peak 18.1 KB at pool"]
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
