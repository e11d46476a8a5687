"""matplotlib pictures of training: loss and accuracy curves, first-layer filters, feature maps.

Figures are made with matplotlib.figure.Figure, never pyplot: no window, no global state, and
saving renders with Agg; in Jupyter a returned Figure still displays inline.

    plot_history(solver_history, "curves.png")
    plot_filters(plan.params["conv1.w"], "filters.png")
    plot_feature_maps(feature_maps(plan, x[0], "conv1"), "conv1.png")
"""
from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.figure import Figure

from dagnet import compiler
from dagnet.errors import DagnetError

DPI = 100


def save_figure(fig: Figure, path) -> str:
    """Write a figure (format from the suffix: png, svg, pdf) at its own size and DPI."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)  # no bbox_inches="tight": the pixel size stays figsize * dpi
    return path


def finish_figure(fig: Figure, path) -> Figure:
    """Save the figure when a path is given; return it."""
    if path is not None:
        save_figure(fig, path)
    return fig


def tidy_axes(ax) -> None:
    """Light grid behind the data, no top/right spines."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)


def plot_history(history: dict, path=None, smooth: int | None = None,
                 figsize=(11, 4)) -> Figure:
    """Loss per iteration (raw and smoothed) and train/val accuracy per epoch, side by side.

    history: {"loss_history": [...], "train_acc_history": [...], "val_acc_history": [...]}
    (any may be missing). smooth: moving-average window (default: about 1/50 of the run)."""
    loss = np.asarray(history.get("loss_history", []), dtype=float)
    train = np.asarray(history.get("train_acc_history", []), dtype=float)
    val = np.asarray(history.get("val_acc_history", []), dtype=float)
    if not (loss.size or train.size or val.size):
        raise DagnetError("history has no loss_history, train_acc_history or val_acc_history to plot")
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    if loss.size:
        it = np.arange(1, loss.size + 1)
        ax_loss.plot(it, loss, color="#9ECAE1", linewidth=0.8, label="loss per iteration")
        window = smooth or max(1, loss.size // 50)
        if window > 1 and loss.size > window:
            avg = np.convolve(loss, np.ones(window) / window, mode="valid")
            ax_loss.plot(it[window - 1:], avg, color="#08519C", linewidth=1.8,
                         label=f"moving average ({window})")
        ax_loss.legend(frameon=False)
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    for acc, name, color in ((train, "train", "#E6550D"), (val, "validation", "#31A354")):
        if acc.size:
            ax_acc.plot(np.arange(1, acc.size + 1), acc, "o-", color=color, label=name,
                        markersize=4 if acc.size < 60 else 0)
    if train.size or val.size:
        best = int(np.argmax(val)) if val.size else None
        if best is not None:
            ax_acc.annotate(f"best {val[best]:.3f}", (best + 1, val[best]), textcoords="offset points",
                            xytext=(0, 8), ha="center", fontsize=9, color="#31A354")
        ax_acc.legend(frameon=False, loc="lower right")
    ax_acc.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        tidy_axes(ax)
    return finish_figure(fig, path)


def _mosaic(tiles: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    """Tiles (K, h, w[, 3]) each scaled to [0, 1], laid out in a grid with NaN gutters."""
    k, h, w = tiles.shape[:3]
    rows = math.ceil(k / cols)
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad) + tiles.shape[3:], np.nan)
    for i, t in enumerate(tiles):
        lo, hi = np.nanmin(t), np.nanmax(t)
        r, c = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = \
            (t - lo) / (hi - lo) if hi > lo else 0.5
    return grid


def _grid_figure(grid: np.ndarray, title: str, cmap, path, figsize) -> Figure:
    # default: 8 inches wide (or tall), the other side following the grid, plus the title
    scale = 8 / max(grid.shape[:2])
    # whole pixels, so that the saved image is exactly figsize * dpi
    fitted = (round(grid.shape[1] * scale * DPI) / DPI, round((grid.shape[0] * scale + 0.5) * DPI) / DPI)
    fig = Figure(figsize=figsize or fitted, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    image = grid if grid.ndim == 2 else np.nan_to_num(grid, nan=1.0)  # RGB: white gutters
    ax.imshow(image, cmap=cmap, interpolation="nearest", vmin=0, vmax=1)
    ax.set_facecolor("white")  # NaN gutters of single-channel grids show the background
    ax.set_axis_off()
    ax.set_title(title)
    return finish_figure(fig, path)


def plot_filters(weights: np.ndarray, path=None, title: str | None = None, figsize=None) -> Figure:
    """First-layer filters as a grid of small images, each scaled to its own range.

    weights: (F, C, kh, kw). C == 3 is drawn in RGB, C == 1 in grey; other C as one row of
    C grey tiles per filter."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 4:
        raise DagnetError(f"filters must be (F, C, kh, kw), got shape {w.shape}")
    f, c = w.shape[:2]
    if c == 3:
        tiles, cols = w.transpose(0, 2, 3, 1), math.ceil(math.sqrt(f))
    elif c == 1:
        tiles, cols = w[:, 0], math.ceil(math.sqrt(f))
    else:
        tiles, cols = w.reshape(f * c, *w.shape[2:]), c
    what = title or f"{f} filters, {c}×{w.shape[2]}×{w.shape[3]}"
    return _grid_figure(_mosaic(tiles, cols), what, "gray", path, figsize)


def plot_feature_maps(maps: np.ndarray, path=None, title: str | None = None, cmap: str = "viridis",
                      figsize=None) -> Figure:
    """Every channel of one example's activations as a grid, each scaled to its own range.

    maps: (C, H, W)."""
    m = np.asarray(maps, dtype=float)
    if m.ndim != 3:
        raise DagnetError(f"feature maps must be (C, H, W) for one example, got shape {m.shape}")
    what = title or f"{m.shape[0]} feature maps, {m.shape[1]}×{m.shape[2]}"
    return _grid_figure(_mosaic(m, math.ceil(math.sqrt(m.shape[0]))), what, cmap, path, figsize)


def feature_maps(plan, x: np.ndarray, node: str) -> np.ndarray:
    """The value of any node of the plan's declared graph for one example (eval mode).

    x: one example (C, H, W), without the batch dimension. A node inside a fused step is
    computed by an eval plan that asks for it as an output, with the plan's params and state."""
    probe = compiler.compile(plan.source, outputs=[node], mode="eval", dtype=plan.dtype,
                    params=plan.params, state=plan.state)
    out = probe.forward(probe.feeds_for(np.asarray(x)[None]), mode="eval")
    return out[node][0]
