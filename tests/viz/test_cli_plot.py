"""`dagnet plot` and `dagnet maps` on real run folders: one run's pictures, a net without a
conv (its first affine layer's weights as images), several runs overlaid."""
import pytest

from dagnet.cli.draw import run_names
from dagnet.cli.main import main
from tests.viz import png_size


def train(model, data, out, *extra):
    code = main(["train", model, "--data", f"mnist:{data}", "--epochs", "2", "--val", "40",
                 "--batch-size", "40", "--quiet", "--out", str(out), *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def runs(tiny_mnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"lenet": train("lenet", tiny_mnist, root / "lenet"),
            "mlp": train("two_layer_net", tiny_mnist, root / "mlp", "--update-rule", "sgd")}


def test_a_net_without_a_conv_shows_its_first_affine_weights_as_images(runs, capsys):
    assert main(["plot", str(runs["mlp"])]) == 0
    out = capsys.readouterr().out
    assert "weights.png" in out and "curves.png" in out
    assert not (runs["mlp"] / "filters.png").exists()
    width, height = png_size(runs["mlp"] / "weights.png")
    assert min(width, height) > 600  # 100 hidden units as 28x28 tiles


def test_one_run_keeps_its_curves_and_filters(runs, capsys):
    assert main(["plot", str(runs["lenet"])]) == 0
    assert "filters.png" in capsys.readouterr().out
    assert (runs["lenet"] / "curves.png").exists() and (runs["lenet"] / "filters.png").exists()


def test_several_runs_overlay_in_one_picture(runs, tmp_path, capsys):
    out = tmp_path / "compare.png"
    assert main(["plot", str(runs["lenet"]), str(runs["mlp"]), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    width, height = png_size(out)
    assert (width, height) == (1200, 460)


def test_a_run_without_history_is_named(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plot", str(runs["lenet"]), str(empty)]) == 2
    assert f"{empty}/history.json is missing" in capsys.readouterr().err


def test_runs_are_named_by_folder_unless_two_share_a_name():
    assert run_names(["runs/sgd", "runs/momentum/"]) == ["sgd", "momentum"]
    assert run_names(["a/lenet", "b/lenet", "c"]) == ["a/lenet", "b/lenet", "c"]


def test_maps_show_the_input_image(runs, tmp_path):
    out = tmp_path / "m.png"
    assert main(["maps", str(runs["lenet"]), "--node", "pool1", "--index", "2", "-o", str(out)]) == 0
    width, height = png_size(out)
    assert width > height  # the input image on the left, the 20 maps and their colour bar
