"""The confusion-matrix picture: cells coloured by their share of the true class, labelled with
their counts, class names on the axes."""
import numpy as np
import pytest

from dagnet import DagnetError
from dagnet.viz.confusion import plot_confusion
from tests.viz import png_size

M = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])  # class 2 never seen: its row stays 0


def test_confusion_picture(tmp_path):
    fig = plot_confusion(M, tmp_path / "c.png", class_names=["cat", "dog", "bird"])
    assert png_size(tmp_path / "c.png") == (round(fig.get_figwidth() * 100), round(fig.get_figheight() * 100))
    ax = fig.axes[0]
    share = ax.images[0].get_array()
    assert np.allclose(share, [[0.8, 0.2, 0], [0.5, 0.5, 0], [0, 0, 0]])  # row-normalised
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "2", "8"]  # no "0" clutter
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 cat", "1 dog", "2 bird"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert ax.get_title() == "confusion matrix: 12 examples, accuracy 0.750"
    assert fig.axes[1].get_ylabel() == "share of the true class"  # the colour bar


def test_many_classes_leave_out_the_counts():
    fig = plot_confusion(np.eye(40, dtype=int) * 3, title="forty")
    assert not fig.axes[0].texts
    assert fig.axes[0].get_title() == "forty: 120 examples, accuracy 1.000"


def test_mistakes():
    with pytest.raises(DagnetError, match=r"square \(K, K\).*\(2, 3\)"):
        plot_confusion(np.zeros((2, 3)))
    with pytest.raises(DagnetError, match="class_names has 2 names for 3 classes"):
        plot_confusion(M, class_names=["a", "b"])
