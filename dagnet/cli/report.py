"""`dagnet report RUN_DIR` and `dagnet render ... --html`: the interactive explorer, one
self-contained offline HTML page (dagnet.viz.html), for a model, spec, ONNX file or run folder;
a report adds the run's curves, recipe and final metrics."""
from __future__ import annotations

import os

from dagnet.cli.common import UsageError, load_data, load_graph_or_plan, load_run, read_json
from dagnet.errors import DagnetError


def render_html(args) -> int:
    """`dagnet render MODEL --html -o plan.html`: the explorer of the compiled plan."""
    from dagnet.viz.html import explorer_html, write_html

    stem = os.path.splitext(os.path.basename(args.model.rstrip("/")))[0]
    out = _html_path(args.output or f"{stem}.html")
    try:
        target = load_graph_or_plan(args.model, plan=True, mode=args.mode)
    except UsageError:
        raise
    except DagnetError as e:  # a graph that does not compile: its declared view says why
        target = load_graph_or_plan(args.model, plan=False)
        print(f"note: the plan view is missing: {e}")
    timings = _timings(target, args) if hasattr(target, "steps") else None
    write_html(explorer_html(target, timings=timings), out)
    print(f"wrote {out} ({os.path.getsize(out) / 1024:,.0f} KB, self-contained: open it in a browser)")
    return 0


def cmd_report(args) -> int:
    """`dagnet report RUN_DIR`: the run's explorer with its curves, recipe and metrics."""
    from dagnet.viz.html import explorer_html, run_data, write_html

    out = _html_path(args.output or os.path.join(args.run_dir, "report.html"))
    graph, plan, ck = load_run(args.run_dir, mode="train")
    notes = []
    history = {}
    if os.path.exists(os.path.join(args.run_dir, "history.json")):
        history = read_json(os.path.join(args.run_dir, "history.json"), "re-run `dagnet train` to rewrite it")
    else:
        notes.append("history.json is missing: the run has not finished an epoch yet")
    info = {}
    if os.path.exists(os.path.join(args.run_dir, "data.json")):
        info = read_json(os.path.join(args.run_dir, "data.json"), "re-run `dagnet train` to rewrite it")
    evaluation = None
    if not args.no_eval and info:
        evaluation = _evaluate(plan, info, notes)
    run = run_data(history, ck.solver, info, evaluation, notes)
    title = f"{graph.name} · {os.path.basename(os.path.normpath(args.run_dir))}"
    write_html(explorer_html(plan, timings=_timings(plan, args), run=run, title=title), out)
    print(f"wrote {out} ({os.path.getsize(out) / 1024:,.0f} KB, self-contained: open it in a browser)")
    return 0


def _evaluate(plan, info: dict, notes: list):
    """{split: {"loss", "accuracy"}} on val and test, or None (with a note) without the data."""
    from dagnet.train.evaluate import evaluate_arrays

    try:
        data, _ = load_data(info["data"], info["num_val"], info["split_seed"],
                            info.get("preprocessing", "channel"))
    except (DagnetError, KeyError) as e:
        notes.append(f"not evaluated: the data could not be loaded ({e})")
        return None
    return {split: evaluate_arrays(plan, data[f"X_{split}"], data[f"y_{split}"]) for split in ("val", "test")
            if len(data[f"X_{split}"])}


def _timings(plan, args):
    if not getattr(args, "timings", False):
        return None
    from dagnet.compiler.feeds import random_feeds
    from dagnet.viz import profile_plan

    return profile_plan(plan, random_feeds(plan, batch=args.batch))


def _html_path(path: str) -> str:
    if os.path.splitext(path)[1].lower() not in (".html", ".htm"):
        raise UsageError(f"the explorer is an HTML page: give -o NAME.html, not {path}")
    return path


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    r = sub.add_parser("report", help="a run as one offline HTML page: curves, recipe, metrics, "
                       "the plan explorer")
    r.add_argument("run_dir", help="a run directory written by `dagnet train`")
    r.add_argument("-o", "--output", help="the page to write (default RUN_DIR/report.html)")
    r.add_argument("--no-eval", action="store_true",
                   help="do not evaluate on the validation and test data (faster; needs no data)")
    r.add_argument("--timings", action="store_true", help="time every step, shown as heat")
    r.add_argument("--batch", type=int, default=32, help="batch size for --timings (default 32)")
    r.set_defaults(func=cmd_report)
