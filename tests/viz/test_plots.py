"""matplotlib plots: curves, filter grids, feature maps - real PNGs of the expected size."""
import numpy as np
import pytest

import dagnet
from dagnet import DagnetError
from dagnet.viz import feature_maps, plot_feature_maps, plot_filters, plot_history
from tests.viz import lenet, png_size

HISTORY = {"loss_history": list(2.3 * np.exp(-np.arange(300) / 80) + 0.2),
           "train_acc_history": [0.4, 0.6, 0.7, 0.8], "val_acc_history": [0.38, 0.55, 0.62, 0.61]}


def test_history_png_has_the_figure_size(tmp_path):
    fig = plot_history(HISTORY, tmp_path / "curves.png", figsize=(10, 4))
    assert png_size(tmp_path / "curves.png") == (1000, 400)
    loss_ax, acc_ax = fig.axes
    assert [l.get_label() for l in loss_ax.lines] == ["loss per iteration", "moving average (6)"]
    assert [l.get_label() for l in acc_ax.lines] == ["train", "validation"]
    assert any("best 0.620" == t.get_text() for t in acc_ax.texts)


def test_history_with_only_a_loss_and_an_empty_history(tmp_path):
    plot_history({"loss_history": [3.0, 2.0, 1.0]}, tmp_path / "loss.png")
    assert png_size(tmp_path / "loss.png") == (1100, 400)
    with pytest.raises(DagnetError, match="loss_history"):
        plot_history({})


@pytest.mark.parametrize("shape", [(20, 1, 5, 5), (12, 3, 3, 3), (4, 6, 3, 3)])
def test_filter_grid_is_a_real_png(tmp_path, shape):
    w = np.random.default_rng(0).standard_normal(shape)
    fig = plot_filters(w, tmp_path / "filters.png")
    width, height = png_size(tmp_path / "filters.png")
    assert (width, height) == (round(fig.get_figwidth() * 100), round(fig.get_figheight() * 100))
    assert max(width, height) >= 800
    image = fig.axes[0].images[0].get_array()
    assert image.ndim == (3 if shape[1] == 3 else 2)


def test_filters_and_maps_refuse_wrong_shapes():
    with pytest.raises(DagnetError, match="F, C, kh, kw"):
        plot_filters(np.zeros((3, 5, 5)))
    with pytest.raises(DagnetError, match="C, H, W"):
        plot_feature_maps(np.zeros((2, 3, 5, 5)))


def test_every_tile_is_scaled_to_its_own_range():
    maps = np.stack([np.full((4, 4), 100.0), np.arange(16.0).reshape(4, 4)])
    grid = plot_feature_maps(maps).axes[0].images[0].get_array()
    assert np.nanmin(grid) == 0 and np.nanmax(grid) == 1
    assert np.allclose(grid[:4, :4], 0.5)  # a constant map is drawn mid-grey, not black


def test_feature_maps_of_a_node_inside_a_fused_step(tmp_path):
    plan = dagnet.compile(lenet())
    assert any("conv1" in s.members and s.fused for s in plan.steps)
    x = np.random.default_rng(1).standard_normal((1, 28, 28)).astype(np.float32)
    conv1 = feature_maps(plan, x, "conv1")
    pool1 = feature_maps(plan, x, "pool1")
    assert conv1.shape == (20, 24, 24) and pool1.shape == (20, 12, 12)
    relu = np.maximum(conv1, 0)
    assert np.allclose(pool1, relu.reshape(20, 12, 2, 12, 2).max(axis=(2, 4)), atol=1e-5)
    fig = plot_feature_maps(conv1, tmp_path / "conv1.png")
    assert png_size(tmp_path / "conv1.png") == (round(fig.get_figwidth() * 100),
                                                  round(fig.get_figheight() * 100))
    assert fig.axes[0].get_title() == "20 feature maps, 24×24"
