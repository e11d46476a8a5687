"""Grids of small images: first-layer filters, a hidden layer's weights as images, and feature
maps beside the input they came from; every tile numbered, one colour bar for the grid.

    plot_filters(plan.params["conv1.w"], "filters.png")
    plot_affine_weights(plan.params["fc1.w"], (1, 28, 28), "fc1.png")
    plot_feature_maps(feature_maps(plan, x[0], "conv1"), "conv1.png", image=x[0])
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from dagnet import compiler
from dagnet.errors import DagnetError, ShapeError
from dagnet.viz.plots import DPI, finish_figure

SIDE = 8.0  # inches: the grid's longer side
LABEL_PX = 15  # height of the band above each tile row that holds the tile numbers
INPUT_SIDE = 2.4  # inches: the input image beside feature maps
SCALES = ("shared", "each")
CLIP_PERCENTILE = 99.5  # weight grids: |w| above this percentile saturates (colour bar arrows)


def plot_filters(weights: np.ndarray, path=None, title: str | None = None, figsize=None,
                 scale: str | None = None) -> Figure:
    """First-layer filters as a grid of small numbered images.

    weights: (F, C, kh, kw). C == 1 is drawn in grey on one scale symmetric about 0 (mid-grey is
    0) with a colour bar; C == 3 in RGB, each filter stretched to its own range (as the course
    notebooks do); other C as one row of C grey tiles per filter, numbered filter·channel.
    scale: "shared" or "each" (each tile its own min to max) overrides that choice."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 4:
        raise ShapeError(f"filters must be (F, C, kh, kw), got shape {w.shape}")
    f, c = w.shape[:2]
    what = title or f"{f} filters, {c}×{w.shape[2]}×{w.shape[3]}"
    if c == 3:
        return _grid(w.transpose(0, 2, 3, 1), _square(f), [str(i) for i in range(f)], what, path,
                     figsize, scale or "each", cmap=None, unit="weight")
    if c == 1:
        tiles, cols, labels = w[:, 0], _square(f), [str(i) for i in range(f)]
    else:
        tiles, cols = w.reshape(f * c, *w.shape[2:]), c
        labels = [f"{i}·{j}" for i in range(f) for j in range(c)]
        what += " (tile filter·channel)"
    return _grid(tiles, cols, labels, what, path, figsize, scale or "shared", cmap="gray",
                 unit="weight", centred=True)


def plot_affine_weights(weights: np.ndarray, image_shape, path=None, title: str | None = None,
                        limit: int = 100, figsize=None, scale: str | None = None) -> Figure:
    """A first affine layer's weights as images: hidden unit j's weights w[:, j] reshaped to
    the input image it reads (the course notebooks' picture of a two-layer net).

    weights: (D, M); image_shape: (C, H, W) or (H, W) with C in (1, 3) and C*H*W == D. At most
    `limit` units are drawn (the first ones)."""
    w = np.asarray(weights, dtype=float)
    shape = tuple(int(d) for d in image_shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if w.ndim != 2 or len(shape) != 3 or shape[0] not in (1, 3) or math.prod(shape) != w.shape[0]:
        rows = w.shape[0] if w.ndim == 2 else "?"
        side = [f"({c}, {r}, {r})" for c in (1, 3) for r in [math.isqrt(rows // c)] if w.ndim == 2
                and c * r * r == rows]
        raise ShapeError(f"affine weights {w.shape} cannot be drawn as images of shape "
                         f"{tuple(image_shape)}: give the shape (C, H, W) of the image the layer reads, "
                         f"C 1 or 3 and C*H*W == {rows} rows" + (f", e.g. {side[0]}" if side else ""))
    units = min(w.shape[1], limit)
    shown = f"{units} of {w.shape[1]}" if units < w.shape[1] else f"{units}"
    what = title or f"{shown} hidden units' weights as {shape[1]}×{shape[2]} images"
    return plot_filters(w[:, :units].T.reshape(units, *shape), path, what, figsize, scale)


def plot_feature_maps(maps: np.ndarray, path=None, title: str | None = None, cmap: str = "viridis",
                      figsize=None, image=None, image_title: str = "input", scale: str = "shared") -> Figure:
    """Every channel of one example's activations as a numbered grid on one colour scale, with
    the input image beside it when given.

    maps: (C, H, W). image: the example, (1 or 3, H, W) or (H, W). scale: "shared" (one scale,
    so channels compare) or "each" (every map stretched to its own range)."""
    m = np.asarray(maps, dtype=float)
    if m.ndim != 3:
        raise ShapeError(f"feature maps must be (C, H, W) for one example, got shape {m.shape}: "
                         f"pass one example's maps, e.g. maps[0]")
    what = title or f"{m.shape[0]} feature maps, {m.shape[1]}×{m.shape[2]}"
    return _grid(m, _square(m.shape[0]), [str(i) for i in range(m.shape[0])], what, path, figsize,
                 scale, cmap=cmap, unit="activation", image=image, image_title=image_title)


def feature_maps(plan, x: np.ndarray, node: str) -> np.ndarray:
    """The value of any node of the plan's declared graph for one example (eval mode).

    x: one example (C, H, W), without the batch dimension. A node inside a fused step is
    computed by an eval plan that asks for it as an output, with the plan's params and state."""
    probe = compiler.compile(plan.source, outputs=[node], mode="eval", dtype=plan.dtype,
                             params=plan.params, state=plan.state)
    out = probe.forward(probe.feeds_for(np.asarray(x)[None]), mode="eval")
    return out[node][0]


def _square(k: int) -> int:
    return math.ceil(math.sqrt(k))


def _stretch(t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (t - lo) / (hi - lo) if hi > lo else np.full_like(t, 0.5)


def _grid(tiles, cols, labels, title, path, figsize, scale, cmap, unit, centred=False,
          image=None, image_title="input") -> Figure:
    """The grid figure: tiles (K, h, w[, 3]) in rows of `cols` under a band of tile numbers,
    a colour bar (grey and colour-mapped tiles), the input image on the left when given."""
    if scale not in SCALES:
        raise DagnetError(f"scale must be one of {SCALES}, got {scale!r}")
    rgb = tiles.ndim == 4
    lo, hi = float(np.min(tiles)), float(np.max(tiles))
    if centred:  # the few largest weights would wash out all others: they saturate instead
        limit = float(np.percentile(np.abs(tiles), CLIP_PERCENTILE))
        lo, hi = -limit, limit
    if scale == "each" or rgb:
        shown = np.stack([_stretch(t, *(np.min(t), np.max(t)) if scale == "each" else (lo, hi)) for t in tiles])
        shown = np.clip(shown, 0.0, 1.0)
        vmin, vmax = 0.0, 1.0
    else:
        shown, vmin, vmax = tiles, lo, hi
    k, h, w = tiles.shape[:3]
    rows, pad = math.ceil(k / cols), 1
    grid_w = cols * (w + pad) - pad
    band = 1
    for _ in range(3):  # the band's height in tile pixels depends on the scale it sets
        px = SIDE * DPI / max(grid_w, rows * (band + h + pad))
        band = max(1, math.ceil(LABEL_PX / px))
    grid = np.full((rows * (band + h + pad) - pad, grid_w) + tiles.shape[3:], np.nan)
    for i, t in enumerate(shown):
        r, c = divmod(i, cols)
        top, left = r * (band + h + pad) + band, c * (w + pad)
        grid[top:top + h, left:left + w] = t
    px = SIDE * DPI / max(grid.shape[:2])
    side = INPUT_SIDE if image is not None else 0.0
    bar = 0.0 if rgb else 1.1
    fitted = (grid.shape[1] * px / DPI + side + bar + 0.3, grid.shape[0] * px / DPI + 0.7)
    fig = Figure(figsize=figsize or tuple(round(v * DPI) / DPI for v in fitted), dpi=DPI,
                 layout="constrained")
    if image is not None:
        ax_in, ax = fig.subplots(1, 2, width_ratios=[side, fitted[0] - side - bar])
        _show_input(ax_in, image, image_title)
    else:
        ax = fig.subplots()
    picture = grid if not rgb else np.nan_to_num(grid, nan=1.0)  # RGB: white gutters
    im = ax.imshow(picture, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.set_facecolor("white")  # NaN gutters of single-channel grids show the background
    ax.set_axis_off()
    if rgb:  # no colour bar for RGB: say how the colours were scaled
        title += "\n(RGB; " + ("each tile stretched to its own range)" if scale == "each" else "one range for all tiles)")
    ax.set_title(title)
    points = min(9.0, band * px * 0.7 * 72 / DPI)
    for i, text in enumerate(labels):
        r, c = divmod(i, cols)
        ax.text(c * (w + pad) + (w - 1) / 2, r * (band + h + pad) + band / 2 - 0.5 - 0.15 * band, text,
                ha="center", va="center", fontsize=points, color="#333333")
    if not rgb:
        clipped = scale == "shared" and (np.min(tiles) < lo or np.max(tiles) > hi)
        cb = fig.colorbar(im, ax=ax, shrink=min(1.0, 4.0 / max(fitted[1], 1.0)), aspect=25, pad=0.02,
                          extend="both" if clipped else "neither")
        if scale == "each":
            cb.set_ticks([0, 1], labels=["tile min", "tile max"])
            cb.set_label(f"each tile stretched to its own {unit} range", fontsize=8)
        else:
            cb.set_label(unit + (" (0 is mid-grey; beyond the arrows: the largest "
                                 f"{100 - CLIP_PERCENTILE:g}%)" if clipped else " (0 is mid-grey)" if centred else ""),
                         fontsize=8)
        cb.ax.tick_params(labelsize=8)
    return finish_figure(fig, path)


def _show_input(ax, image, title: str) -> None:
    """The example the feature maps came from, stretched to [0, 1] (grey or RGB)."""
    x = np.asarray(image, dtype=float)
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
    if x.ndim != 2 and x.shape[-1:] != (3,):
        raise ShapeError(f"the input image must be (C, H, W) with C 1 or 3, or (H, W); got shape "
                         f"{np.shape(image)}")
    ax.imshow(_stretch(x, x.min(), x.max()), cmap="gray", interpolation="nearest")
    ax.set_anchor("N")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
