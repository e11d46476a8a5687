"""Attacks on resuming a run (issue 15.1) and on the files of a run folder (15.3)."""
from __future__ import annotations

import json
import shutil

import numpy as np

from dagnet.train.checkpoint import load_checkpoint, save_checkpoint
from tests.reliability.attack.env import Keep
from tests.reliability.attack.harness import EITHER, ERROR, OK, Silent, attack
from tests.reliability.helpers import write_mnist_like

A = "resume"


def refused(env, *flags, spec=None):
    """A resume that must be refused and leave the run as it was."""
    run = env.run()
    with Keep(run / "checkpoint.npz", run / "data.json", run / "history.json"):
        env.resume(*flags, spec=spec)


@attack("resume-relu-to-tanh", A, says="op relu -> tanh")
def _(env):
    refused(env, spec=env.spec(act="tanh"))


@attack("resume-added-dropout", A, says="dropout")
def _(env):
    refused(env, spec=env.spec(extra="  - {type: dropout, p: 0.3}\n"))


@attack("resume-leaky-relu", A, says="leaky_relu")
def _(env):
    refused(env, spec=env.spec(act="leaky_relu"))


@attack("resume-zoo-model-instead", A)
def _(env):
    refused(env, spec="lenet")


for _flag, _value in [("--val", "30"), ("--seed", "3"), ("--dtype", "float64"),
                      ("--data", "mnist:/nonexistent"), ("--lr", "0.01"),
                      ("--lr-schedule", "cosine"), ("--epochs", "1"), ("--epochs", "5"),
                      ("--batch-size", "7"), ("--update-rule", "sgd"), ("--weight-decay", "0.1"),
                      ("--patience", "2"), ("--monitor", "val_loss"), ("--min-delta", "0.1"),
                      ("--warmup", "0.5"), ("--lr-decay", "0.5")]:
    @attack(f"resume-other{_flag}={_value}", A, says=_flag if _flag != "--data" else "")
    def _(env, flag=_flag, value=_value):
        refused(env, flag, value)


# main's train settings since: preprocessing (fixed for a run) and augmentation (a recipe key)
for _flags, _says in [(("--preprocessing", "mean_image"), "--preprocessing"),
                      (("--crop", "2"), "--crop"), (("--flip",), "--flip"),
                      (("--erase", "0.5"), "--erase"), (("--cutout", "3"), "--cutout")]:
    @attack(f"resume-other{'='.join(_flags)}", A, says=_says)
    def _(env, flags=_flags):
        refused(env, *flags)


@attack("resume-override-augmentation-recorded", A, expect=OK)
def _(env):
    run = env.run()
    env.resume("--override", "crop=2", "--override", "flip=true", "--override", "epochs=3")
    history = json.loads((run / "history.json").read_text())
    changed = history["changes"][0]["changed"]
    if "augment" not in changed or changed["augment"][0] is not None or history["epoch"] != 3:
        raise Silent(f"history records {history['changes']}")
    if "crop: 2" not in (run / "spec.yaml").read_text():
        raise Silent("spec.yaml does not hold the run's new augmentation")


@attack("resume-spec-recipe-edited", A, says="--lr")
def _(env):  # a spec's train: recipe counts as given: an edited one is refused, not ignored
    spec = env.spec()
    spec.write_text(spec.read_text() + "train: {lr: 0.5}\n")
    refused(env, spec=spec)


@attack("resume-from-its-own-spec-yaml", A, expect=OK)
def _(env):  # spec.yaml records the rate the run used where it had no --lr: not a change
    run = env.tmp / "nolr"
    env.cli("train", env.net, "--data", f"mnist:{env.data}", "--epochs", "1", "--val", "20",
            "--batch-size", "10", "--quiet", "--out", run)
    env.cli("train", run / "spec.yaml", "--out", run, "--resume", "--quiet", "--override",
            "epochs=2")
    if load_checkpoint(run / "checkpoint.npz").solver["epoch"] != 2:
        raise Silent("the resumed run did not reach epoch 2")


@attack("resume-other-data-files", A, says="other data")
def _(env):
    other = env.tmp / "other"
    other.mkdir()
    write_mnist_like(str(other), n_train=120, n_test=30, size=8, classes=4, seed=7)
    run = env.run()
    with Keep(run / "checkpoint.npz", run / "data.json"):
        env.cli("train", env.net, "--data", f"mnist:{other}", "--out", run, "--resume", "--quiet")


@attack("resume-same-dir-files-changed", A, says="other data")
def _(env):
    data = env.tmp / "data"
    shutil.copytree(env.data, data)
    run = env.tmp / "run"
    env.train(out=run, data=data)
    write_mnist_like(str(data), n_train=120, n_test=30, size=8, classes=4, seed=9)
    with Keep(run / "checkpoint.npz", run / "data.json"):
        env.resume()


@attack("resume-no-flags-continues", A, expect=OK)
def _(env):
    env.resume("--override", "epochs=3")
    ck = load_checkpoint(env.run() / "checkpoint.npz")
    if ck.solver["epoch"] != 3 or ck.solver["recipe"]["learning_rate"] != 1e-3:
        raise Silent(f"epoch {ck.solver['epoch']}, recipe {ck.solver['recipe']}")


@attack("resume-override-lr-recorded", A, expect=OK)
def _(env):
    run = env.run()
    with Keep(run / "data.json"):
        env.resume("--override", "lr=0.01", "--override", "epochs=3")
    history = json.loads((run / "history.json").read_text())
    changed = history["changes"][0]["changed"]
    if changed.get("learning_rate") != [1e-3, 0.01] or history["epoch"] != 3:
        raise Silent(f"history records {history['changes']}")


@attack("resume-override-update-rule", A, expect=OK)
def _(env):
    env.resume("--override", "update_rule=sgd_momentum", "--override", "epochs=3")


@attack("resume-override-fixed-flag", A, says="fixed for the life of a run")
def _(env):
    refused(env, "--override", "val=30")


@attack("resume-override-unknown-flag", A, says="--override takes FLAG=VALUE")
def _(env):
    refused(env, "--override", "learning_rate=0.1")


@attack("resume-override-bad-value", A, says="not a valid --lr")
def _(env):
    refused(env, "--override", "lr=fast")


@attack("resume-override-bad-choice", A, says="takes one of")
def _(env):
    refused(env, "--override", "update_rule=adamx")


@attack("resume-override-disagrees", A, says="disagree")
def _(env):
    refused(env, "--lr", "0.1", "--override", "lr=0.01")


@attack("resume-override-without-resume", A, says="--resume")
def _(env):
    env.train("--override", "lr=0.1", out=env.tmp / "fresh")


@attack("resume-override-fewer-epochs", A, says="already run 2 epochs")
def _(env):
    refused(env, "--override", "epochs=1")


@attack("train-over-a-run-without-resume", A, says="--resume")
def _(env):
    run = env.run()
    with Keep(run / "checkpoint.npz", run / "data.json"):
        env.train(out=run)


def craft(env, solver=None, **sections):
    run = env.run()
    ck = load_checkpoint(run / "checkpoint.npz")
    parts = {"params": ck.params, "state": ck.state, "optimizer": ck.optimizer,
             "solver": {**ck.solver, **(solver or {})}, "spec": ck.spec, "extra": ck.extra}
    parts.update(sections)
    save_checkpoint(run / "checkpoint.npz", **parts)
    return ck


@attack("crafted-best-params-shape", A, says="best_params")
def _(env):
    ck = load_checkpoint(env.run() / "checkpoint.npz")
    best = {k: np.ones(1, v.dtype) for k, v in ck.extra["best_params"].items()}
    craft(env, extra={**ck.extra, "best_params": best})
    env.resume("--override", "epochs=3")


@attack("crafted-optimizer-shape", A, says="optimizer")
def _(env):
    ck = load_checkpoint(env.run() / "checkpoint.npz")
    craft(env, optimizer={k: (np.ones(1, v.dtype) if v.ndim else v) for k, v in ck.optimizer.items()})
    env.resume("--override", "epochs=3")


for _field, _value in [("epoch", "2"), ("epoch", -5), ("epoch", 10 ** 30), ("loss_history", {}),
                       ("loss_history", ["x"]), ("train_acc_history", None),
                       ("epoch_times", "fast"), ("best_val_acc", "high"), ("best_epoch", -1),
                       ("best_epoch", 99), ("rng", "seed"), ("rng", {"bit_generator": "MT19937"}),
                       ("plan_rng", {"bit_generator": "PCG64", "state": {"state": -1, "inc": 3}}),
                       ("recipe", "adam"), ("changes", "none"), ("run_info", [1]),
                       ("run_info", {"flags": {"lr": [1]}}), ("data", 7), ("val_loss_history", 3)]:
    @attack(f"crafted-solver-{_field}={_value!r}"[:60], A, expect=ERROR)
    def _(env, field=_field, value=_value):
        craft(env, {field: value})
        env.resume("--override", "epochs=3")


@attack("crafted-spec-cycle", A)
def _(env):
    ck = load_checkpoint(env.run() / "checkpoint.npz")
    spec = json.loads(json.dumps(ck.spec))
    spec["nodes"][1]["inputs"] = [spec["nodes"][-1]["name"]]
    craft(env, spec=spec)
    env.resume("--override", "epochs=3")


@attack("evaluate-crafted-spec", A)
def _(env):
    craft(env, spec={"name": "x", "nodes": "lots"})
    env.cli("evaluate", env.run())


for _i, (_name, _text) in enumerate([("data.json", '{"data": 3, "num_val": 20, "split_seed": 0, "normalization": {}}'),
                     ("data.json", '{"data": "mnist:x", "num_val": "20", "split_seed": 0, "normalization": {}}'),
                     ("data.json", '{"data": "mnist:x", "num_val": -20, "split_seed": 0, "normalization": {}}'),
                     ("data.json", "[1, 2]"), ("data.json", "{broken"), ("data.json", "\xff\xfe"),
                     ("data.json", ""), ("history.json", '{"loss_history": "x"}'),
                     ("history.json", '{"loss_history": [1], "train_acc_history": [null], "val_acc_history": []}'),
                     ("history.json", "[[[["), ("history.json", "null")]):
    for _command in (["evaluate"], ["maps", "--node", "conv1"], ["plot"]):
        if (_name == "history.json") != (_command[0] == "plot"):
            continue

        @attack(f"mistyped-{_name}-{_command[0]}-{_i}", A)
        def _(env, name=_name, text=_text, command=_command):
            run = env.run()
            (run / name).write_text(text, encoding="latin-1")
            with Keep(run / "checkpoint.npz"):
                env.cli(command[0], run, *command[1:], *(["-o", env.tmp / "x.png"]
                                                           if command[0] != "evaluate" else []))


@attack("missing-data-json-evaluate", A, says="data.json")
def _(env):
    run = env.run()
    (run / "data.json").unlink()
    env.cli("evaluate", run)


@attack("resume-with-data-json-lost", A, expect=EITHER)
def _(env):
    run = env.run()
    (run / "data.json").unlink()
    env.resume("--override", "epochs=3")
    if not (run / "data.json").exists():
        raise Silent("data.json not written back")
