"""`dagnet tune`: hyperparameter search on Optuna, each trial a `dagnet train` run.

    dagnet tune lenet --data fashion-mnist --trials 12 --space space.yaml --epochs 1
    dagnet tune lenet ... --workers 2       # two worker processes, cores/2 threads each
    dagnet tune lenet ... --storage postgresql+psycopg://user:pw@host/db   # several machines

Layout of --out (default runs/MODEL-tune): study.db (the default SQLite storage) and one folder
per study: space.yaml, trials.txt, trials.csv, history.png, scatter.png, importance.png,
trial_NNNN/ (a `dagnet train` run folder per trial) and best -> the best trial's folder.
"""
from __future__ import annotations

import os
import socket
import sys
import time

from dagnet.cli import tune_workers as workers
from dagnet.cli.common import DATA_HELP, UsageError
from dagnet.cli.tune_baseline import baseline, refit
from dagnet.cli.tune_trials import TrialRunner, check_space, train_namespace
from dagnet.errors import DagnetError, TuneError


#: --out's default, spelled as the folder it stands for
DEFAULT_OUT = "runs/MODEL-tune"


def say(message: str) -> None:
    print(message, flush=True)


def cmd_tune(args) -> int:
    from dagnet.tune import space as sp
    from dagnet.tune import study as st

    for flag, value, low in (("--trials", args.trials, 0), ("--epochs", args.epochs, 1),
                             ("--heartbeat", args.heartbeat, 1), ("--val", args.val, 1),
                             ("--seed", args.seed, 0), ("--workers", args.workers, 1)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be an integer >= {low}, got {value}")
    stem = os.path.splitext(os.path.basename(args.model.rstrip("/")))[0]
    out = os.path.join("runs", f"{stem}-tune") if args.out == DEFAULT_OUT else args.out
    name = args.study or stem
    space = sp.load_space(args.space)
    base = train_namespace(args)
    check_space(space, base, args.space)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot use --out {out}: {e.strerror}") from None
    storage = st.open_storage(args.storage or st.default_storage(out), args.heartbeat)
    params, notes = baseline(space, base)
    if not workers.started_by_workers():  # the parent of --workers said it already
        say(f"study {name!r} in {args.storage or st.default_storage(out)}; {args.trials} trials "
            f"of {base.epochs} epoch(s) over: " + "; ".join(p.describe() for p in space))
        for note in notes:
            say(f"baseline: {note}")
        if params:
            say("baseline (the first trial of a new study): "
                + ", ".join(f"{k}={v}" for k, v in params.items()))
    if args.workers > 1 and not workers.started_by_workers():
        return start_workers(args, storage, name, space, base, out, params)
    run_stage(args, storage, name, space, base, out, params)
    if args.narrow:
        fine, again = narrow_stage(args, storage, name, space, base)
        run_stage(args, storage, name + "-narrow", fine, base, out, again)
    return 0


def narrow_stage(args, storage, name: str, space, base):
    """The narrowed space of the second study and the baseline it runs (None: none), once the
    first study has finished."""
    from dagnet.tune import study as st

    first = st.open_study(storage, name, args.sampler, base.seed, args.prune, args.trials)
    st.wait_until_finished(first, say)
    fine = narrowed_space(first, space, name)
    say(f"study {name + '-narrow'!r}, narrowed around the best trials of {name!r}: "
        + "; ".join(p.describe() for p in fine))
    again, why = refit(first.user_attrs.get(st.BASELINE) or {}, fine)
    say(f"{name + '-narrow'}: {why}")
    return fine, again


def start_workers(args, storage, name: str, space, base, out: str, params) -> int:
    """--workers W: create the study (enqueueing its baseline), run W worker processes with
    cores/W threads each, then write each study's table and pictures."""
    from dagnet.tune import space as sp
    from dagnet.tune import study as st

    st.open_study(storage, name, args.sampler, base.seed, args.prune, args.trials,
                  baseline=params, say=say)
    threads = workers.threads_per_worker(args.workers)
    say(f"starting {args.workers} workers on this machine, {threads} thread(s) each "
        f"({os.cpu_count()} cores)")
    start = time.perf_counter()
    code = workers.run_workers(args.workers, args.argv, say)
    say(f"{args.workers} workers ended in {time.perf_counter() - start:.0f} s"
        + (f"; one exited with status {code}" if code else ""))
    stages = [(name, space)]
    if args.narrow:
        first = st.open_study(storage, name, args.sampler, base.seed, args.prune, args.trials)
        stored = first.user_attrs.get("narrowed_space")
        if stored is not None:
            stages.append((name + "-narrow", sp.parse_space(stored, f"study {name!r} narrowed_space")))
    for stage, stage_space in stages:
        study = st.open_study(storage, stage, args.sampler, base.seed, args.prune, args.trials)
        write_results(study, stage_space, os.path.join(out, stage))
    return code


def narrowed_space(first, space, name: str):
    """The narrowed space: the one the first worker to get here stored in the study (so every
    worker runs the same), else computed from the first study's finished trials."""
    from dagnet.tune import report
    from dagnet.tune import space as sp

    stored = first.user_attrs.get("narrowed_space")
    if stored is not None:
        return sp.parse_space(stored, f"study {name!r} narrowed_space")
    best = [r["params"] for r in report.ranked(report.trial_rows(first))]
    fine = sp.narrow(space, best)
    first.set_user_attr("narrowed_space", {p.name: p.to_dict() for p in fine})
    return fine


def run_stage(args, storage, name: str, space, base, out: str, params: dict | None) -> None:
    """Run (this worker's share of) one study, then write its table, pictures and best link."""
    from dagnet.tune import report
    from dagnet.tune import space as sp
    from dagnet.tune import study as st

    study = st.open_study(storage, name, args.sampler, base.seed, args.prune, args.trials,
                          baseline=params, say=say)
    study_dir = os.path.join(out, name)
    os.makedirs(study_dir, exist_ok=True)
    started = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    if not started and any(f.startswith("trial_") for f in os.listdir(study_dir)):
        raise TuneError(f"{study_dir} holds trial folders, but study {name!r} in this storage has "
                        f"no trials: they belong to another storage; choose another --out or --study")
    report.atomic_write_text(os.path.join(study_dir, "space.yaml"), sp.to_yaml(space))
    from dagnet.tensorboard.callback import write_experiment

    write_experiment(study_dir, [p for p in space if p.kind != "fixed"], name=name)
    runner = TrialRunner(args, base, space, study, study_dir, say)
    start = time.perf_counter()
    ran = st.run_worker(study, runner, args.trials, say)
    if ran:
        say(f"this worker ({socket.gethostname()}:{os.getpid()}) ran {ran} trial(s) in "
            f"{time.perf_counter() - start:.0f} s")
    if not workers.started_by_workers():  # else the parent writes them, once
        write_results(study, space, study_dir)


def write_results(study, space, study_dir: str) -> None:
    from dagnet.tune import report

    rows = report.trial_rows(study)
    names = [p.name for p in space if p.kind != "fixed"]
    table = report.format_table(rows, names)
    report.atomic_write_text(os.path.join(study_dir, "trials.txt"), table + "\n")
    report.write_csv(os.path.join(study_dir, "trials.csv"), rows, names)
    say(table)
    written = [os.path.join(study_dir, f) for f in ("trials.txt", "trials.csv")]
    try:
        from dagnet.viz.tune import plot_study

        written += plot_study(rows, space, report.importances(study), study_dir, study.study_name)
    except (ImportError, DagnetError) as e:
        print(f"note: pictures not written: {e}", file=sys.stderr)
    best = report.ranked(rows)
    if best and best[0]["run_dir"]:
        link = os.path.join(study_dir, "best")
        report.point_best(best[0]["run_dir"], link)
        params = ", ".join(f"{k}={report.fmt(v)}" for k, v in best[0]["params"].items())
        say(f"best: trial {best[0]['number']}, val acc {best[0]['value']:.4f} ({params}); its run "
            f"folder: {best[0]['run_dir']} (linked as {link})")
        line = report.versus_baseline(rows)
        if line:
            say(line)
    say("wrote " + ", ".join(written))


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    t = sub.add_parser("tune", help="hyperparameter search (Optuna): trials of `dagnet train` "
                       "with sampled settings, shared by any number of worker processes")
    t.add_argument("model", help="a model-zoo name (lenet, ...) or a spec file (.yaml/.json)")
    t.add_argument("--space", required=True, metavar="SPACE.yaml",
                   help="the search space: NAME: {low: L, high: H[, log: true][, step: S]} | "
                        "{choices: [...]} | a fixed value; NAME is a `dagnet train` setting "
                        "(lr, weight_decay, update_rule, batch_size, lr_schedule, warmup, crop, "
                        "flip, ...), optim.KEY (an update rule's setting, e.g. optim.momentum), "
                        "model.KWARG (a zoo model's keyword, e.g. model.dropout) or NODE.ATTR "
                        "(a node's attribute, e.g. drop1.p)")
    t.add_argument("--data", help=DATA_HELP + " (default: the spec's recipe, else fashion-mnist)")
    t.add_argument("--trials", type=int, default=12,
                   help="trials in the study, all workers together; 0: only write the table and "
                        "pictures of the study as it stands")
    t.add_argument("--epochs", type=int, help="epochs per trial, unless the space names epochs "
                   "(default: the spec's recipe, else 1)")
    t.add_argument("--val", type=int,
                   help="validation examples split off train; trials are ranked by their best "
                        "validation accuracy (default: the spec's recipe, else 5000)")
    t.add_argument("--seed", type=int,
                   help="every trial's seed (init, split, batch order: trials differ only in "
                        "their hyperparameters) and the sampler's (default: the spec's recipe, "
                        "else 0)")
    t.add_argument("--out", default=DEFAULT_OUT, help="the tune's folder")
    t.add_argument("--storage", metavar="URL",
                   help="Optuna RDB storage shared by the workers (default: sqlite:///OUT/study.db; "
                        "postgresql+psycopg://USER:PASSWORD@HOST/DB for several machines)")
    t.add_argument("--study", metavar="NAME", help="study name (default: the model's name)")
    t.add_argument("--sampler", default="tpe", choices=["random", "tpe"],
                   help="random search, or TPE after a quarter of the trials drawn at random "
                        "(default: %(default)s)")
    t.add_argument("--prune", action="store_true",
                   help="stop a trial after an epoch whose val acc is below the median of earlier "
                        "trials at that epoch (Optuna's MedianPruner)")
    t.add_argument("--narrow", action="store_true",
                   help="then run a second study, NAME-narrow, of --trials trials over ranges "
                        "shrunk around the best quarter of the first study's trials")
    t.add_argument("--workers", type=int, default=1,
                   help="worker processes to start on this machine, sharing the study, each "
                        "with cores/WORKERS threads (more processes, on this or other machines, "
                        "may join with the same --out or --storage)")
    t.add_argument("--heartbeat", type=int, default=20,
                   help="seconds between a worker's heartbeats; a trial silent for 3 beats (its "
                        "worker killed) is failed and run again by another worker (default: "
                        "%(default)s)")
    t.set_defaults(func=cmd_tune)
