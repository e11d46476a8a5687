"""The confusion matrix as a picture: which classes a model takes for which.

    plot_confusion(result["confusion"], "confusion.png", class_names=names)

Made with matplotlib.figure.Figure (no pyplot, no window), like the other plots in dagnet.viz.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from dagnet.errors import DagnetError
from dagnet.viz.plots import save_figure

#: above this many classes the cells are too small to hold their counts
MAX_ANNOTATED = 30


def plot_confusion(matrix, path=None, class_names=None, title: str = "confusion matrix") -> Figure:
    """A heat map of a (K, K) confusion matrix of counts (rows: true class, columns: predicted):
    each cell is coloured by its share of its true class (so rare classes read as well as
    common ones) and labelled with its count; the diagonal is the per-class recall. The title
    gains the number of examples and the accuracy. Returns the Figure; writes it when given a
    path (png, svg, pdf)."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise DagnetError(f"a confusion matrix is square (K, K) with K >= 1, got shape {m.shape}")
    k = len(m)
    if class_names is not None and len(class_names) != k:
        raise DagnetError(f"class_names has {len(class_names)} names for {k} classes")
    labels = [f"{i} {class_names[i]}" if class_names else str(i) for i in range(k)]
    totals = m.sum(axis=1, keepdims=True)
    share = np.divide(m, totals, out=np.zeros(m.shape), where=totals > 0)
    side = min(4.0 + 0.45 * k, 16.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= MAX_ANNOTATED:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.6 else "#222222")
    ticks = np.arange(k)
    ax.set_xticks(ticks, labels, rotation=45 if class_names else 0, ha="right" if class_names else "center",
                  rotation_mode="anchor")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(m.sum())
    accuracy = np.trace(m) / total if total else float("nan")
    ax.set_title(f"{title}: {total:,} examples, accuracy {accuracy:.3f}")
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("share of the true class")
    if path is not None:
        save_figure(fig, path)
    return fig
