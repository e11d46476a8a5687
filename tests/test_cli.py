"""The dagnet command, run as a user would (subprocess) on tiny data the test writes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest


def dagnet(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dagnet.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tiny_mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lenet"
    r = dagnet("train", "lenet", "--data", f"mnist:{tiny_mnist}", "--epochs", 2, "--val", 40,
               "--batch-size", 20, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout
    return out


def test_train_writes_the_run(run_dir):
    names = set(os.listdir(run_dir))
    assert {"checkpoint.npz", "history.json", "data.json"} <= names
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["train_acc_history"]) == 2 and len(history["loss_history"]) == 16


def test_evaluate_json(run_dir):
    r = dagnet("evaluate", run_dir, "--json", "--top-k", 3)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result) == {"train", "val", "test"}
    for split, n in (("train", 160), ("val", 40), ("test", 60)):
        r = result[split]
        assert 0 <= r["accuracy"] <= r["top_k_accuracy"] <= 1 and r["loss"] > 0 and r["top_k"] == 3
        confusion = np.array(r["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == n
        assert np.trace(confusion) / n == pytest.approx(r["accuracy"])


def test_evaluate_table_confusion_matrix_and_picture(run_dir):
    (run_dir / "confusion.png").unlink(missing_ok=True)
    r = dagnet("evaluate", run_dir, "--top-k", 2)
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split() == ["split", "loss", "accuracy", "top-2"]
    assert "confusion matrix on test (60 examples; rows: true class, columns: predicted)" in r.stdout
    matrix = [line for line in rows if line[:1].isdigit()]
    assert len(matrix) == 10 and all(len(line.split()) == 12 for line in matrix)  # label, 10, recall
    assert any(line.startswith("precision") for line in rows)
    assert (run_dir / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {run_dir / 'confusion.png'}" in r.stdout
    r = dagnet("evaluate", run_dir, "--top-k", 11)
    assert r.returncode == 2 and "--top-k must be at most the number of classes (10)" in r.stderr


def test_every_model_command_takes_every_kind_of_model(run_dir, tmp_path, capsys):
    """A zoo name, a spec file, a checkpoint and a run directory (.onnx: see the ONNX test);
    in-process, to spare a dozen interpreter starts."""
    from dagnet.cli.main import main
    from dagnet.models import spec_path

    spec = tmp_path / "net.yaml"
    spec.write_text(spec_path("lenet").read_text())
    for target in ("lenet", spec, run_dir, run_dir / "checkpoint.npz"):
        assert main(["summary", str(target)]) == 0, target
        assert "431,080" in capsys.readouterr().out
        assert main(["render", str(target), "-o", str(tmp_path / "g.dot")]) == 0, target
        assert "conv1" in (tmp_path / "g.dot").read_text()
    assert main(["gradcheck", str(run_dir), "--entries", "2"]) == 0  # trained weights, float64
    assert "ok: worst error" in capsys.readouterr().out
    assert main(["diff", str(run_dir), "lenet_bn", "-o", str(tmp_path / "d.svg")]) == 0
    capsys.readouterr()
    assert main(["summary", str(tmp_path)]) == 2
    assert "is not a run folder: it holds no checkpoint.npz" in capsys.readouterr().err
    assert main(["summary", "lenett"]) == 2
    assert "did you mean 'lenet'?" in capsys.readouterr().err


def test_predict_prints_and_writes_classes_and_probabilities(run_dir, tiny_mnist, tmp_path):
    import dagnet as api
    from dagnet.data.idx import read_idx

    idx = tiny_mnist / "t10k-images-idx3-ubyte.gz"
    raw = read_idx(idx)[:7]  # uint8 (7, 28, 28): raw pixels, no channel axis
    np.save(tmp_path / "images.npy", raw)
    model = api.load(run_dir)
    want = model.predict(raw)
    r = dagnet("predict", run_dir, tmp_path / "images.npy")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["image", "class", "probability"] and len(lines) == 8
    assert [int(line.split()[1]) for line in lines[1:]] == want.tolist()
    r = dagnet("predict", run_dir, idx, "--top", 3, "-o", tmp_path / "p.json")
    assert r.returncode == 0 and "wrote 60 predictions" in r.stdout, r.stderr
    records = json.loads((tmp_path / "p.json").read_text())
    assert [rec["class"] for rec in records[:7]] == want.tolist()
    top = records[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    r = dagnet("predict", run_dir, idx, "--top", 2, "-o", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    head, *rows = (tmp_path / "p.csv").read_text().splitlines()
    assert head == "image,class_1,probability_1,class_2,probability_2" and len(rows) == 60
    assert [int(row.split(",")[1]) for row in rows[:7]] == want.tolist()
    # the run's test accuracy again, from the raw test images: the preprocessing matches
    labels = read_idx(tiny_mnist / "t10k-labels-idx1-ubyte.gz")
    test = json.loads(dagnet("evaluate", run_dir, "--json").stdout)["test"]
    assert model.evaluate(read_idx(idx), labels)["accuracy"] == pytest.approx(test["accuracy"])


@pytest.mark.parametrize("args,needle", [
    (("images.npy",), "images file not found: images.npy"),
    (("bad.npy",), "images of shape (3, 5) do not fit the model's input (1, 28, 28)"),
    (("bad.npy", "-o", "out.txt"), "write predictions to a .csv or a .json file"),
    (("bad.npy", "--top", "0"), "--top: must be an integer >= 1, got 0"),
])
def test_predict_mistakes(run_dir, tmp_path, args, needle):
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.uint8))
    r = dagnet("predict", run_dir, *args, cwd=tmp_path)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_evaluate_a_folder_saved_in_python(run_dir, tmp_path):
    import dagnet as api

    api.save(tmp_path / "saved", api.load(run_dir))
    r = dagnet("evaluate", tmp_path / "saved")
    assert r.returncode == 2 and "does not say which data it was trained on" in r.stderr
    r = dagnet("summary", tmp_path / "saved")
    assert r.returncode == 0 and "431,080" in r.stdout


def test_resume_refuses_to_overwrite_and_continues(run_dir, tiny_mnist):
    r = dagnet("train", "lenet", "--data", f"mnist:{tiny_mnist}", "--epochs", 2, "--out", run_dir)
    assert r.returncode == 2 and "--resume" in r.stderr
    # more epochs than the run was started with: a change of its recipe, asked for explicitly
    r = dagnet("train", "lenet", "--data", f"mnist:{tiny_mnist}", "--epochs", 3, "--val", 40,
               "--batch-size", 20, "--out", run_dir, "--resume", "--quiet")
    assert r.returncode == 2 and "--override epochs=3" in r.stderr
    r = dagnet("train", "lenet", "--out", run_dir, "--resume", "--override", "epochs=3", "--quiet")
    assert r.returncode == 0, r.stderr  # the run's own data, val and batch-size flags
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["train_acc_history"]) == 3
    [change] = history["changes"]
    assert change["epoch"] == 2 and change["changed"]["num_epochs"] == [2, 3]
    # the cosine schedule spans the longer run: 8 steps per epoch
    assert [s["total"] for s in change["changed"]["lr_schedule"]] == [16, 24]


def test_summary_lenet():
    r = dagnet("summary", "lenet")
    assert r.returncode == 0, r.stderr
    assert "(20, 24, 24)" in r.stdout and "431,080" in r.stdout
    # LeNet-paper connection counting: conv1 (5*5*1 + 1) * 20 * 24 * 24
    assert f"{26 * 20 * 24 * 24:,}" in r.stdout


def test_gradcheck_command():
    r = dagnet("gradcheck", "two_layer_net", "--entries", 5)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: worst error" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (("train", "nosuchmodel"), "unknown model 'nosuchmodel'"),
    (("train", "missing.yaml"), "spec file not found"),
    (("train", "lenet", "--epochs", "zero"), "invalid int value"),
    (("train", "lenet", "--data", "imagenet"), "unknown dataset 'imagenet'"),
    (("train", "lenet", "--data", "mnist:/nonexistent"), "not found in /nonexistent"),
    (("evaluate", "/nonexistent"), "no run directory"),
    (("train", "lenet", "--epochs", "1", "--warmup", "1"), "--warmup must be at least 0 and less"),
    (("train", "lenet", "--lr", "0"), "--lr must be a number > 0, got 0.0"),
    (("train", "lenet", "--lr", "nan"), "--lr must be a number > 0, got nan"),
    (("train", "lenet", "--patience", "0"), "--patience must be an integer >= 1, got 0"),
    (("train", "lenet", "--weight-decay", "-1"), "--weight-decay must be a number >= 0"),
    (("train", "lenet", "--seed", "-1"), "--seed must be an integer >= 0, got -1"),
    (("train", "lenet", "--update-rule", "adamx"), "invalid choice: 'adamx'"),
])
def test_user_mistakes_give_one_line_and_exit_2(args, needle, tmp_path):
    r = dagnet(*args, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_help_everywhere():
    for cmd in ([], ["train"], ["evaluate"], ["summary"], ["gradcheck"], ["predict"]):
        r = dagnet(*cmd, "--help")
        assert r.returncode == 0 and "usage: dagnet" in r.stdout
    r = dagnet("train", "--help")
    text = " ".join(r.stdout.split())
    assert "(default: 2)" in text and "(default: sgd_momentum)" in text and "(default: 0)" in text


def test_every_argument_has_help_and_shows_its_default():
    import argparse

    from dagnet.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[-1] if action.option_strings else action.dest
            assert action.help, f"dagnet {name} {flag} has no help text"
            if action.default is not None and action.default is not False:
                assert f"(default: {action.default})" in text, f"dagnet {name} {flag}"


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "dagnet")
    assert os.path.exists(script), "pip install -e . should install the dagnet command"
    r = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "train" in r.stdout


def test_render_graph_plan_memory_and_passes(tmp_path):
    r = dagnet("render", "lenet", "-o", tmp_path / "g.svg")
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / "g.svg").read_text()
    assert all(f">{name}</text>" in svg for name in ("conv1", "pool2", "fc1", "scores", "loss"))
    r = dagnet("render", "lenet", "--plan", "--backward", "--memory", "-o", tmp_path / "p.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "p_memory.png").stat().st_size > 10_000
    r = dagnet("render", "models/specs/resnet_small.yaml", "--passes", tmp_path / "strip",
               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr
    frames = sorted(os.listdir(tmp_path / "strip"))
    assert frames[0].startswith("00_declared") and any("fuse" in f for f in frames)


def test_diff_command(tmp_path):
    r = dagnet("diff", "lenet", "lenet_bn", "-o", tmp_path / "d.svg")
    assert r.returncode == 0, r.stderr
    assert "bn1" in (tmp_path / "d.svg").read_text()


def test_plot_and_maps_of_a_run(run_dir, tmp_path):
    r = dagnet("plot", run_dir)
    assert r.returncode == 0, r.stderr
    assert (run_dir / "curves.png").stat().st_size > 10_000
    assert (run_dir / "filters.png").exists()
    r = dagnet("maps", run_dir, "--node", "conv1", "--index", 3, "-o", tmp_path / "m.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    r = dagnet("maps", run_dir, "--node", "nope")
    assert r.returncode == 2 and "no node 'nope'" in r.stderr


def test_train_writes_pictures(run_dir):
    assert (run_dir / "graph.svg").exists() and (run_dir / "curves.png").exists()


def test_export_import_render_and_finetune_onnx(run_dir, tiny_mnist, tmp_path):
    pytest.importorskip("onnx")
    r = dagnet("export", run_dir, "-o", tmp_path / "lenet.onnx")
    assert r.returncode == 0, r.stderr
    r = dagnet("import", tmp_path / "lenet.onnx", "-o", tmp_path / "lenet.yaml")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lenet.weights.npz").exists()
    r = dagnet("render", tmp_path / "lenet.onnx", "-o", tmp_path / "onnx.svg")
    assert r.returncode == 0, r.stderr
    spec = (tmp_path / "lenet.yaml").read_text()
    assert "conv2d" in spec and "Gemm" not in spec
    r = dagnet("summary", tmp_path / "lenet.onnx")
    assert r.returncode == 0 and "431,080" in r.stdout, r.stderr
    r = dagnet("gradcheck", tmp_path / "lenet.onnx", "--entries", 1)  # gains a loss, as train does
    assert r.returncode == 0 and "ok: worst error" in r.stdout, r.stdout + r.stderr
    # fine-tune the imported model (train adds a softmax loss to a graph that has none)
    r = dagnet("train", tmp_path / "lenet.yaml", "--weights", tmp_path / "lenet.weights.npz",
               "--data", f"mnist:{tiny_mnist}", "--epochs", 1, "--val", 40, "--batch-size", 20,
               "--out", tmp_path / "ft", "--quiet")
    assert r.returncode == 0, r.stderr
    fresh = json.loads((run_dir / "history.json").read_text())["loss_history"][0]
    tuned = json.loads((tmp_path / "ft" / "history.json").read_text())["loss_history"][0]
    assert tuned < 0.8 * fresh, (tuned, fresh)  # it started from the trained weights


def test_learning_rate_schedules_from_flags():
    from dagnet.cli import build_parser
    from dagnet.cli.train import lr_schedule as _schedule
    from dagnet.train.schedules import make_schedule

    args = build_parser().parse_args(["train", "lenet", "--epochs", "2", "--batch-size", "10",
                                      "--lr", "0.04"])
    cos = make_schedule(_schedule(args, 95), args.lr)  # 10 steps per epoch, warm-up 0.1 epoch
    assert cos.per == "step" and cos.warmup == 1 and cos(0) == args.lr and cos(1) == args.lr
    assert cos(20) == pytest.approx(0.0, abs=1e-12)
    args = build_parser().parse_args(["train", "lenet", "--epochs", "2", "--batch-size", "10",
                                      "--warmup", "0.5", "--lr", "0.04"])
    cos = make_schedule(_schedule(args, 95), args.lr)
    assert cos.warmup == 5 and [cos(t) for t in range(5)] == pytest.approx(
        [args.lr * k / 5 for k in range(1, 6)])
    args = build_parser().parse_args(["train", "lenet", "--lr-schedule", "step", "--lr-decay", "0.5",
                                      "--lr", "0.04"])
    step = make_schedule(_schedule(args, 95), args.lr)
    assert step(2) == pytest.approx(args.lr * 0.25)


def train_args(tiny_mnist, out, *extra):
    return ["train", "two_layer_net", "--data", f"mnist:{tiny_mnist}", "--val", 40,
            "--batch-size", 20, "--out", out, *extra]


def test_train_off_a_terminal_prints_one_line_per_epoch(tiny_mnist, tmp_path):
    r = dagnet(*train_args(tiny_mnist, tmp_path / "run", "--epochs", 3))
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\r" not in r.stdout  # no progress bar in a log file
    lines = [line for line in r.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "iteration" not in r.stdout


def test_resumed_run_reports_the_speed_of_its_own_epochs(tiny_mnist, tmp_path, capsys):
    """After --resume, s/epoch and images/s count only the epochs this run trained."""
    from dagnet.cli.main import main
    from dagnet.train.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    assert main([*map(str, train_args(tiny_mnist, out, "--epochs", 1))]) == 0
    ck_path = out / "checkpoint.npz"
    ck = load_checkpoint(ck_path)
    ck.solver["epoch_times"] = [1000.0]  # as if the first run had been very slow
    save_checkpoint(ck_path, ck.params, ck.state, ck.optimizer, ck.solver, ck.spec, ck.extra)
    capsys.readouterr()
    assert main([*map(str, train_args(tiny_mnist, out, "--resume", "--override", "epochs=2"))]) == 0
    summary = [line for line in capsys.readouterr().out.splitlines() if "s/epoch" in line][-1]
    seconds = float(summary.split(" s/epoch")[0].rsplit(" ", 1)[1])
    assert seconds < 100, summary  # one fast epoch, not the mean with the 1000 s one
    assert "1 epoch" in summary


def test_a_run_resumed_with_no_epoch_left_rewrites_its_history(tiny_mnist, tmp_path):
    """Killed after its last checkpoint but before that epoch's history.json (each epoch writes
    them in that order), a run resumed with nothing left to train still leaves a history.json
    that holds every epoch of the checkpoint (tune's retried trials read it)."""
    from dagnet.cli.main import main

    out = tmp_path / "run"
    assert main([*map(str, train_args(tiny_mnist, out, "--epochs", 2, "--quiet"))]) == 0
    full = json.loads((out / "history.json").read_text())
    stale = {**full, "val_acc_history": full["val_acc_history"][:1], "epoch": 1}
    (out / "history.json").write_text(json.dumps(stale))  # as the kill would leave it
    assert main([*map(str, train_args(tiny_mnist, out, "--epochs", 2, "--resume", "--quiet"))]) == 0
    again = json.loads((out / "history.json").read_text())
    assert again["val_acc_history"] == full["val_acc_history"] and again["epoch"] == 2


@pytest.mark.parametrize("flags,options", [
    ([], {"update_rule": "sgd_momentum", "optim_config": {"learning_rate": 4e-2},
          "weight_decay": 0.0, "patience": None, "monitor": "val_acc", "min_delta": 0.0}),
    (["--update-rule", "adam"], {"optim_config": {"learning_rate": 1e-3}}),
    (["--update-rule", "adadelta"], {"optim_config": {"learning_rate": 1.0}}),
    (["--update-rule", "adamw"], {"optim_config": {"learning_rate": 1e-3, "weight_decay": 1e-2},
                                  "weight_decay": 0.0}),
    (["--update-rule", "adamw", "--weight-decay", "0.1", "--lr", "3e-3"],
     {"optim_config": {"learning_rate": 3e-3, "weight_decay": 0.1}, "weight_decay": 0.0}),
    (["--update-rule", "rmsprop", "--weight-decay", "1e-4"],
     {"optim_config": {"learning_rate": 1e-2}, "weight_decay": 1e-4}),
    (["--patience", "3", "--monitor", "val_loss", "--min-delta", "0.01"],
     {"patience": 3, "monitor": "val_loss", "min_delta": 0.01}),
])
def test_train_flags_become_solver_options(flags, options):
    from dagnet.cli import build_parser
    from dagnet.cli.train import solver_options

    args = build_parser().parse_args(["train", "lenet", *flags])
    got = solver_options(args)
    for key, want in options.items():
        assert got[key] == want, key


def test_every_train_flag_has_help_text():
    from dagnet.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        if action.dest != "help":
            assert action.help, action.dest
    choices = next(a for a in train._actions if a.dest == "update_rule").choices
    assert {"adamw", "adadelta", "rmsprop"} <= set(choices)


def test_train_with_early_stopping(tiny_mnist, tmp_path):
    r = dagnet(*train_args(tiny_mnist, tmp_path / "run", "--epochs", 20, "--update-rule",
                           "adadelta", "--lr", "1e-9", "--patience", 2))
    assert r.returncode == 0, r.stderr
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["val_acc_history"]) == 3 and history["stopped_early"]
    assert "stopped early" in r.stdout and "epoch 1" in r.stdout
