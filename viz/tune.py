"""Pictures of a hyperparameter search, from the plain rows of dagnet.tune.report.trial_rows:

    plot_optimization_history(rows, "history.png")   each trial's val acc, the best so far, the
                                                     baseline trial (the defaults) as a star
    plot_param_scatter(rows, space, "scatter.png")   val acc against each hyperparameter, and
                                                     the first two numeric ones against each
                                                     other coloured by val acc (the courses'
                                                     learning rate vs regularisation picture)
    plot_importances({"lr": 0.7, ...}, "importance.png")
"""
from __future__ import annotations

import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dagnet.errors import DagnetError
from dagnet.viz.plots import DPI, finish_figure, tidy_axes

_DONE, _PRUNED, _FAILED, _BASELINE = "#2171B5", "#BDBDBD", "#E6550D", "#FDAE6B"


def _floor(values: np.ndarray) -> float | None:
    """A y-axis floor that keeps the range of the good trials readable: the lower Tukey fence
    (Q1 - 1.5 IQR) when trials lie below it (diverged ones at chance level would squash the
    rest into a line), else None."""
    if len(values) < 4:
        return None
    q1, q3 = np.percentile(values, [25, 75])
    fence = q1 - 1.5 * max(q3 - q1, 1e-3)
    return float(fence) if (values < fence).any() else None


def _draw_clipped(ax, x, v, floor, **style):
    """Scatter (x, v); with a floor, the points below it as down-triangles on it, labelled."""
    if floor is None:
        return ax.scatter(x, v, **style)
    low = v < floor
    sc = ax.scatter(x[~low], v[~low], **{k: (a[~low] if k == "c" else a) for k, a in style.items()})
    if low.any():
        ax.scatter(x[low], np.full(low.sum(), floor), marker="v", color="#6A51A3", zorder=3)
        for xi, vi in zip(x[low], v[low]):
            ax.annotate(f"{vi:.2f}", (xi, floor), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7, color="#6A51A3")
        ax.set_ylim(bottom=floor - 0.02 * (v.max() - floor))
    return sc


def _finished(rows):
    return [r for r in rows if r["state"] == "complete" and r["value"] is not None]


def plot_optimization_history(rows: list[dict], path=None, title: str = "") -> Figure:
    """Val acc of every completed trial by trial number, the best so far as a step line;
    pruned trials at their last reported accuracy (grey), failed ones as red ticks."""
    done = _finished(rows)
    if not done:
        raise DagnetError("no completed trial to plot yet")
    fig = Figure(figsize=(8, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    n = np.array([r["number"] for r in done])
    v = np.array([r["value"] for r in done])
    floor = _floor(v)
    _draw_clipped(ax, n, v, floor, color=_DONE, zorder=3, label="completed trial")
    if floor is not None:
        ax.scatter([], [], marker="v", color="#6A51A3", label="far below (value shown)")
    pruned = [(r["number"], list(r["intermediate"].values())[-1]) for r in rows
              if r["state"] == "pruned" and r["intermediate"]]
    if pruned:
        px, pv = (np.array(a) for a in zip(*pruned))
        keep = pv >= floor if floor is not None else np.ones(len(pv), bool)
        ax.scatter(px[keep], pv[keep], color=_PRUNED, marker="X", zorder=2,
                   label="pruned (its last reported val acc)")
    failed = [r["number"] for r in rows if r["state"] in ("fail", "pruned") and not r["intermediate"]]
    if failed:
        for k in failed:
            ax.axvline(k, color=_FAILED, alpha=0.35, linewidth=1)
        ax.plot([], [], color=_FAILED, alpha=0.5, label="failed or diverged")
    base = [r for r in done if r.get("baseline")]
    if base:  # the defaults the search is meant to beat
        b = base[0]
        ax.axhline(b["value"], color=_BASELINE, linestyle="--", linewidth=1, zorder=1)
        ax.scatter([b["number"]], [max(b["value"], floor or b["value"])], marker="*", s=220,
                   color=_BASELINE, edgecolor="black", linewidth=0.5, zorder=4,
                   label=f"baseline: the defaults ({b['value']:.4f})")
    best = np.maximum.accumulate(v)
    ax.step(n, best, where="post", color="#08306B", linewidth=1.8, label="best so far")
    k = int(np.argmax(v))
    ax.annotate(f"best {v[k]:.4f} (trial {n[k]})", (n[k], v[k]), textcoords="offset points",
                xytext=(0, 9), ha="center", fontsize=9)
    ax.set(title=f"optimisation history{': ' + title if title else ''}", xlabel="trial",
           ylabel="validation accuracy")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(frameon=False, loc="lower right")
    tidy_axes(ax)
    return finish_figure(fig, path)


def _axis_values(p, values):
    """Numbers to place the values on an axis, and the tick labels of a choice."""
    if p.kind == "choice":
        labels = [str(c) for c in p.choices]
        return np.array([labels.index(str(x)) for x in values], dtype=float), labels
    return np.array(values, dtype=float), None


def _log_axis(axis, set_scale) -> None:
    """A log axis labelled at powers of ten only (the minor labels 2x10^-2, 3x10^-2, ...
    overlap on a narrow panel)."""
    set_scale("log")
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_param_scatter(rows: list[dict], space, path=None, title: str = "") -> Figure:
    """Val acc against each sampled hyperparameter (log axis for log ranges, jittered columns
    for choices; colour: trial number, so later TPE trials stand out), plus the first two
    numeric hyperparameters against each other, coloured by val acc."""
    done = _finished(rows)
    params = [p for p in space if p.kind != "fixed" and any(p.name in r["params"] for r in done)]
    if not done or not params:
        raise DagnetError("no completed trial with sampled hyperparameters to plot yet")
    numeric = [p for p in params if p.kind in ("float", "int")]
    pair = numeric[:2] if len(numeric) >= 2 else None
    panels = len(params) + (1 if pair else 0)
    cols = min(panels, 3)
    rows_n = -(-panels // cols)
    fig = Figure(figsize=(4.3 * cols, 3.6 * rows_n), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows_n, cols)).ravel()
    acc = np.array([r["value"] for r in done])
    number = np.array([r["number"] for r in done])
    floor = _floor(acc)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(done))
    starred = False
    for ax, p in zip(axes, params):
        have = [i for i, r in enumerate(done) if p.name in r["params"]]
        x, labels = _axis_values(p, [done[i]["params"][p.name] for i in have])
        if labels is not None:
            x = x + jitter[have]
            ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        elif p.log:
            _log_axis(ax.xaxis, ax.set_xscale)
            ax.set_xlim(p.low / 1.2, p.high * 1.2)  # the whole searched range
        else:
            pad = 0.04 * (p.high - p.low)
            ax.set_xlim(p.low - pad, p.high + pad)
        sc = _draw_clipped(ax, x, acc[have], floor, c=number[have], cmap="viridis",
                           edgecolor="white", linewidth=0.5, s=40, vmin=number.min(),
                           vmax=number.max())
        starred |= _star_baseline(ax, [x[k] for k, i in enumerate(have) if done[i].get("baseline")],
                                  [acc[i] for i in have if done[i].get("baseline")], floor)
        ax.set(xlabel=p.name, ylabel="validation accuracy")
        tidy_axes(ax)
    if len(params):
        fig.colorbar(sc, ax=axes[:len(params)].tolist(), label="trial", shrink=0.8)
    if pair:
        ax = axes[len(params)]
        a, b = pair
        both = [i for i, r in enumerate(done) if a.name in r["params"] and b.name in r["params"]]
        xs = np.array([done[i]["params"][a.name] for i in both], dtype=float)
        ys = np.array([done[i]["params"][b.name] for i in both], dtype=float)
        order = np.argsort(acc[both])  # the best drawn last, on top
        # the colour scale spans the good trials; those below the floor take its bottom colour
        sc2 = ax.scatter(xs[order], ys[order], c=acc[both][order], cmap="coolwarm", s=70,
                         edgecolor="black", linewidth=0.4,
                         vmin=floor if floor is not None else None)
        ax.set(xlabel=a.name, ylabel=b.name, title="coloured by validation accuracy")
        if a.log:
            _log_axis(ax.xaxis, ax.set_xscale)
        if b.log:
            _log_axis(ax.yaxis, ax.set_yscale)
        fig.colorbar(sc2, ax=ax, label="val acc", extend="min" if floor is not None else "neither")
        tidy_axes(ax)
    for ax in axes[panels:]:
        ax.set_visible(False)
    fig.suptitle(f"hyperparameters vs validation accuracy{': ' + title if title else ''} "
                 f"({len(done)} completed trials{'; star: the baseline, the defaults' if starred else ''})")
    return finish_figure(fig, path)


def _star_baseline(ax, xs, vs, floor) -> bool:
    """The baseline trial (the defaults) as a star over its point (the title says so: a legend
    in every panel would hide points)."""
    if xs:
        ax.scatter(xs, [max(v, floor) if floor is not None else v for v in vs], marker="*",
                   s=200, color=_BASELINE, edgecolor="black", linewidth=0.5, zorder=4)
    return bool(xs)


def plot_importances(importances: dict, path=None, title: str = "") -> Figure:
    """A bar per hyperparameter: the share of the variance in val acc it explains (Optuna)."""
    if not importances:
        raise DagnetError("no importances to plot (too few completed trials, or no variation)")
    names = list(importances)[::-1]
    values = [importances[n] for n in names]
    fig = Figure(figsize=(7, 0.5 * len(names) + 1.6), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    ax.barh(names, values, color=_DONE)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=9)
    ax.set(xlim=(0, max(1.0, max(values) * 1.15)), xlabel="importance (share of the variance in "
           "validation accuracy)", title=f"hyperparameter importances{': ' + title if title else ''}")
    tidy_axes(ax)
    return finish_figure(fig, path)


def plot_study(rows, space, importances: dict, directory: str, title: str = "") -> list[str]:
    """The three pictures into directory; returns the paths written (a picture needing more
    trials than there are is left out)."""
    written = []
    for name, draw in (("history.png", lambda p: plot_optimization_history(rows, p, title)),
                       ("scatter.png", lambda p: plot_param_scatter(rows, space, p, title)),
                       ("importance.png", lambda p: plot_importances(importances, p, title))):
        path = os.path.join(directory, name)
        try:
            draw(path)
        except DagnetError:
            continue
        written.append(path)
    return written
