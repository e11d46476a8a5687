"""The baseline trial: `dagnet train`'s defaults for each dimension the space names, enqueued as
trial 0 exactly once however many workers create the study at the same moment."""
import argparse
import multiprocessing
import sys

import pytest

from dagnet.cli.tune_baseline import baseline, refit
from dagnet.cli.tune_trials import train_namespace
from dagnet.tune.space import fits, parse_space

optuna = pytest.importorskip("optuna")


def base_of(model, **flags):
    args = argparse.Namespace(model=model, data=None, epochs=None, val=None, seed=None)
    base = train_namespace(args)
    for k, v in flags.items():
        setattr(base, k, v)
    return base


def test_the_defaults_of_each_kind_of_key():
    space = parse_space({
        "lr": {"low": 1e-3, "high": 1e-1, "log": True},
        "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "update_rule": {"choices": ["sgd_momentum", "adam"]},
        "batch_size": {"low": 32, "high": 256, "step": 32},
        "warmup": {"low": 0.0, "high": 0.5},
        "optim.momentum": {"low": 0.5, "high": 0.99},
        "optim.beta2": {"low": 0.9, "high": 0.9999},
        "model.dropout": {"low": 0.0, "high": 0.5},
        "patience": {"low": 1, "high": 3},
        "lr_schedule": "cosine",
    })
    params, notes = baseline(space, base_of("fc_net"))
    # --lr's default for sgd_momentum is SGD_LR, not the update rule's own 1e-2
    assert params == {"lr": 0.04, "weight_decay": 1e-6, "update_rule": "sgd_momentum",
                      "batch_size": 64, "warmup": 0.1, "optim.momentum": 0.9, "model.dropout": 0.0}
    assert notes == [
        "weight_decay = 0 (sgd_momentum's default): a log range cannot hold 0; the baseline takes "
        "its low end, 1e-06, the nearest value it holds",
        "optim.beta2: the default update rule, sgd_momentum, takes no beta2; the sampler draws it",
        "patience: --patience has no default; the sampler draws it",
    ]


def test_the_defaults_follow_the_update_rule_and_the_grid():
    space = parse_space({"lr": {"low": 1e-4, "high": 1e-2, "log": True},
                         "weight_decay": {"low": 1e-3, "high": 1e-1, "log": True},
                         "batch_size": {"low": 40, "high": 200, "step": 40}})
    params, notes = baseline(space, base_of("fc_net", update_rule="adamw"))
    assert params == {"lr": 1e-3, "weight_decay": 0.01}  # AdamW's own, as `dagnet train` uses
    assert len(notes) == 1 and notes[0].startswith("batch_size = 64 (--batch-size's default)")


def test_fits():
    lr, bs, rule, flag, fixed = parse_space({
        "lr": {"low": 0.01, "high": 0.1}, "bs": {"low": 32, "high": 96, "step": 32},
        "rule": {"choices": ["sgd", "adam"]}, "flag": {"choices": [True, False]}, "f": 0.5})
    assert fits(lr, 0.01) and fits(lr, 0.1) and not fits(lr, 0.2) and not fits(lr, "0.05")
    assert fits(bs, 64) and not fits(bs, 48) and not fits(bs, 128) and not fits(bs, 64.5)
    assert fits(rule, "adam") and not fits(rule, "rmsprop")
    assert fits(flag, False) and not fits(flag, 0)  # False is not 0 here
    assert fits(fixed, 0.5) and not fits(fixed, 0.4)


def test_refit_for_the_narrowed_study():
    fine = parse_space({"lr": {"low": 0.02, "high": 0.08}, "update_rule": "sgd_momentum"})
    assert refit({"lr": 0.04, "update_rule": "sgd_momentum"}, fine)[0] == {"lr": 0.04}
    params, why = refit({"lr": 0.01, "update_rule": "sgd_momentum"}, fine)
    assert params is None and "lr = 0.01 lies outside the narrowed lr in [0.02, 0.08]" in why
    assert refit({}, fine)[0] is None


def _create_together(url, barrier, queue):
    from dagnet.tune import study as st

    storage = st.open_storage(url, heartbeat=5)
    barrier.wait()  # every worker creates-or-joins the study at the same moment
    study = st.open_study(storage, "race", "random", 0, False, 8, baseline={"lr": 0.04},
                          say=lambda m: None)
    trial = study.ask()  # what a worker runs first
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    queue.put((trial.number, lr, bool(trial.user_attrs.get("baseline"))))


@pytest.mark.parametrize("round_", range(3))  # a race: it showed in 1 round of 2
def test_workers_creating_the_study_together_enqueue_it_once(tmp_path, round_):
    url = f"sqlite:///{tmp_path}/study.db"
    from dagnet.tune import study as st

    st.open_storage(url)  # the tables; the race under test is the study's creation
    n = 4
    ctx = multiprocessing.get_context("spawn" if sys.platform != "linux" else "fork")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_create_together, args=(url, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    got = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [g[0] for g in got] == list(range(n))
    assert got[0] == (0, 0.04, True)  # the baseline is trial 0, whoever took it
    assert not any(b for _, _, b in got[1:])
    trials = optuna.load_study(study_name="race", storage=url).trials
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1


def test_a_joiner_waits_for_the_creator_then_goes_on_without(tmp_path, monkeypatch):
    from dagnet.tune import study as st

    monkeypatch.setattr(st, "CREATOR_WAIT", 0.5)
    storage = st.open_storage(f"sqlite:///{tmp_path}/study.db")
    optuna.create_study(storage=storage, study_name="s", direction="maximize")  # creator died
    said = []
    study = st.open_study(storage, "s", baseline={"lr": 0.04}, say=said.append)
    assert "enqueued no baseline trial" in said[0] and study.user_attrs["baseline"] == {}
    assert study.trials == []  # a joiner never enqueues: only the creator does
    said.clear()
    st.open_study(storage, "s", baseline={"lr": 0.04}, say=said.append)
    assert said == []  # marked: the next worker does not wait


def test_worker_env_and_the_oversubscription_hint(monkeypatch):
    import os
    import socket
    from types import SimpleNamespace

    from dagnet.cli import tune_workers as tw

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    env = tw.worker_env(1, 2, {"OMP_NUM_THREADS": "3", "PATH": "/bin"})
    assert env == {"OMP_NUM_THREADS": "3", "PATH": "/bin", "DAGNET_NUM_THREADS": "2",
                   "OPENBLAS_NUM_THREADS": "2", tw.WORKER_ENV: "1/2"}  # the user's 3 wins
    assert tw.worker_env(0, 8, {})["DAGNET_NUM_THREADS"] == "1"
    for k in (*tw.THREAD_VARS, tw.WORKER_ENV):
        monkeypatch.delenv(k, raising=False)
    here = socket.gethostname()

    def study(*workers):
        trials = [SimpleNamespace(number=i, state=SimpleNamespace(name="RUNNING"),
                                  user_attrs={"worker": w}) for i, w in enumerate(workers)]
        return SimpleNamespace(get_trials=lambda deepcopy: trials)

    mine = f"{here}:{os.getpid()}"
    assert tw.oversubscription_hint(study(mine, f"{here}:99"), 0).startswith(
        "note: another worker of this study runs on this machine (pid 99)")
    assert tw.oversubscription_hint(study(mine, "elsewhere:99"), 0) == ""  # another machine
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the user split the threads
    assert tw.oversubscription_hint(study(mine, f"{here}:99"), 0) == ""
