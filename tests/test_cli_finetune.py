"""`dagnet train model.onnx --replace-head K --freeze NODE`: fine-tuning an imported network on
the tiny MNIST the conftest writes, as a user would run it."""
import json
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import dagnet  # noqa: E402
from dagnet.models import resnet20  # noqa: E402
from dagnet.onnx import export  # noqa: E402
from dagnet.train.checkpoint import load_checkpoint  # noqa: E402

FREEZE = "stage2.block3.relu2"


def dagnet_cli(*args):
    return subprocess.run([sys.executable, "-m", "dagnet.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A narrow ResNet-20 for 28x28 images and 4 classes, its weights made non-trivial, as
    ONNX: the network another framework trained."""
    plan = dagnet.compile(resnet20(input_shape=(1, 28, 28), num_classes=4, width=0.25), seed=3)
    rng = np.random.default_rng(3)
    for p in plan.params.values():
        p += (0.05 * rng.standard_normal(p.shape)).astype(p.dtype)
    path = tmp_path_factory.mktemp("onnx") / "resnet20.onnx"
    export(plan, path)
    return path, {k: v.copy() for k, v in plan.params.items()}


def test_fine_tune_an_imported_network(pretrained, tiny_mnist, tmp_path):
    path, weights = pretrained
    out = tmp_path / "run"
    r = dagnet_cli("train", path, "--data", f"mnist:{tiny_mnist}", "--replace-head", 10,
                   "--freeze", FREEZE, "--epochs", 3, "--val", 40, "--batch-size", 20,
                   "--lr", 0.05, "--out", out)
    assert r.returncode == 0, r.stderr
    frozen = [k for k in weights if k.startswith(("stem.", "stage1.", "stage2."))]
    n_frozen = sum(weights[k].size for k in frozen)
    assert f"({n_frozen:,} frozen up to {FREEZE})" in r.stdout
    losses = json.loads((out / "history.json").read_text())["loss_history"]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])  # the loss falls
    ck = load_checkpoint(out / "checkpoint.npz")
    for k in frozen:  # bitwise: no gradient, no momentum, no weight decay reached them
        assert np.array_equal(ck.params[k], weights[k]), k
    for k in ("stage3.block3.conv2.w", "stage3.block1.bn1.gamma"):  # the rest trained
        assert not np.array_equal(ck.params[k], weights[k]), k
    assert ck.params["scores.w"].shape == (16, 10) and ck.params["scores.b"].shape == (10,)
    svg = (out / "graph.svg").read_text()
    assert "frozen" in svg and "❄" in svg


@pytest.mark.parametrize("flags,message", [
    (["--replace-head", 5], "--replace-head 5: the mnist:.* labels go up to 9, so the head needs "
                            "at least 10 outputs"),
    (["--replace-head", 0], "--replace-head must be an integer >= 1"),
    (["--freeze", "stage2.block3.relu"], "--freeze: cannot freeze up to 'stage2.block3.relu': "
                                         "no such node .*did you mean 'stage2.block3.relu2'"),
    (["--replace-head", 10, "--freeze", "scores"], "--freeze scores freezes every param"),
])
def test_fine_tuning_mistakes_are_one_line(pretrained, tiny_mnist, tmp_path, flags, message):
    r = dagnet_cli("train", pretrained[0], "--data", f"mnist:{tiny_mnist}", *flags,
                   "--epochs", 1, "--val", 40, "--out", tmp_path / "run")
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dagnet train: ")
    import re
    assert re.search(message, err), err


def test_a_fine_tuning_run_resumes_bitwise_and_keeps_its_frozen_layers(pretrained, tiny_mnist, tmp_path):
    """Three epochs straight equal two and a --resume (a constant rate, so that the longer run
    does not change the schedule): the run remembers its new head and what it froze, so the
    flags may be left out; a different --freeze is refused, not silently applied."""
    path, weights = pretrained
    common = ["train", path, "--data", f"mnist:{tiny_mnist}", "--val", 40, "--batch-size", 20,
              "--lr", 0.05, "--lr-schedule", "constant", "--warmup", 0]
    tune = ["--replace-head", 10, "--freeze", FREEZE]
    assert dagnet_cli(*common, *tune, "--epochs", 3, "--out", tmp_path / "whole").returncode == 0
    assert dagnet_cli(*common, *tune, "--epochs", 2, "--out", tmp_path / "part").returncode == 0
    r = dagnet_cli(*common, "--out", tmp_path / "part", "--resume", "--override", "epochs=3")
    assert r.returncode == 0, r.stderr
    assert f"frozen up to {FREEZE}" in r.stdout and "resuming after epoch 2" in r.stdout
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.npz").params
    part = load_checkpoint(tmp_path / "part" / "checkpoint.npz").params
    assert whole.keys() == part.keys()
    for k in whole:
        assert np.array_equal(whole[k], part[k]), k
    for k in (k for k in weights if k.startswith(("stem.", "stage1.", "stage2."))):
        assert np.array_equal(part[k], weights[k]), k
    r = dagnet_cli(*common, "--freeze", "stage1.block1.relu2", "--out", tmp_path / "part", "--resume")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--freeze stage1.block1.relu2 now, stage2.block3.relu2 in the run" in r.stderr
