"""Data augmentation: what each transform does, its seeding, determinism under --resume, and
that it makes a small-data run overfit less."""
import os

import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.data.augment import Augment, augment_rng
from dagnet.data.preprocess import iterate_batches
from dagnet.errors import CheckpointError, DatasetError
from dagnet.train.solver import Solver


def images(n=16, c=1, h=8, w=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def test_nothing_is_a_copy_and_falsy():
    X = images()
    assert not Augment() and Augment(flip=True)
    out = Augment()(X, augment_rng(0, 0))
    assert out is not X and np.array_equal(out, X)


def test_flip_mirrors_about_half():
    X = images(200)
    out = Augment(flip=True)(X, augment_rng(0, 0))
    same = [np.array_equal(o, x) for o, x in zip(out, X)]
    mirrored = [np.array_equal(o, x[:, :, ::-1]) for o, x in zip(out, X)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 70 < sum(mirrored) < 130


def test_crop_is_a_window_of_the_padded_image():
    X = images(30)
    out = Augment(crop=2)(X, augment_rng(1, 5))
    padded = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    offsets = set()
    for o, p in zip(out, padded):
        hits = [(i, j) for i in range(5) for j in range(5) if np.array_equal(o, p[:, i:i + 8, j:j + 8])]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) > 5  # not one offset for all


def test_translate_whole_and_half_pixels():
    X = images(3)
    whole = Augment(translate=2.0)
    rng = augment_rng(0, 0)
    out = whole(X, rng)
    dy, dx = augment_rng(0, 0).uniform(-2, 2, (3, 2))[0]
    # interior pixels move by the offset, bilinear between the neighbours
    y0, x0 = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - y0, dx - x0
    src = X[0, 0]
    r, c = 4, 4  # an interior output pixel
    expect = ((1 - fy) * (1 - fx) * src[r - y0, c - x0] + (1 - fy) * fx * src[r - y0, c - x0 - 1]
              + fy * (1 - fx) * src[r - y0 - 1, c - x0] + fy * fx * src[r - y0 - 1, c - x0 - 1])
    assert out[0, 0, r, c] == pytest.approx(expect, rel=1e-5)


def test_erase_and_cutout_change_a_rectangle():
    X = images(50, c=3, h=16, w=16)
    out = Augment(erase=1.0)(X, augment_rng(0, 0))
    for o, x in zip(out, X):
        rows, cols = np.nonzero((o != x).any(axis=0))
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert 0.01 * 256 <= area <= 0.4 * 256 and len(rows) == area  # one full rectangle
    assert np.array_equal(Augment(erase=0.0, flip=False, crop=0)(X, augment_rng(0, 0)), X)
    cut = Augment(cutout=6)(X + 10, augment_rng(0, 0))
    for o in cut:
        rows, cols = np.nonzero((o == 0).all(axis=0))
        assert 1 <= rows.max() - rows.min() + 1 <= 6 and 1 <= cols.max() - cols.min() + 1 <= 6


def test_seeded_per_step_and_input_untouched():
    X = images()
    keep = X.copy()
    aug = Augment(crop=2, flip=True, erase=0.5, translate=1.0, cutout=3)
    a, b = aug(X, augment_rng(3, 7)), aug(X, augment_rng(3, 7))
    assert np.array_equal(a, b) and np.array_equal(X, keep)
    assert not np.array_equal(a, aug(X, augment_rng(3, 8)))
    assert not np.array_equal(a, aug(X, augment_rng(4, 7)))


def test_iterate_batches_augments_each_step():
    X, y = images(10), np.arange(10)
    aug = Augment(flip=True, erase=1.0)
    batches = list(iterate_batches(X, y, 4, augment=aug, seed=5, first_step=3))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert np.array_equal(batches[1][0], aug(X[4:8], augment_rng(5, 4)))


@pytest.mark.parametrize("d,needle", [
    ({"crop": -1}, "augment.crop: must be an integer >= 0"),
    ({"erase": 1.5}, "augment.erase: must be a probability in [0, 1]"),
    ({"flip": "yes"}, "augment.flip: must be true or false"),
    ({"crop": 2.5}, "augment.crop: must be an integer"),
    ({"rotate": 10}, "augment: unknown key(s) rotate"),
])
def test_bad_settings_name_the_key(d, needle):
    with pytest.raises(DatasetError) as e:
        Augment.from_dict(d)
    assert needle in str(e.value)


def small_net():
    g = Graph("small")
    x = g.input("x", (1, 8, 8))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, 4, 3, pad=1, name="conv1"), name="relu1"), 2, name="pool1")
    g.softmax_cross_entropy(g.affine(h, 3, name="scores"), y)
    return g


def toy_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    return {"X_train": X[:48], "y_train": y[:48], "X_val": X[48:], "y_val": y[48:]}


def run(tmp_path, epochs, resume=False, aug=Augment(crop=1, flip=True, erase=0.5)):
    plan = dagnet.compile(small_net(), seed=0)
    tmp_path.mkdir(exist_ok=True)
    s = Solver(plan, toy_data(), batch_size=16, num_epochs=epochs, verbose=False, augment=aug,
               checkpoint=str(tmp_path / "ck.npz"), resume=resume, seed=3,
               allow_changes=["num_epochs"] if resume else ())  # resuming runs more epochs
    s.train()
    return s


def test_augmented_run_resumes_bitwise(tmp_path):
    straight = run(tmp_path / "a", 3)
    run(tmp_path / "b", 1)
    resumed = run(tmp_path / "b", 3, resume=True)
    assert resumed.loss_history == straight.loss_history
    for k, v in straight.model.params.items():
        assert np.array_equal(v, resumed.model.params[k])
    # augmentation changes the losses, not the batch order (the solver's own rng)
    plain = run(tmp_path / "c", 3, aug=None)
    assert plain.loss_history != straight.loss_history
    assert plain.rng.bit_generator.state == straight.rng.bit_generator.state
    with pytest.raises(CheckpointError, match="augment"):
        run(tmp_path / "b", 4, resume=True, aug=Augment(flip=True))


FASHION = "/usr/share/datasets/fashion-mnist/"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_augmentation_overfits_less_on_a_small_subset():
    """500 Fashion-MNIST images, 10 epochs of a small convnet: without augmentation it learns
    the training set by heart (train accuracy ~1) far above validation; crop + flip narrow
    the gap between train and validation accuracy."""
    from dagnet.data.idx import load_mnist_like
    from dagnet.data.preprocess import normalize_splits

    raw = load_mnist_like()
    data, _ = normalize_splits({"X_train": raw["X_train"][:500], "y_train": raw["y_train"][:500],
                                "X_val": raw["X_test"][:2000], "y_val": raw["y_test"][:2000]})

    def gap(aug):
        g = Graph("small")
        x = g.input("x", (1, 28, 28))
        y = g.input("y", (), dtype="int64")
        h = g.max_pool2d(g.relu(g.conv2d(x, 16, 5, name="conv1"), name="relu1"), 2, name="pool1")
        h = g.relu(g.affine(h, 100, name="fc1"), name="relu2")
        g.softmax_cross_entropy(g.affine(h, 10, name="scores"), y)
        s = Solver(dagnet.compile(g, seed=0), data, update_rule="adam", batch_size=50,
                   num_epochs=10, optim_config={"learning_rate": 1e-3}, verbose=False,
                   num_train_samples=None, augment=aug)
        s.train()
        return s.train_acc_history[-1], s.train_acc_history[-1] - s.val_acc_history[-1]

    train_plain, gap_plain = gap(None)
    _, gap_aug = gap(Augment(crop=2, flip=True))
    assert train_plain > 0.97 and gap_plain > 0.12
    assert gap_aug < gap_plain - 0.05, (gap_plain, gap_aug)
