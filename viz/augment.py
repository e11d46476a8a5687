"""A picture of data augmentation: each example beside several augmented draws of it."""
from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from dagnet.errors import ShapeError
from dagnet.viz.plots import DPI, finish_figure

TILE = 1.1  # inches per image


def plot_augmented(originals: np.ndarray, draws: np.ndarray, path=None, title: str = "",
                   labels=None) -> Figure:
    """originals (N, C, H, W) in [0, 1], draws (K, N, C, H, W): row i is example i, then its K
    draws; C 1 in grey, C 3 in colour. labels: a class label per row, shown at its left."""
    originals, draws = np.asarray(originals), np.asarray(draws)
    if originals.ndim != 4 or draws.ndim != 5 or draws.shape[1:] != originals.shape:
        raise ShapeError(f"plot_augmented takes originals (N, C, H, W) and draws (K, N, C, H, W), "
                         f"got {originals.shape} and {draws.shape}")
    n, c = originals.shape[:2]
    k = draws.shape[0]
    fig = Figure(figsize=(TILE * (k + 1) + 0.4, TILE * n + 0.7), dpi=DPI, layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, k + 1, squeeze=False))
    for i in range(n):
        for j in range(k + 1):
            image = originals[i] if j == 0 else draws[j - 1, i]
            ax = axes[i, j]
            if c == 1:
                ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                for side in ax.spines.values():
                    side.set(color="#2171B5", linewidth=2)
                if labels is not None:
                    ax.set_ylabel(f"class {labels[i]}", fontsize=8)
            if i == 0:
                ax.set_title("example" if j == 0 else f"step {j - 1}", fontsize=8)
    if title:  # wrapped to the figure's width (about 13 characters an inch at 9 points)
        fig.suptitle(textwrap.fill(title, max(30, int(13 * fig.get_figwidth()))), fontsize=9)
    return finish_figure(fig, path)
