"""The training recipe in a spec (`train:`): checked, the flags' defaults, overridden by flags,
and recorded in every run folder so that `dagnet train RUN/spec.yaml` repeats the run bitwise."""
import subprocess
import sys

import numpy as np
import pytest
import yaml

import dagnet
from dagnet.errors import SpecError
from dagnet.train.checkpoint import load_checkpoint
from dagnet.train.recipe import check_recipe

SPEC = """\
name: tiny
input: {shape: [1, 28, 28]}
layers:
  - {type: affine, hidden: 16}
  - {type: relu}
  - {type: affine, hidden: 10}
train:
  update_rule: sgd_momentum
  optim: {momentum: 0.8}
  lr: 0.02
  lr_schedule: step
  lr_decay: 0.5
  epochs: 2
  batch_size: 20
  weight_decay: 1.0e-4
  val: 40
  seed: 3
  augment: {crop: 1, flip: true}
"""


def dagnet_cli(*args):
    return subprocess.run([sys.executable, "-m", "dagnet.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_the_graph_ignores_the_recipe():
    plain = dagnet.Graph.from_spec(SPEC.split("train:")[0])
    assert dagnet.Graph.from_spec(SPEC) == plain


@pytest.mark.parametrize("section,needle", [
    ({"lr": "1e-3"}, "train.lr: must be a number, got '1e-3' (a string: write numbers like"),
    ({"epoch": 3}, "train: unknown key 'epoch' (did you mean 'epochs'?)"),
    ({"lr_schedule": "cos"}, "train.lr_schedule: must be one of cosine, step, constant"),
    ({"augment": {"crop": -2}}, "train.augment.crop: must be an integer >= 0"),
    ({"batch_size": 2.5}, "train.batch_size: must be an integer"),
    ([1, 2], "train: must be a mapping of training settings"),
])
def test_recipe_mistakes_name_the_key(section, needle):
    with pytest.raises(SpecError) as e:
        check_recipe(section)
    assert needle in str(e.value)


def test_the_recipe_trains_and_flags_override_it(tiny_mnist, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC + f"  data: mnist:{tiny_mnist}\n")
    r = dagnet_cli("train", spec, "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    s = load_checkpoint(tmp_path / "a" / "checkpoint.npz").solver
    assert (s["epoch"], s["batch_size"], s["seed"], s["update_rule"]) == (2, 20, 3, "sgd_momentum")
    assert s["schedule"]["name"] == "step" and s["schedule"]["learning_rate"] == 0.02
    assert s["augment"]["crop"] == 1 and s["augment"]["flip"] is True and s["weight_decay"] == 1e-4
    assert len(s["loss_history"]) == 2 * 8  # 160 training examples (200 - val 40) in batches of 20
    optimizer = load_checkpoint(tmp_path / "a" / "checkpoint.npz").optimizer
    assert float(optimizer["fc1.w/momentum"]) == 0.8
    r = dagnet_cli("train", spec, "--out", tmp_path / "b", "--quiet", "--epochs", 1,
                   "--batch-size", 40, "--cutout", 4)
    assert r.returncode == 0, r.stderr
    s = load_checkpoint(tmp_path / "b" / "checkpoint.npz").solver
    assert (s["epoch"], s["batch_size"], s["seed"]) == (1, 40, 3)
    assert s["augment"] == {"crop": 1, "translate": 0.0, "flip": True, "erase": 0.0, "cutout": 4}
    r = dagnet_cli("train", tmp_path / "nope.yaml", "--quiet")
    assert r.returncode == 2 and "spec file not found" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("epochs: 2", "epochz: 2"))
    r = dagnet_cli("train", bad, "--out", tmp_path / "c")
    assert r.returncode == 2 and r.stderr.startswith(f"dagnet train: {bad}: train: unknown key 'epochz'")


def test_a_run_folder_spec_repeats_the_run_bitwise(tiny_mnist, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    r = dagnet_cli("train", "two_layer_net", "--data", f"mnist:{tiny_mnist}", "--val", 40,
                   "--epochs", 2, "--batch-size", 32, "--update-rule", "adam", "--erase", 0.5,
                   "--flip", "--seed", 7, "--weight-decay", 1e-3, "--out", a, "--quiet")
    assert r.returncode == 0, r.stderr
    recipe = yaml.safe_load((a / "spec.yaml").read_text())["train"]
    assert recipe["lr"] == 1e-3 and recipe["update_rule"] == "adam"  # the rule's default, resolved
    assert recipe["augment"] == {"flip": True, "erase": 0.5} and recipe["seed"] == 7
    r = dagnet_cli("train", a / "spec.yaml", "--out", b, "--quiet")
    assert r.returncode == 0, r.stderr
    ca, cb = load_checkpoint(a / "checkpoint.npz"), load_checkpoint(b / "checkpoint.npz")
    assert ca.solver["loss_history"] == cb.solver["loss_history"]
    for k in ca.params:
        assert np.array_equal(ca.params[k], cb.params[k]), k
    assert yaml.safe_load((b / "spec.yaml").read_text()) == yaml.safe_load((a / "spec.yaml").read_text())
