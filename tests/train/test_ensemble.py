"""Ensembles: averaged probabilities (the core function) and `dagnet evaluate ... --ensemble`."""
import json
import subprocess
import sys

import numpy as np
import pytest

from dagnet.errors import DatasetError
from dagnet.train.ensemble import evaluate_ensemble, probabilities


class Fixed:
    """A stand-in plan whose scores are given."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)

    def predict(self, X, batch_size=256):
        return self.scores[: len(X)]


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_ensemble_averages_probabilities_not_scores():
    y = np.array([0, 1, 1])
    # a confident member right on 2 of 3, a hesitant one right on 2 of 3, wrong on different ones
    a = Fixed([[9.0, 0.0], [0.0, 9.0], [0.3, 0.0]])
    b = Fixed([[0.0, 0.2], [0.4, 0.0], [0.0, 0.4]])
    X = np.zeros((3, 1))
    r = evaluate_ensemble([a, b], X, y)
    assert [m["accuracy"] for m in r["members"]] == pytest.approx([2 / 3, 1 / 3])
    mean = (softmax(a.scores.astype(float)) + softmax(b.scores.astype(float))) / 2
    assert np.allclose(probabilities(a, X), softmax(a.scores.astype(float)))
    assert r["ensemble"]["accuracy"] == pytest.approx(np.mean(mean.argmax(1) == y))
    assert r["ensemble"]["loss"] == pytest.approx(-np.log(mean[np.arange(3), y]).mean())
    # averaging the scores instead would let the confident member decide everything
    assert r["ensemble"]["accuracy"] == 1.0


def test_members_must_share_the_classes():
    with pytest.raises(DatasetError, match="different numbers of classes"):
        evaluate_ensemble([Fixed(np.zeros((2, 3))), Fixed(np.zeros((2, 4)))], np.zeros((2, 1)),
                          np.array([0, 1]))


def dagnet(*args):
    return subprocess.run([sys.executable, "-m", "dagnet.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tiny_mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("ens")
    dirs = []
    for lr in (0.01, 0.03):  # one split (--seed), two learning rates: as a search gives them
        d = out / f"lr{lr}"
        r = dagnet("train", "two_layer_net", "--data", f"mnist:{tiny_mnist}", "--epochs", 1,
                   "--val", 40, "--batch-size", 20, "--out", d, "--quiet", "--lr", lr)
        assert r.returncode == 0, r.stderr
        dirs.append(d)
    return dirs


def test_evaluate_ensemble_reports_members_and_ensemble(runs):
    r = dagnet("evaluate", *runs, "--ensemble", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for i, run in enumerate(runs):
        alone = json.loads(dagnet("evaluate", run, "--json").stdout)
        for split in ("train", "val", "test"):
            assert result[split]["members"][i]["accuracy"] == alone[split]["accuracy"]
            assert result[split]["members"][i]["loss"] == pytest.approx(alone[split]["loss"])
    assert 0 <= result["test"]["ensemble"]["accuracy"] <= 1
    table = dagnet("evaluate", *runs, "--ensemble")
    assert "ensemble" in table.stdout and "against its best member" in table.stdout


def test_ensemble_mistakes(runs, tiny_mnist, tmp_path):
    r = dagnet("evaluate", *runs)
    assert r.returncode == 2 and "pass --ensemble" in r.stderr
    r = dagnet("evaluate", runs[0], runs[0], "--ensemble")
    assert r.returncode == 2 and "given twice" in r.stderr
    other = tmp_path / "other"  # another split: only the test set is fair to both
    assert dagnet("train", "two_layer_net", "--data", f"mnist:{tiny_mnist}", "--epochs", 1,
                  "--seed", 5, "--val", 40, "--out", other, "--quiet").returncode == 0
    r = dagnet("evaluate", runs[0], other, "--ensemble", "--json")
    assert r.returncode == 0 and set(json.loads(r.stdout)) == {"runs", "test"}
    data = json.loads((other / "data.json").read_text())
    data["data"] = "fashion-mnist"
    (other / "data.json").write_text(json.dumps(data))
    r = dagnet("evaluate", runs[0], other, "--ensemble")
    assert r.returncode == 2 and "must share the data" in r.stderr
