"""dagnet.save / dagnet.load / Model.predict: one line to save a trained model, one to load it,
and predictions on raw images with the preprocessing it was trained with."""
import json

import numpy as np
import pytest

import dagnet
from dagnet.data.preprocess import fit_normalization, normalize, scale_to_unit
from dagnet.errors import CheckpointError, DagnetError, DatasetError, FeedError
from dagnet.train.solver import Solver
from tests.reliability.helpers import tiny_convnet

NAMES = ["zero", "one", "two", "three"]


def raw_images(n=24, seed=0):
    """uint8 (N, 8, 8) pixels whose class (0..3) is a bright row, and the labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    X = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    X[np.arange(n), y] = 255
    return X, y


@pytest.fixture(scope="module")
def trained():
    """A Solver that trained tiny_convnet on normalised [0, 1] images, and the stats it used."""
    X, y = raw_images(60)
    unit = scale_to_unit(X)[:, None]
    stats = fit_normalization(unit, "channel")
    data = {"X_train": normalize(unit[:40], stats), "y_train": y[:40],
            "X_val": normalize(unit[40:], stats), "y_val": y[40:]}
    plan = dagnet.compile(tiny_convnet(), seed=0)
    solver = Solver(plan, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                    batch_size=10, num_epochs=2, verbose=False)
    solver.train()
    return solver, stats


def expected_scores(plan, X_raw, stats):
    return plan.predict(normalize(scale_to_unit(X_raw)[:, None], stats))


def test_save_and_load_a_plan_in_one_line_each(trained, tmp_path):
    solver, stats = trained
    plan = solver.model
    folder = dagnet.save(tmp_path / "run", plan, normalization=stats, class_names=NAMES)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.npz", "data.json"]
    info = json.loads((tmp_path / "run" / "data.json").read_text())
    assert info["pixel_scale"] == 255 and info["class_names"] == NAMES
    model = dagnet.load(folder)
    X, _ = raw_images(10, seed=1)
    want = expected_scores(plan, X, stats)
    assert np.array_equal(model.predict(X), want.argmax(axis=1))
    proba = model.predict_proba(X)
    assert proba.shape == (10, 4) and np.allclose(proba.sum(axis=1), 1, atol=1e-6)
    assert np.array_equal(proba.argmax(axis=1), model.predict(X))
    assert model.class_names == NAMES and model.num_classes == 4 and model.input_shape == (1, 8, 8)
    assert "tiny_conv" in repr(model) and "mean/std" in repr(model)


def test_raw_images_in_every_usual_form_give_the_same_classes(trained, tmp_path):
    solver, stats = trained
    model = dagnet.load(dagnet.save(tmp_path / "run", solver.model, normalization=stats))
    X, _ = raw_images(6, seed=2)
    want = model.predict(X)  # uint8 (N, H, W): no channel axis
    assert np.array_equal(model.predict(X[:, None]), want)  # (N, 1, H, W)
    assert np.array_equal(model.predict(X[..., None]), want)  # channel-last (N, H, W, 1)
    assert np.array_equal(model.predict(X / 255.0), want)  # floats in [0, 1]
    assert np.array_equal(model.predict(X.astype(np.float32)[:, None] / 255), want)
    assert np.array_equal(model.predict(X[3]), want[3:4])  # one image
    before = X.copy()
    model.predict_proba(X)
    assert np.array_equal(X, before)  # the caller's array is never normalised in place


def test_images_that_cannot_be_raw_are_refused(trained, tmp_path):
    solver, stats = trained
    model = dagnet.load(dagnet.save(tmp_path / "run", solver.model, normalization=stats))
    X, _ = raw_images(4)
    with pytest.raises(FeedError, match=r"float images must be raw pixels in \[0, 1\].*\[0, 255\]"):
        model.predict(X.astype(np.float32))  # 0-255 floats: divide by 255 or pass uint8
    with pytest.raises(FeedError, match="normalisation"):
        model.predict(normalize(scale_to_unit(X)[:, None], stats))  # normalised twice otherwise
    with pytest.raises(FeedError, match=r"shape \(4, 9, 9\) do not fit the model's input \(1, 8, 8\)"):
        model.predict(np.zeros((4, 9, 9), np.uint8))
    with pytest.raises(FeedError, match="dtype <U1"):
        model.predict(np.array([["a"]]))


def test_save_a_solver_keeps_its_curves_and_can_resume(trained, tmp_path):
    solver, stats = trained
    dagnet.save(tmp_path / "run", solver, normalization=stats)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["train_acc_history"] == solver.train_acc_history
    again = Solver(dagnet.compile(tiny_convnet(), seed=5), {
        "X_train": solver.X_train, "y_train": solver.y_train, "X_val": solver.X_val,
        "y_val": solver.y_val}, update_rule="adam", optim_config={"learning_rate": 1e-2},
        num_epochs=2, batch_size=10, verbose=False,  # the run's recipe: resuming checks it
        checkpoint=str(tmp_path / "run" / "checkpoint.npz"), resume=True)
    assert again.epoch == 2
    model = dagnet.load(tmp_path / "run")  # the best-validation params
    X, _ = raw_images(5, seed=3)
    assert np.array_equal(model.predict(X), expected_scores(solver.model, X, stats).argmax(axis=1))


def test_a_loaded_model_saves_again_with_its_preprocessing(trained, tmp_path):
    solver, stats = trained
    model = dagnet.load(dagnet.save(tmp_path / "a", solver.model, normalization=stats,
                                    class_names=NAMES))
    copy = dagnet.load(dagnet.save(tmp_path / "b", model))
    X, _ = raw_images(5, seed=4)
    assert np.array_equal(copy.predict_proba(X), model.predict_proba(X))
    assert copy.class_names == NAMES


def test_evaluate_on_raw_images(trained, tmp_path):
    solver, stats = trained
    model = dagnet.load(dagnet.save(tmp_path / "run", solver.model, normalization=stats))
    X, y = raw_images(30, seed=5)
    r = model.evaluate(X, y, top_k=2)
    assert r["accuracy"] == np.mean(model.predict(X) == y)
    assert r["confusion"].sum() == 30 and r["top_k_accuracy"] >= r["accuracy"]


def test_load_a_checkpoint_file_alone(trained, tmp_path):
    solver, _ = trained
    dagnet.save(tmp_path / "run", solver.model)
    model = dagnet.load(tmp_path / "run" / "checkpoint.npz")
    assert model.normalization == {}
    X, _ = raw_images(3)
    # an eval plan runs as an inference program (batchnorm folded, other kernels): equal to
    # float32 rounding, not bit for bit, to the train plan's step-by-step eval
    np.testing.assert_allclose(model.scores(X), solver.model.predict(scale_to_unit(X)[:, None]),
                               rtol=1e-5, atol=1e-5)


def test_save_and_load_mistakes(trained, tmp_path):
    solver, stats = trained
    with pytest.raises(DatasetError, match=r"normalization mean of shape \(1, 3, 1, 1\) does not "
                                           r"fit the model's input \(1, 8, 8\)"):
        dagnet.save(tmp_path / "a", solver.model, normalization={"mean": np.zeros((1, 3, 1, 1))})
    with pytest.raises(DatasetError, match="class_names has 2 names but the model scores 4"):
        dagnet.save(tmp_path / "a", solver.model, class_names=["a", "b"])
    with pytest.raises(DagnetError, match="dagnet.save takes a Solver, an ExecutionPlan .* got dict"):
        dagnet.save(tmp_path / "a", {"w": 1})
    with pytest.raises(CheckpointError, match="no run folder or checkpoint file at"):
        dagnet.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty is not a run folder: it holds no checkpoint.npz"):
        dagnet.load(tmp_path / "empty")
    dagnet.save(tmp_path / "run", solver.model)
    (tmp_path / "run" / "data.json").unlink()
    with pytest.raises(CheckpointError, match="has no data.json, so the preprocessing"):
        dagnet.load(tmp_path / "run")
