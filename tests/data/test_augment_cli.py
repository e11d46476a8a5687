"""Augmentation from the command line: `dagnet train --crop/--flip/...` and `dagnet show-batch`."""
import glob
import subprocess
import sys

from dagnet.train.checkpoint import load_checkpoint


def dagnet(*args):
    return subprocess.run([sys.executable, "-m", "dagnet.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_train_with_augmentation_records_it_and_resumes_only_with_it(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    common = ["train", "two_layer_net", "--data", f"mnist:{tiny_mnist}", "--val", 40,
              "--batch-size", 40, "--out", out, "--quiet"]
    r = dagnet(*common, "--epochs", 1, "--crop", 2, "--flip", "--erase", 0.25)
    assert r.returncode == 0, r.stderr
    solver = load_checkpoint(out / "checkpoint.npz").solver
    assert solver["augment"] == {"crop": 2, "translate": 0.0, "flip": True, "erase": 0.25, "cutout": 0}
    assert glob.glob(str(out / "events.out.tfevents.*"))  # every run writes TensorBoard events
    r = dagnet(*common, "--resume", "--override", "epochs=2", "--crop", 3)  # another augmentation
    assert r.returncode == 2 and "--crop" in r.stderr, r.stderr
    r = dagnet(*common, "--resume", "--override", "epochs=2")  # the run's own augmentation
    assert r.returncode == 0, r.stderr


def test_show_batch_draws_the_grid(tiny_mnist, tmp_path):
    out = tmp_path / "batch.png"
    r = dagnet("show-batch", "--data", f"mnist:{tiny_mnist}", "--val", 40, "--crop", 2, "--flip",
               "--cutout", 6, "--count", 3, "--draws", 4, "-o", out)
    assert r.returncode == 0, r.stderr
    from matplotlib.image import imread

    height, width = imread(out).shape[:2]
    assert width > height  # 5 columns (the example and 4 draws), 3 rows


def test_bad_augmentation_flag_is_one_line(tiny_mnist, tmp_path):
    r = dagnet("show-batch", "--data", f"mnist:{tiny_mnist}", "--val", 40, "--erase", 2,
               "-o", tmp_path / "b.png")
    assert r.returncode == 2
    assert r.stderr.strip() == "dagnet show-batch: --erase: must be a probability in [0, 1], got 2.0"
