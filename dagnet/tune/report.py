"""A study's results as plain rows: the table of trials (text and CSV), the best trial and the
parameter importances. Rows are dicts, so the pictures (dagnet.viz.tune) need no Optuna.

    rows = trial_rows(study)      # [{"number", "state", "value", "params", "seconds", "note",
                                  #   "run_dir", "baseline", "intermediate"}], in trial order
    print(format_table(rows, space))
"""
from __future__ import annotations

import csv
import io
import math
import os
import warnings


def trial_rows(study) -> list[dict]:
    """One dict per trial of the study, in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = None
        if t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({
            "number": t.number, "state": t.state.name.lower(), "value": t.value,
            "params": dict(t.params), "seconds": seconds,
            "note": t.user_attrs.get("note", ""), "run_dir": t.user_attrs.get("run_dir", ""),
            "baseline": bool(t.user_attrs.get("baseline")),
            "intermediate": dict(sorted(t.intermediate_values.items())),
        })
    return rows


def ranked(rows: list[dict]) -> list[dict]:
    """Completed trials, best (highest value) first; ties keep trial order."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    return sorted(done, key=lambda r: (-r["value"], r["number"]))


def versus_baseline(rows: list[dict]) -> str:
    """A line comparing the best trial with the baseline trial ('' without a finished one)."""
    done = ranked(rows)
    base = [r for r in done if r.get("baseline")]
    if not base:
        return ""
    b, best = base[0], done[0]
    if best is b:
        return f"the baseline (trial {b['number']}, dagnet train's defaults) is the best trial"
    return (f"baseline (trial {b['number']}, dagnet train's defaults): val acc {b['value']:.4f}; "
            f"the best trial beats it by {best['value'] - b['value']:.4f}")


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if (v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4)) else f"{v:.4g}"
    return str(v)


def format_table(rows: list[dict], names: list[str]) -> str:
    """The trials as a text table, best first (then pruned, failed, running), with a header."""
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "fail": 4}
    done = ranked(rows)
    rest = sorted((r for r in rows if r not in done), key=lambda r: (order.get(r["state"], 9), r["number"]))
    head = ["trial", "val acc", "state", *names, "seconds", "note"]
    body = []
    for r in done + rest:
        value = f"{r['value']:.4f}" if r["value"] is not None else "-"
        if r["value"] is None and r["intermediate"]:  # a pruned trial: its last report
            value = f"({list(r['intermediate'].values())[-1]:.4f})"
        body.append([str(r["number"]), value, r["state"],
                     *(fmt(r["params"][n]) if n in r["params"] else "-" for n in names),
                     f"{r['seconds']:.0f}" if r["seconds"] is not None else "-", _note(r)])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]
    return "\n".join(lines)


def _note(row: dict) -> str:
    return "; ".join(x for x in (BASELINE_NOTE if row.get("baseline") else "", row["note"]) if x)


#: how the table marks the baseline trial
BASELINE_NOTE = "baseline (dagnet train's defaults)"


def write_csv(path, rows: list[dict], names: list[str]) -> None:
    """The trials in trial order: number, state, value, seconds, one column per parameter."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "state", "val_acc", "seconds", *names, "run_dir", "baseline", "note"])
    for r in rows:
        w.writerow([r["number"], r["state"], "" if r["value"] is None else r["value"],
                    "" if r["seconds"] is None else round(r["seconds"], 2),
                    *(r["params"].get(n, "") for n in names), r["run_dir"],
                    int(bool(r.get("baseline"))), r["note"]])
    atomic_write_text(path, buf.getvalue())


def importances(study) -> dict[str, float]:
    """Optuna's parameter importances (how much of the variance in validation accuracy each
    parameter explains, summing to 1); {} when there are too few completed trials or too
    little variation to tell."""
    import optuna
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = {n for t in done for n in t.params if len({str(u.params.get(n)) for u in done}) > 1}
    if len(done) < 3 or not varied:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" notes
        try:
            result = optuna.importance.get_param_importances(study, params=sorted(varied))
        except (RuntimeError, ValueError, ZeroDivisionError):
            return {}
    return {k: float(v) for k, v in result.items() if math.isfinite(v)}


def atomic_write_text(path, text: str) -> None:
    """Write text to path whole or not at all (a reader, or a worker killed mid-write, never
    sees half a file), through a temp file created exclusively: never a planted symlink."""
    from dagnet.errors import TuneError
    from dagnet.files import write_atomically

    write_atomically(path, lambda f: f.write(text.encode("utf-8")), error=TuneError)


def point_best(run_dir: str, link: str) -> None:
    """Make `link` a symlink to run_dir (relative, replaced atomically); quiet where the file
    system has no symlinks."""
    tmp = f"{link}.{os.getpid()}.tmp"
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.relpath(run_dir, os.path.dirname(link)), tmp)
        os.replace(tmp, link)
    except OSError:
        pass
