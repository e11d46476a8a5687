"""The memory plan as a picture: every value's lifetime in its buffer over the schedule (a Gantt
chart, forward then backward), and the bytes live at each step with the peak marked.

    plot_memory(plan, "memory.png")
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dagnet.errors import DagnetError
from dagnet.viz import style
from dagnet.viz.plots import DPI, finish_figure, tidy_axes

MAX_NAMED_TICKS = 40  # beyond this many time steps, ticks are numbers, not step names


def live_bytes(plan) -> tuple[np.ndarray, np.ndarray]:
    """Bytes per example live at each time step: (values, workspaces), each (timeline,)."""
    mem = _memory(plan)
    values, work = np.zeros(mem["timeline"]), np.zeros(mem["timeline"])
    for step in plan.steps:
        node = plan.graph.node(step.name)
        if not node.meta.get("batched", True):
            continue
        start, end = node.meta["live"]
        # an in-place value takes over its input's buffer, which is counted at `start`
        values[start + step.inplace:end + 1] += math.prod(step.shape) * plan.dtype.itemsize
    for start, end, size in mem["workspaces"].values():
        work[start:end + 1] += size
    return values, work


def _memory(plan) -> dict:
    mem = plan.graph.meta.get("memory")
    if not mem:
        raise DagnetError("the plan has no memory plan (graph.meta['memory']); compile it with "
                          "dagnet.compile, which runs the memory pass")
    return mem


def plot_memory(plan, path=None, figsize=None) -> Figure:
    """Buffer lifetimes (one row per buffer, one bar per value) over forward and backward
    steps, above the live bytes per example with the planned peak marked."""
    mem = _memory(plan)
    steps, T = plan.steps, mem["timeline"]
    S = len(steps)
    rows = sorted({s.buffer for s in steps})
    width = min(max(8.0, 4 + 0.28 * T), 20.0)
    fig = Figure(figsize=figsize or (width, 2.6 + 0.38 * len(rows) + 2.4), dpi=DPI, layout="constrained")
    gantt, curve = fig.subplots(2, 1, sharex=True,
                                gridspec_kw={"height_ratios": [max(len(rows), 2) * 0.38 + 0.6, 2.4]})
    px_per_step = fig.get_figwidth() * DPI * 0.8 / max(T, 1)
    for step in steps:
        start, end = plan.graph.node(step.name).meta["live"]
        # an in-place value takes its input's buffer over halfway through its step
        left, right = start - 0.45 + 0.5 * step.inplace, end + 0.45
        row = rows.index(step.buffer)
        color = "#BBBBBB" if step.buffer < 0 else style.buffer_color(step.buffer)
        gantt.barh(row, right - left, left=left, height=0.72, color=color,
                   edgecolor="white", linewidth=1.5)
        gantt.text(left + 0.1, row, _fit(step.name, (right - left - 0.15) * px_per_step), va="center",
                   ha="left", fontsize=7.5, color="white" if step.buffer >= 0 else "#333333")
    gantt.set_yticks(range(len(rows)),
                     [f"buffer {b} · {style.bytes_text(mem['buffers'][b])}" if b >= 0 else "fixed"
                      for b in rows], fontsize=8)
    gantt.invert_yaxis()
    gantt.set_title(f"{plan.source.name}: memory plan ({plan.mode}, {plan.dtype}), bytes per example")
    values, work = live_bytes(plan)
    # plot in KB or MB so that the ticks fall on round numbers of the unit
    unit, scale = ("MB", 1024.0 ** 2) if mem["total"]["no_reuse"] >= 1024 ** 2 else ("KB", 1024.0)
    values, work = values / scale, work / scale
    t = np.arange(T)
    curve.fill_between(t, 0, values, step="mid", color="#6BAED6", alpha=0.8, label="values")
    curve.fill_between(t, values, values + work, step="mid", color="#FDAE6B", alpha=0.8,
                       label="kernel workspace")
    peak_t, peak = mem["total"]["peak_step"], mem["total"]["peak"]
    curve.plot([peak_t], [peak / scale], marker="v", color=style.PEAK["color"], markersize=9)
    curve.annotate(f"peak {style.bytes_text(peak)} at {_time_name(steps, peak_t)}", (peak_t, peak / scale),
                   textcoords="offset points", xytext=(0, 8), ha="center", fontsize=9,
                   color=style.PEAK["color"])
    curve.axhline(mem["total"]["no_reuse"] / scale, color="#777777", linestyle="--", linewidth=1,
                  label=f"no reuse: {style.bytes_text(mem['total']['no_reuse'])}")
    curve.set_ylim(0, max(mem["total"]["no_reuse"], peak) / scale * 1.18)
    curve.set_ylabel(f"live {unit} per example")
    curve.legend(frameon=False, fontsize=8, loc="upper left", ncol=3)
    for ax in (gantt, curve):
        if T > S:
            ax.axvline(S - 0.5, color="#444444", linewidth=1)
        tidy_axes(ax)
    gantt.grid(False, axis="y")
    gantt.text(S / 2 - 0.5, -0.9, "forward", ha="center", fontsize=9, color="#444444")
    if T > S:
        gantt.text(S + S / 2 - 0.5, -0.9, "backward", ha="center", fontsize=9, color="#444444")
    gantt.set_ylim(len(rows) - 0.5, -1.3)
    if T <= MAX_NAMED_TICKS:
        curve.set_xticks(t, [_time_name(steps, i) for i in t], rotation=60, ha="right", fontsize=7.5)
    else:
        curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        curve.set_xlabel("time step (forward steps, then their backward in reverse)")
    curve.set_xlim(-0.6, T - 0.4)
    return finish_figure(fig, path)


def _time_name(steps, t: int) -> str:
    """'pool' for forward step t, '∇pool' for the backward half of the timeline."""
    S = len(steps)
    return steps[t].name if t < S else "∇" + steps[2 * S - 1 - t].name


def _fit(name: str, pixels: float) -> str:
    """The name cut to what fits in a bar `pixels` wide (about 6 px per character)."""
    chars = int(pixels / 6)
    if len(name) <= chars:
        return name
    return name[:chars - 1] + "…" if chars >= 3 else ""
