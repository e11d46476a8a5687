"""`dagnet tune` as a user runs it: on tiny data, in one process, in two processes sharing one
SQLite study, with a worker killed mid-trial, and coarse-to-fine."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

SPACE = """\
lr: {low: 1.0e-3, high: 1.0e-1, log: true}
weight_decay: {low: 1.0e-6, high: 1.0e-2, log: true}
update_rule: {choices: [sgd_momentum, adam]}
batch_size: 40
"""


def tune(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "dagnet.cli", "tune", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, out + err
    return out


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def common(tiny_mnist, space, out, trials, *more):
    return ("two_layer_net", "--data", f"mnist:{tiny_mnist}", "--val", 40, "--space", space,
            "--trials", trials, "--out", out, *more)


def load(out, name="two_layer_net"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out}/study.db")


def test_one_worker_then_narrow(tiny_mnist, space, tmp_path):
    out = tmp_path / "t"
    text = finish(tune(*common(tiny_mnist, space, out, 3, "--sampler", "random", "--narrow")))
    first, fine = load(out), load(out, "two_layer_net-narrow")
    assert [t.state.name for t in first.trials] == ["COMPLETE"] * 3
    assert [t.state.name for t in fine.trials] == ["COMPLETE"] * 3
    folder = out / "two_layer_net"
    for t in first.trials:
        run = folder / f"trial_{t.number:04d}"
        assert t.user_attrs["run_dir"] == str(run)
        history = json.loads((run / "history.json").read_text())
        # the objective is the accuracy of the params the run keeps
        assert t.value == history["best_val_acc"] == max(history["val_acc_history"])
        assert (run / "checkpoint.npz").exists()
        assert t.params["update_rule"] in ("sgd_momentum", "adam")
    best = max(first.trials, key=lambda t: (t.value, -t.number))
    assert os.path.realpath(folder / "best") == str(folder / f"trial_{best.number:04d}")
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert [int(r["trial"]) for r in rows] == [0, 1, 2]
    assert float(rows[best.number]["val_acc"]) == best.value
    for name in ("trials.txt", "history.png", "scatter.png", "importance.png", "space.yaml"):
        assert (folder / name).stat().st_size > 0, name
    assert f"best: trial {best.number}, val acc {best.value:.4f}" in text
    # trial 0 is the baseline: `dagnet train`'s defaults where the space can take them
    zero = first.trials[0]
    assert zero.user_attrs["baseline"] and not any(t.user_attrs.get("baseline") for t in first.trials[1:])
    assert zero.params == {"lr": 0.04, "update_rule": "sgd_momentum", "weight_decay": 1e-6}
    assert "baseline: weight_decay = 0 (sgd_momentum's default): a log range cannot hold 0" in text
    assert "(the baseline: `dagnet train`'s defaults)" in text
    assert rows[0]["baseline"] == "1" and {r["baseline"] for r in rows[1:]} == {"0"}
    assert "baseline (dagnet train's defaults)" in (folder / "trials.txt").read_text()
    assert "baseline (trial 0, dagnet train's defaults)" in text
    # the narrowed ranges lie inside the first study's, and its trials inside them
    narrowed = first.user_attrs["narrowed_space"]
    assert 1e-3 <= narrowed["lr"]["low"] < narrowed["lr"]["high"] <= 1e-1
    for t in fine.trials:
        assert narrowed["lr"]["low"] <= t.params["lr"] <= narrowed["lr"]["high"]
    # the narrowed study runs the baseline again only where the narrowed ranges hold it
    rule = narrowed["update_rule"]
    again = narrowed["lr"]["low"] <= 0.04 <= narrowed["lr"]["high"] and \
        "sgd_momentum" in (rule["choices"] if isinstance(rule, dict) else [rule])
    assert [t.number for t in fine.trials if t.user_attrs.get("baseline")] == ([0] if again else [])
    assert ("the baseline runs again" if again else "the baseline is not run again") in text
    assert "two_layer_net-narrow" in text and (out / "two_layer_net-narrow" / "trials.csv").exists()
    check_tensorboard(folder, first.trials[0])


def check_tensorboard(folder, trial):
    """The study's hparams experiment, and each trial's run as a session of it."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    pb = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

    def plugin(run):
        acc = ea.EventAccumulator(str(run))
        acc.Reload()
        return {k: pb.HParamsPluginData.FromString(v)
                for k, v in acc.PluginTagToContent("hparams").items()}, acc

    exp, _ = plugin(folder)
    names = {h.name for h in exp["_hparams_/experiment"].experiment.hparam_infos}
    assert names == {"lr", "weight_decay", "update_rule"}
    session, acc = plugin(folder / f"trial_{trial.number:04d}")
    hp = session["_hparams_/session_start_info"].session_start_info.hparams
    assert hp["lr"].number_value == trial.params["lr"]
    assert hp["update_rule"].string_value == trial.params["update_rule"]
    assert acc.Scalars("epoch/val_acc")[-1].value == pytest.approx(trial.value)


def test_two_workers_share_one_sqlite_study(tiny_mnist, space, tmp_path):
    out = tmp_path / "t"
    args = common(tiny_mnist, space, out, 6, "--sampler", "random", "--epochs", 2)
    # started together: they race to create the storage's tables, then share the trials
    a, b = tune(*args), tune(*args)
    finish(a), finish(b)
    trials = load(out).trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 6 and len({t.number for t in done}) == 6
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2, workers  # both took part
    assert [t.number for t in trials if t.user_attrs.get("baseline")] == [0]  # once
    # a surplus trial (both took the last one at once) is the only way a trial may fail here
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in trials)


def test_a_killed_worker_loses_only_its_running_trial(tiny_mnist, space, tmp_path):
    out = tmp_path / "t"
    args = common(tiny_mnist, space, out, 3, "--sampler", "random", "--epochs", 3,
                  "--heartbeat", 1)
    a = tune(*args, start_new_session=True)
    # killed mid-run: after its first epoch's checkpoint, before its last
    wait_for(lambda: (out / "study.db").exists() and running(out) and
             (out / "two_layer_net" / "trial_0000" / "checkpoint.npz").exists(), a)
    os.killpg(a.pid, signal.SIGKILL)
    a.communicate()
    killed = running(out)[0]
    assert killed.number == 0 and killed.params
    text = finish(tune(*args))
    trials = load(out).trials
    states = {t.number: t.state.name for t in trials}
    assert states[killed.number] == "FAIL"
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 3
    retry = [t for t in done if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].params == killed.params  # run again, same settings
    assert f"trial {killed.number} again, its worker died: resuming its run" in text
    # the retry continued the killed run in its folder: 3 epochs in all, not 3 more
    assert retry[0].user_attrs["run_dir"] == killed.user_attrs["run_dir"]
    history = json.loads((out / "two_layer_net" / "trial_0000" / "history.json").read_text())
    assert len(history["val_acc_history"]) == 3 and retry[0].value == history["best_val_acc"]


def running(out):
    try:
        return load(out).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    except Exception:  # the storage or study is being created
        return []


def wait_for(condition, worker, timeout=120):
    end = time.monotonic() + timeout
    while not condition():
        if worker.poll() is not None:
            pytest.fail("the worker ended early:\n" + "".join(worker.communicate()))
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("entry,needle", [
    ("momentum: {low: 0.5, high: 0.99}", "space.yaml: momentum: not a `dagnet train` setting"),
    ("seed: {low: 0, high: 3}", "seed: set for the whole study by its flag"),
    ("update_rule: {choices: [sgd, adamm]}", "'adamm' is not one of"),
    ("batch_size: {low: 10.0, high: 20.0}", "--batch-size takes integers"),
    ("model.dropout: {low: 0.0, high: 0.5}", "two_layer_net() takes no 'dropout'"),
    ("fc1.p: {low: 0.0, high: 0.5}", "node 'fc1' (affine) has no attribute 'p'"),
    ("drop9.p: {low: 0.0, high: 0.5}", "the model has no node 'drop9'"),
])
def test_space_mistakes_are_one_line(tiny_mnist, tmp_path, entry, needle):
    path = tmp_path / "space.yaml"
    path.write_text(entry + "\n")
    p = tune(*common(tiny_mnist, path, tmp_path / "t", 2))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_a_spec_recipe_and_optim_and_augment_keys(tiny_mnist, tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("name: net\ninput: {shape: [1, 28, 28]}\nlayers:\n  - {type: affine, hidden: 10}\n"
                    f"train: {{data: 'mnist:{tiny_mnist}', val: 40, batch_size: 32, epochs: 2}}\n")
    space = tmp_path / "space.yaml"
    space.write_text("optim.momentum: {low: 0.5, high: 0.95}\nflip: {choices: [true, false]}\n"
                     "crop: {low: 0, high: 2}\n")
    finish(tune(spec, "--space", space, "--trials", 2, "--out", tmp_path / "t", "--sampler", "random"))
    from dagnet.train.checkpoint import load_checkpoint

    for t in load(tmp_path / "t", "net").trials:
        ck = load_checkpoint(os.path.join(t.user_attrs["run_dir"], "checkpoint.npz"))
        assert (ck.solver["batch_size"], ck.solver["epoch"]) == (32, 2)  # the recipe's
        assert float(ck.optimizer["scores.w/momentum"]) == t.params["optim.momentum"]
        assert ck.solver["augment"]["flip"] == t.params["flip"]
        assert ck.solver["augment"]["crop"] == t.params["crop"]
    space.write_text("optim.momentumm: {low: 0.5, high: 0.95}\n")
    p = tune(spec, "--space", space, "--trials", 2, "--out", tmp_path / "u")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "no update rule takes 'momentumm'" in err


def test_workers_flag_starts_workers_with_a_share_of_the_cores(tiny_mnist, space, tmp_path):
    out = tmp_path / "t"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAGNET_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    text = finish(tune(*common(tiny_mnist, space, out, 4, "--sampler", "random", "--workers", 2),
                       env=env))
    trials = load(out).trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 4 and [t.number for t in trials if t.user_attrs.get("baseline")] == [0]
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both ran trials
    # each worker's pools were cores // 2 wide
    assert {t.user_attrs["threads"] for t in done} == {max(1, (os.cpu_count() or 1) // 2)}
    assert f"starting 2 workers on this machine, {max(1, (os.cpu_count() or 1) // 2)} thread(s)" in text
    assert "[worker 0] trial" in text and "[worker 1] trial" in text
    # the parent writes the table and pictures once, after both
    assert text.count("best: trial") == 1 and text.count("baseline: weight_decay") == 1
    assert (out / "two_layer_net" / "trials.csv").exists() and (out / "two_layer_net" / "history.png").exists()
