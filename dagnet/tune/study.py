"""Optuna studies shared by any number of worker processes through one RDB storage.

    storage = open_storage("sqlite:///runs/t/study.db", heartbeat=20)
    study = open_study(storage, "lenet", sampler="tpe", seed=0, prune=True, trials=12)
    run_worker(study, objective, trials=12, say=print)

Every worker runs the same loop: while fewer than `trials` trials are finished, running or
waiting, take the next one; so N processes on one storage run ONE study of `trials` trials
between them. A worker's trials send a heartbeat; a trial whose worker died (killed, power
lost) goes stale after the grace period, is marked FAIL by the next worker that looks, and is
queued again with the same hyperparameters (RetryFailedTrialCallback): a killed worker loses
only the trial it was running. Trial k's sampler is seeded with (seed, k), so random search
draws the same hyperparameters for trial k however many workers share the study. A new
study's first trial is its baseline (`open_study(..., baseline=...)`), enqueued by the one
worker whose create wins.
"""
from __future__ import annotations

import os
import time
import warnings

from dagnet.errors import MissingDependencyError, TuneError

SAMPLERS = ("random", "tpe")

#: trial states that count towards a study's number of trials
_COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")

#: the user attr of the baseline trial, and of its study (the values enqueued)
BASELINE = "baseline"

#: seconds a worker joining a new, empty study waits for its creator to enqueue the baseline
CREATOR_WAIT = 30.0


def optuna_module():
    """optuna, or a MissingDependencyError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("dagnet tune needs the Python package 'optuna', which is "
                                     "not installed: pip install 'dagnet[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # dagnet prints one line per trial
    # heartbeats and retries are marked experimental (since v2.8/2.9) but are the documented
    # way to recover the trials of a dead worker
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(out: str) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(out, "study.db"))


def open_storage(url: str, heartbeat: int = 20):
    """An RDBStorage for `url` (sqlite:///FILE, postgresql+psycopg://..., ...), with worker
    heartbeats every `heartbeat` seconds and stale trials retried once."""
    optuna = optuna_module()
    from optuna import storages

    engine = {}
    if url.startswith("sqlite"):
        # several processes write one file: wait for its lock rather than fail at once; no
        # implicit transactions (see _serialize_sqlite)
        engine = {"connect_args": {"timeout": 60, "isolation_level": None}}
    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
        retry = {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(
            max_retry=1, inherit_intermediate_values=True)}
    else:
        retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(
            max_retry=1, inherit_intermediate_values=True)}
    try:
        for attempt in range(3):
            try:
                storage = storages.RDBStorage(url, engine_kwargs=engine, grace_period=3 * heartbeat,
                                              heartbeat_interval=heartbeat, **retry)
                if url.startswith("sqlite"):
                    _serialize_sqlite(storage.engine)
                return storage
            except Exception as e:
                # workers started together race to create the tables of a new storage: the
                # loser's CREATE fails, and a moment later the tables are there
                race = type(e).__name__ == "IntegrityError" or any(
                    w in str(e) for w in ("already exists", "duplicate key", "locked"))
                if attempt == 2 or not race or not type(e).__module__.startswith("sqlalchemy"):
                    raise
                time.sleep(1 + attempt)
    except ImportError as e:
        raise MissingDependencyError(f"storage {_safe(url)}: its database driver is missing ({e}); "
                                     f"for PostgreSQL pip install 'dagnet[postgres]'") from None
    except Exception as e:  # sqlalchemy's errors: bad URL, server down, no such file
        if isinstance(e, optuna.exceptions.OptunaError) or type(e).__module__.startswith("sqlalchemy"):
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise TuneError(f"cannot open the study storage {_safe(url)}: {first}") from None
        raise


def _serialize_sqlite(engine) -> None:
    """Begin every transaction on the SQLite file with BEGIN IMMEDIATE (its write lock).

    Optuna takes a queued trial (an enqueued baseline, a dead worker's retried trial) by
    reading that it is WAITING and then setting it RUNNING, under SELECT ... FOR UPDATE, which
    SQLite ignores; and Python's sqlite3 starts a transaction only at the UPDATE, so two workers
    both read WAITING and both took trial 0 (seen in tests/tune/test_baseline.py). With the
    lock taken at the transaction's start the second worker reads RUNNING and moves on, as on
    PostgreSQL. Workers touch the file a few times per trial, so serialising costs nothing."""
    from sqlalchemy import event

    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        return f"{scheme}{sep}{creds.split(':')[0]}:***@{host}"
    return url


class PerTrialSeed:
    """A sampler that builds a fresh inner sampler seeded with (seed, trial number) for every
    trial: reproducible per trial, and two workers never draw the same sequence."""

    def __new__(cls, name: str, seed: int, trials: int):
        optuna = optuna_module()

        class _Sampler(optuna.samplers.BaseSampler):
            def __init__(self):
                self._inner = self._make(0)

            def _make(self, number):
                s = (seed * 1_000_003 + number) % 2**32
                if name == "random":
                    return optuna.samplers.RandomSampler(seed=s)
                # a quarter of the trials random, to give TPE something to model
                return optuna.samplers.TPESampler(seed=s, n_startup_trials=max(3, trials // 4))

            def before_trial(self, study, trial):
                self._inner = self._make(trial.number)
                self._inner.before_trial(study, trial)

            def infer_relative_search_space(self, study, trial):
                return self._inner.infer_relative_search_space(study, trial)

            def sample_relative(self, study, trial, search_space):
                return self._inner.sample_relative(study, trial, search_space)

            def sample_independent(self, study, trial, param_name, param_distribution):
                return self._inner.sample_independent(study, trial, param_name, param_distribution)

            def after_trial(self, study, trial, state, values):
                self._inner.after_trial(study, trial, state, values)

        return _Sampler()


def open_study(storage, name: str, sampler: str = "tpe", seed: int = 0, prune: bool = False,
               trials: int = 10, baseline: dict | None = None, say=print):
    """Create the study `name` in storage, or join it if another worker made it already.

    baseline: {param: value} enqueued as the new study's first trial (marked with the user
    attr "baseline"); only the worker whose create wins does it, and a worker that joins a
    study created a moment ago waits until that is done, so it is enqueued once however many
    workers start together."""
    optuna = optuna_module()
    if sampler not in SAMPLERS:
        raise TuneError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=max(2, trials // 4), n_warmup_steps=0)
              if prune else optuna.pruners.NopPruner())
    kw = dict(storage=storage, study_name=name, direction="maximize", pruner=pruner,
              sampler=PerTrialSeed(sampler, seed, trials))
    try:
        try:  # the storage's unique study name makes exactly one creator win
            study, created = optuna.create_study(load_if_exists=False, **kw), True
        except optuna.exceptions.DuplicatedStudyError:
            study, created = optuna.create_study(load_if_exists=True, **kw), False
    except ValueError as e:  # e.g. an existing study of the same name that minimises
        raise TuneError(f"study {name!r}: {e}") from None
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise TuneError(f"study {name!r} in this storage minimises; dagnet maximises validation "
                        f"accuracy: choose another --study name")
    if created:
        if baseline:
            study.enqueue_trial(baseline, user_attrs={BASELINE: True})
        study.set_user_attr(BASELINE, dict(baseline or {}))  # says: the creator is done
    else:
        _await_creator(study, say)
    return study


def _await_creator(study, say, poll: float = 0.1) -> None:
    """Wait until the worker that created the study has enqueued its baseline (so that it
    is trial 0); a study with trials, or made by an older dagnet, needs no wait."""
    timeout = CREATOR_WAIT
    end = time.monotonic() + timeout
    while BASELINE not in study.user_attrs and not study.get_trials(deepcopy=False):
        if time.monotonic() > end:  # its creator died before enqueuing: go on without
            say(f"study {study.study_name!r}: its creator enqueued no baseline trial within "
                f"{timeout:.0f} s; going on without one")
            study.set_user_attr(BASELINE, {})
            return
        time.sleep(poll)


def baseline_trial(study):
    """The study's baseline trial (its last try, where a dead worker's was run again), or None."""
    tries = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(BASELINE)]
    return tries[-1] if tries else None


def counted(study) -> int:
    """Trials that are or will be run to the end (failed ones are not)."""
    states = _states(_COUNTED)
    return len(study.get_trials(deepcopy=False, states=states))


def _states(names):
    from optuna.trial import TrialState

    return tuple(getattr(TrialState, n) for n in names)


class SurplusTrial(Exception):
    """Two workers took the last trial at the same moment; the later one gives it back."""


def check_not_surplus(study, trial, trials: int) -> None:
    """SurplusTrial if `trials` earlier trials already count: another worker took the last one
    between this worker's count and its ask."""
    earlier = [t for t in study.get_trials(deepcopy=False, states=_states(_COUNTED))
               if t.number < trial.number]
    if len(earlier) >= trials:
        raise SurplusTrial(f"the study already has its {trials} trials")


def run_worker(study, objective, trials: int, say=print, poll: float = 2.0) -> int:
    """Run trials of `study` until it has `trials` finished ones; returns how many this worker
    ran. Before returning, waits until no trial of another worker is running, so that the
    caller sees the whole study (and a stale trial of a dead worker gets run again)."""
    from optuna.storages import fail_stale_trials

    ran, waited = 0, False
    while True:
        fail_stale_trials(study)  # a dead worker's trial: FAIL, and queued again (WAITING)
        queued = study.get_trials(deepcopy=False, states=_states(("WAITING",)))
        if queued or counted(study) < trials:
            study.optimize(objective, n_trials=1, catch=(SurplusTrial,))
            ran += 1
            continue
        running = study.get_trials(deepcopy=False, states=_states(("RUNNING",)))
        if not running:
            return ran
        if not waited:
            say(f"waiting for {len(running)} trial(s) running in other workers "
                f"({', '.join(str(t.number) for t in running)})")
            waited = True
        time.sleep(poll)


def wait_until_finished(study, say=print, poll: float = 2.0) -> None:
    """Block while trials of the study are running or waiting (other workers')."""
    from optuna.storages import fail_stale_trials

    said = False
    while True:
        fail_stale_trials(study)
        busy = study.get_trials(deepcopy=False, states=_states(("RUNNING", "WAITING")))
        if not busy:
            return
        if not said:
            say(f"waiting for study {study.study_name!r}: {len(busy)} trial(s) still running")
            said = True
        time.sleep(poll)
