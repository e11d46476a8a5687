"""matplotlib plots: curves (one run, several runs), filter and weight grids, feature maps -
real PNGs of the expected size, with the numbers, scales and references a reader needs."""
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import dagnet
from dagnet import DagnetError
from dagnet.viz import (feature_maps, plot_affine_weights, plot_feature_maps, plot_filters,
                        plot_histories, plot_history)
from tests.viz import lenet, png_size

HISTORY = {"loss_history": list(2.3 * np.exp(-np.arange(300) / 80) + 0.2),
           "train_acc_history": [0.4, 0.6, 0.7, 0.8], "val_acc_history": [0.38, 0.55, 0.62, 0.61]}


def visible_ticks(ax) -> np.ndarray:
    FigureCanvasAgg(ax.figure).draw()
    lo, hi = ax.get_xlim()
    ticks = np.asarray(ax.get_xticks())
    return ticks[(ticks >= lo) & (ticks <= hi)]


def test_history_png_has_the_figure_size(tmp_path):
    fig = plot_history(HISTORY, tmp_path / "curves.png", figsize=(10, 4))
    assert png_size(tmp_path / "curves.png") == (1000, 400)
    loss_ax, acc_ax = fig.axes
    assert [l.get_label() for l in loss_ax.lines] == ["loss per iteration", "moving average (6)"]
    assert [l.get_label() for l in acc_ax.lines] == ["train", "validation"]
    assert any("best 0.620" == t.get_text() for t in acc_ax.texts)


@pytest.mark.parametrize("epochs", [1, 2, 3, 7])
def test_epoch_axes_tick_whole_epochs_only(epochs):
    history = {"loss_history": list(np.linspace(2, 1, 40 * epochs)),
               "train_acc_history": list(np.linspace(0.5, 0.9, epochs)),
               "val_acc_history": list(np.linspace(0.5, 0.8, epochs))}
    acc_ax = plot_history(history).axes[1]
    ticks = visible_ticks(acc_ax)
    assert len(ticks) and np.all(ticks == np.round(ticks)), ticks
    assert set(range(1, epochs + 1)) >= set(ticks.astype(int)) >= {1, epochs}
    for ax in plot_histories({"a": history, "b": history}).axes:
        ticks = visible_ticks(ax)
        assert len(ticks) and np.all(ticks == np.round(ticks)), ticks


def test_history_with_only_a_loss_and_an_empty_history(tmp_path):
    plot_history({"loss_history": [3.0, 2.0, 1.0]}, tmp_path / "loss.png")
    assert png_size(tmp_path / "loss.png") == (1100, 400)
    with pytest.raises(DagnetError, match="loss_history"):
        plot_history({})


def test_runs_overlay_in_one_picture_with_a_legend_naming_them(tmp_path):
    momentum = dict(HISTORY, epoch=4)
    sgd = {"loss_history": list(2.3 * np.exp(-np.arange(600) / 300) + 0.4), "epoch": 4,
           "train_acc_history": [0.3, 0.4, 0.5, 0.55], "val_acc_history": [0.3, 0.41, 0.48, 0.52]}
    fig = plot_histories({"sgd": sgd, "momentum": momentum}, tmp_path / "compare.png")
    assert png_size(tmp_path / "compare.png") == (round(fig.get_figwidth() * 100), round(fig.get_figheight() * 100))
    loss_ax, acc_ax = fig.axes
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names == ["sgd (best val 0.520)", "momentum (best val 0.620)"]
    # one colour per run in both panels; the loss on a common epoch axis (runs of 600 and 300
    # iterations over the same 4 epochs end together)
    colors = {l.get_label(): l.get_color() for l in loss_ax.lines}
    assert colors["sgd"] != colors["momentum"]
    ends = [l.get_xdata()[-1] for l in loss_ax.lines if not l.get_label().startswith("_")]
    assert ends == pytest.approx([4.0, 4.0])
    acc = {l.get_label(): (l.get_color(), l.get_linestyle()) for l in acc_ax.lines}
    assert acc["sgd train"] == (colors["sgd"], "--") and acc["sgd validation"] == (colors["sgd"], "-")
    assert loss_ax.get_xlabel() == "epoch" and acc_ax.get_xlabel() == "epoch"
    with pytest.raises(DagnetError, match="no runs"):
        plot_histories({})


def test_runs_without_an_epoch_count_share_an_iteration_axis():
    fig = plot_histories({"a": {"loss_history": [3.0, 2.0, 1.5]}, "b": {"loss_history": [3.0, 1.0]}})
    assert fig.axes[0].get_xlabel() == "iteration"


@pytest.mark.parametrize("shape", [(20, 1, 5, 5), (12, 3, 3, 3), (4, 6, 3, 3)])
def test_filter_grid_is_a_real_png(tmp_path, shape):
    w = np.random.default_rng(0).standard_normal(shape)
    fig = plot_filters(w, tmp_path / "filters.png")
    width, height = png_size(tmp_path / "filters.png")
    assert (width, height) == (round(fig.get_figwidth() * 100), round(fig.get_figheight() * 100))
    assert max(width, height) >= 800
    image = fig.axes[0].images[0].get_array()
    assert image.ndim == (3 if shape[1] == 3 else 2)


def tile_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_filter_tiles_are_numbered_and_grey_filters_have_a_colour_bar():
    w = np.random.default_rng(0).standard_normal((20, 1, 5, 5))
    fig = plot_filters(w)
    grid, bar = fig.axes
    assert tile_labels(grid) == [str(i) for i in range(20)]
    assert "weight" in bar.get_ylabel()
    lo, hi = grid.images[0].get_clim()
    # symmetric, so 0 is mid-grey and signs read; the largest 0.5% saturate, not wash out the rest
    assert lo == -hi == -np.percentile(np.abs(w), 99.5) > -np.abs(w).max()
    assert "largest 0.5%" in bar.get_ylabel()
    channels = plot_filters(np.zeros((2, 3, 3, 3)) + np.arange(3)[None, :, None, None])
    assert tile_labels(channels.axes[0]) == ["0", "1"] and len(channels.axes) == 1  # RGB: no bar
    rows = plot_filters(np.ones((2, 4, 3, 3))).axes[0]
    assert tile_labels(rows)[:5] == ["0·0", "0·1", "0·2", "0·3", "1·0"]


def test_affine_weights_are_drawn_as_input_images():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((28 * 28, 150))
    fig = plot_affine_weights(w, (1, 28, 28), limit=100)
    grid = fig.axes[0]
    assert tile_labels(grid) == [str(i) for i in range(100)]
    assert "100 of 150 hidden units" in grid.get_title()
    # unit 7's tile is column 7 of w as a 28x28 image (first tile row, eighth tile)
    image = np.ma.filled(grid.images[0].get_array().astype(float), np.nan)
    top = next(r for r in range(image.shape[0]) if not np.isnan(image[r, 0]))
    left = 7 * 29
    assert np.allclose(image[top:top + 28, left:left + 28], w[:, 7].reshape(28, 28))
    rgb = plot_affine_weights(rng.standard_normal((3 * 8 * 8, 10)), (3, 8, 8))
    assert rgb.axes[0].images[0].get_array().shape[-1] == 3
    with pytest.raises(DagnetError, match="cannot be drawn as images"):
        plot_affine_weights(w, (1, 20, 20))


def test_filters_and_maps_refuse_wrong_shapes():
    with pytest.raises(DagnetError, match="F, C, kh, kw"):
        plot_filters(np.zeros((3, 5, 5)))
    with pytest.raises(DagnetError, match="C, H, W"):
        plot_feature_maps(np.zeros((2, 3, 5, 5)))
    with pytest.raises(DagnetError, match="scale"):
        plot_feature_maps(np.zeros((2, 5, 5)), scale="own")


def test_feature_maps_share_one_scale_with_a_colour_bar_by_default():
    maps = np.stack([np.full((4, 4), 100.0), np.arange(16.0).reshape(4, 4)])
    fig = plot_feature_maps(maps)
    grid, bar = fig.axes
    assert grid.images[0].get_clim() == (0.0, 100.0)
    assert bar.get_ylabel() == "activation"
    assert tile_labels(grid) == ["0", "1"]


def test_every_tile_can_be_scaled_to_its_own_range():
    maps = np.stack([np.full((4, 4), 100.0), np.arange(16.0).reshape(4, 4)])
    fig = plot_feature_maps(maps, scale="each")
    grid = fig.axes[0].images[0].get_array()
    assert np.nanmin(grid) == 0 and np.nanmax(grid) == 1
    tiles = grid[~np.isnan(grid).all(axis=1)]
    assert np.allclose(tiles[:4, :4], 0.5)  # a constant map is drawn mid-grey, not black
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["tile min", "tile max"]


def test_feature_maps_of_a_node_inside_a_fused_step(tmp_path):
    plan = dagnet.compile(lenet())
    assert any("conv1" in s.members and s.fused for s in plan.steps)
    x = np.random.default_rng(1).standard_normal((1, 28, 28)).astype(np.float32)
    conv1 = feature_maps(plan, x, "conv1")
    pool1 = feature_maps(plan, x, "pool1")
    assert conv1.shape == (20, 24, 24) and pool1.shape == (20, 12, 12)
    relu = np.maximum(conv1, 0)
    assert np.allclose(pool1, relu.reshape(20, 12, 2, 12, 2).max(axis=(2, 4)), atol=1e-5)
    fig = plot_feature_maps(conv1, tmp_path / "conv1.png", image=x, image_title="input (label 3)")
    assert png_size(tmp_path / "conv1.png") == (round(fig.get_figwidth() * 100),
                                                  round(fig.get_figheight() * 100))
    source, grid, bar = fig.axes
    assert source.get_title() == "input (label 3)"
    assert np.allclose(source.images[0].get_array(), (x[0] - x.min()) / (x.max() - x.min()))
    assert grid.get_title() == "20 feature maps, 24×24"
