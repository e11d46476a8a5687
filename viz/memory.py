"""The memory plan as a picture: every buffer's values and kernel workspaces over the schedule
(a Gantt chart, forward then backward), and the bytes live at each step with the peak marked and
the workspace explained.

    plot_memory(plan, "memory.png")
"""
from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dagnet.errors import DagnetError
from dagnet.viz import style
from dagnet.viz.plots import DPI, finish_figure, tidy_axes

MAX_NAMED_TICKS = 40  # beyond this many time steps, ticks are numbers, not step names
MAX_LISTED = 4  # workspaces named in the caption, largest first
TRANSIENT = ":transient"  # suffix of the scratch entries that live only during their step
HATCH = "////"  # workspace bars; values are solid
VALUES, KEPT, PASSING = "#6BAED6", "#FD8D3C", "#FDD0A2"
SCRATCH = ("scratch a step makes besides its output: a conv's im2col columns, a max-pool's argmax, "
           "batchnorm's normalised input, the values inside a fused step, a loss's probabilities")


def live_bytes(plan) -> tuple[np.ndarray, np.ndarray]:
    """Bytes per example live at each time step: (values, workspaces), each (timeline,)."""
    mem = _memory(plan)
    values = np.zeros(mem["timeline"])
    for step in plan.steps:
        node = plan.graph.node(step.name)
        if not node.meta.get("batched", True):
            continue
        start, end = node.meta["live"]
        # an in-place value takes over its input's buffer, which is counted at `start`
        values[start + step.inplace:end + 1] += math.prod(step.shape) * plan.dtype.itemsize
    kept, passing = workspace_bytes(plan)
    return values, kept + passing


def workspace_bytes(plan) -> tuple[np.ndarray, np.ndarray]:
    """Workspace bytes per example at each time step: (kept for backward, transient)."""
    mem = _memory(plan)
    kept, passing = np.zeros(mem["timeline"]), np.zeros(mem["timeline"])
    for name, (start, end, size) in mem["workspaces"].items():
        (passing if name.endswith(TRANSIENT) else kept)[start:end + 1] += size
    return kept, passing


def _memory(plan) -> dict:
    mem = plan.graph.meta.get("memory")
    if not mem:
        raise DagnetError("the plan has no memory plan (graph.meta['memory']); compile it with "
                          "dagnet.compile, which runs the memory pass")
    return mem


def _bars(plan, mem) -> list[tuple]:
    """(buffer, left, right, text, is_workspace) for every value, and for every step's scratch
    built in a planned buffer (live to the step's backward when backward keeps it)."""
    bars = []
    for step in plan.steps:
        start, end = plan.graph.node(step.name).meta["live"]
        # an in-place value takes its input's buffer over halfway through its step
        bars.append((step.buffer, start - 0.45 + 0.5 * step.inplace, end + 0.45, step.name, False))
        if step.workspace_buffer >= 0:
            until = mem["workspaces"].get(step.name, (start, start, 0))[1]
            bars.append((step.workspace_buffer, start - 0.45, until + 0.45, f"{step.name} workspace", True))
    return bars


def plot_memory(plan, path=None, figsize=None) -> Figure:
    """Buffer lifetimes (one row per buffer; a bar per value, a hatched bar per kernel
    workspace) over forward and backward steps, above the live bytes per example with the
    planned peak marked and a caption saying what the workspace holds."""
    mem = _memory(plan)
    steps, T = plan.steps, mem["timeline"]
    S = len(steps)
    bars = _bars(plan, mem)
    rows = sorted({b[0] for b in bars} | set(mem["buffers"]))
    width = min(max(8.0, 4 + 0.28 * T), 20.0)
    fig = Figure(figsize=figsize or (width, 3.4 + 0.38 * len(rows) + 2.4), dpi=DPI, layout="constrained")
    gantt, curve = fig.subplots(2, 1, sharex=True,
                                gridspec_kw={"height_ratios": [max(len(rows), 2) * 0.38 + 0.6, 2.4]})
    _draw_gantt(gantt, plan, mem, bars, rows, fig.get_figwidth() * DPI * 0.8 / max(T, 1))
    _draw_curve(curve, plan, mem)
    for ax in (gantt, curve):
        if T > S:
            ax.axvline(S - 0.5, color="#444444", linewidth=1)
        tidy_axes(ax)
    gantt.grid(False, axis="y")
    t = np.arange(T)
    if T <= MAX_NAMED_TICKS:
        curve.set_xticks(t, [_time_name(steps, i) for i in t], rotation=60, ha="right", fontsize=7.5)
    else:
        curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        curve.set_xlabel("time step (forward steps, then their backward in reverse)")
    curve.set_xlim(-0.6, T - 0.4)
    fig.supxlabel(_caption(mem, int(fig.get_figwidth() * 16)), x=0.01, ha="left", fontsize=8,
                  color="#444444", linespacing=1.4)
    return finish_figure(fig, path)


def _draw_gantt(ax, plan, mem, bars, rows, px_per_step) -> None:
    S, T = len(plan.steps), mem["timeline"]
    for buffer, left, right, text, workspace in bars:
        color = "#BBBBBB" if buffer < 0 else style.buffer_color(buffer)
        ax.barh(rows.index(buffer), right - left, left=left, height=0.72, color=color,
                alpha=0.45 if workspace else 1.0, hatch=HATCH if workspace else None,
                edgecolor="white", linewidth=1.5)
        ax.text(left + 0.1, rows.index(buffer), _fit(text, (right - left - 0.15) * px_per_step),
                va="center", ha="left", fontsize=7.5,
                color="white" if buffer >= 0 and not workspace else "#222222")
    kinds = {b: {w for buf, *_, w in bars if buf == b} for b in rows}
    ax.set_yticks(range(len(rows)), [_row_name(b, mem, kinds[b]) for b in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(f"{plan.source.name}: memory plan ({plan.mode}, {plan.dtype}), bytes per example")
    ax.text(S / 2 - 0.5, -0.9, "forward", ha="center", fontsize=9, color="#444444")
    if T > S:
        ax.text(S + S / 2 - 0.5, -0.9, "backward", ha="center", fontsize=9, color="#444444")
    ax.set_ylim(len(rows) - 0.5, -1.3)


def _row_name(buffer: int, mem, kinds: set) -> str:
    if buffer < 0:
        return "fixed"
    what = {frozenset({True}): " · workspace", frozenset({True, False}): " · values, workspace"}
    return f"buffer {buffer} · {style.bytes_text(mem['buffers'][buffer])}" + what.get(frozenset(kinds), "")


def _draw_curve(ax, plan, mem) -> None:
    """Live values, kept and transient workspace stacked; the peak; the no-reuse total."""
    values, _ = live_bytes(plan)
    kept, passing = workspace_bytes(plan)
    # plot in KB or MB so that the ticks fall on round numbers of the unit
    unit, scale = ("MB", 1024.0 ** 2) if mem["total"]["no_reuse"] >= 1024 ** 2 else ("KB", 1024.0)
    t = np.arange(mem["timeline"])
    layers = [(values, VALUES, "values"), (kept, KEPT, "workspace kept for backward"),
              (passing, PASSING, "workspace, transient")]
    below = np.zeros(len(t))
    for data, color, label in layers:
        if data.any() or label == "values":
            ax.fill_between(t, below / scale, (below + data) / scale, step="mid", color=color,
                            alpha=0.85, label=label, linewidth=0)
            below = below + data
    peak_t, peak = mem["total"]["peak_step"], mem["total"]["peak"]
    ax.plot([peak_t], [peak / scale], marker="v", color=style.PEAK["color"], markersize=9)
    # anchored on the side away from the nearer edge, so the label stays inside the chart
    where = peak_t / max(mem["timeline"] - 1, 1)
    ha, dx = ("left", -8) if where < 0.3 else ("right", 8) if where > 0.7 else ("center", 0)
    ax.annotate(f"peak {style.bytes_text(peak)} at {_time_name(plan.steps, peak_t)}", (peak_t, peak / scale),
                textcoords="offset points", xytext=(dx, 9), ha=ha, fontsize=9, color=style.PEAK["color"])
    ax.axhline(mem["total"]["no_reuse"] / scale, color="#777777", linestyle="--", linewidth=1,
               label=f"no reuse: {style.bytes_text(mem['total']['no_reuse'])}")
    ax.set_ylim(0, max(mem["total"]["no_reuse"], peak) / scale * 1.4)
    ax.set_ylabel(f"live {unit} per example")
    ax.legend(frameon=False, fontsize=8, loc="upper left", ncol=2)


def _caption(mem, width: int) -> str:
    """What the workspace is, and which steps keep how much of it, and for how long."""
    kept = {k: v[2] for k, v in mem["workspaces"].items() if not k.endswith(TRANSIENT)}
    passing = {k[:-len(TRANSIENT)]: v[2] for k, v in mem["workspaces"].items() if k.endswith(TRANSIENT)}
    lines = [f"Kernel workspace (hatched bars, orange): {SCRATCH}."]
    if kept:
        lines.append("Kept for backward, from its forward step to that step's backward (the steady "
                     "band): " + _listing(kept) + ".")
    if passing:
        lines.append("Transient, only during its own step: " + _listing(passing) + ".")
    return "\n".join(textwrap.fill(line, width) for line in lines)


def _listing(sizes: dict) -> str:
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])
    # no-break spaces: a line is never broken between a step and its size
    text = ", ".join(f"{name}\u00a0{style.bytes_text(size)}".replace(" ", "\u00a0")
                     for name, size in ranked[:MAX_LISTED])
    rest = ranked[MAX_LISTED:]
    if rest:
        text += f" and {len(rest)} more ({style.bytes_text(sum(s for _, s in rest))})"
    return text


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
