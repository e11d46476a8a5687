"""matplotlib pictures of training: one run's loss and accuracy curves, several runs' overlaid,
and the figure helpers every dagnet chart shares.

Figures are made with matplotlib.figure.Figure, never pyplot: no window, no global state, and
saving renders with Agg; in Jupyter a returned Figure still displays inline.

    plot_history(solver.history(), "curves.png")
    plot_histories({"sgd": h1, "momentum": h2}, "compare.png")
"""
from __future__ import annotations

import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

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
    whole_epochs(ax_acc, max(train.size, val.size))
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_loss, ax_acc):
        tidy_axes(ax)
    return finish_figure(fig, path)


def whole_epochs(ax, epochs: int) -> None:
    """Ticks on whole epochs only (a 2-epoch run has no epoch 1.5); epochs 1..n with half an
    epoch of margin when there are few."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if 0 < epochs <= 30:
        ax.set_xlim(0.5, epochs + 0.5)


def plot_histories(histories: dict, path=None, smooth: int | None = None, figsize=(12, 4.6)) -> Figure:
    """Several runs overlaid, one colour per run: the loss (smoothed, raw faint) and the train
    (dashed) and validation (solid) accuracy, against epochs, with a legend naming the runs.

    histories: {run name: history as plot_history takes it}; a history with "epoch" (as
    Solver.history() and history.json have) puts its loss on the epoch axis too, so runs of
    different batch sizes line up; otherwise the loss is per iteration."""
    if not histories:
        raise DagnetError("no runs to compare: give {name: history} for one run or more")
    runs = {name: {k: np.asarray(h.get(k, []), dtype=float) for k in
                   ("loss_history", "train_acc_history", "val_acc_history")} | {"epoch": h.get("epoch")}
            for name, h in histories.items()}
    by_epoch = all(r["epoch"] for r in runs.values() if r["loss_history"].size)
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    colors = matplotlib.colormaps["tab10"]
    handles, epochs = [], 0
    for i, (name, r) in enumerate(runs.items()):
        color = colors(i % 10)
        loss, train, val = r["loss_history"], r["train_acc_history"], r["val_acc_history"]
        if loss.size:
            x = np.arange(1, loss.size + 1) * (r["epoch"] / loss.size if by_epoch else 1.0)
            ax_loss.plot(x, loss, color=color, linewidth=0.6, alpha=0.25, label=f"_{name} raw")
            window = smooth or max(1, loss.size // 50)
            if window > 1 and loss.size > window:
                x, loss = x[window - 1:], np.convolve(loss, np.ones(window) / window, mode="valid")
            ax_loss.plot(x, loss, color=color, linewidth=1.8, label=name)
        for acc, kind, dash in ((train, "train", "--"), (val, "validation", "-")):
            if acc.size:
                ax_acc.plot(np.arange(1, acc.size + 1), acc, linestyle=dash, marker="o", color=color,
                            markersize=3.5 if acc.size < 60 else 0, label=f"{name} {kind}")
        epochs = max(epochs, train.size, val.size, int(r["epoch"] or 0) if by_epoch else 0)
        best = f" (best val {val.max():.3f})" if val.size else ""
        handles.append(Line2D([], [], color=color, linewidth=2.5, label=f"{name}{best}"))
    ax_loss.set(title="training loss (moving average; raw faint)", ylabel="loss",
                xlabel="epoch" if by_epoch else "iteration")
    ax_acc.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    ax_acc.legend(handles=[Line2D([], [], color="#555555", linestyle="--", label="train"),
                           Line2D([], [], color="#555555", label="validation")],
                  frameon=False, loc="lower right")
    for ax in (ax_loss, ax_acc):
        tidy_axes(ax)
    if by_epoch:
        ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax_loss.set_xlim(0, epochs + 0.05)
    else:
        ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    whole_epochs(ax_acc, epochs)
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 4), frameon=False)
    return finish_figure(fig, path)
