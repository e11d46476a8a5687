"""`dagnet evaluate`, `summary` and `gradcheck`: what a model or a run computes."""
from __future__ import annotations

import json
import os

from dagnet.cli.common import load_data, load_run, read_json, resolve_graph
from dagnet.cli.outputs import at_least, positive
from dagnet.train.runfolder import DATA_FIELDS


def cmd_evaluate(args) -> int:
    from dagnet.train.evaluate import evaluate_arrays

    _, plan, _ = load_run(args.run_dir)
    info = read_json(os.path.join(args.run_dir, "data.json"), "re-run `dagnet train` to rewrite it",
                     DATA_FIELDS)
    data, _ = load_data(info["data"], info["num_val"], info["split_seed"])
    result = {split: evaluate_arrays(plan, data[f"X_{split}"], data[f"y_{split}"])
              for split in ("train", "val", "test")}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{'split':6s} {'loss':>8s} {'accuracy':>9s}")
        for split, r in result.items():
            print(f"{split:6s} {r['loss']:8.4f} {r['accuracy']:9.4f}")
    return 0


def cmd_summary(args) -> int:
    from dagnet.summary import summary_table

    graph = resolve_graph(args.model)
    print(summary_table(graph))
    return 0


def cmd_gradcheck(args) -> int:
    import dagnet
    from dagnet.compiler.feeds import random_feeds
    from dagnet.gradcheck import gradcheck_plan

    for flag, value, low in (("--entries", args.entries, 1), ("--batch", args.batch, 1),
                             ("--seed", args.seed, 0)):
        at_least(flag, value, low)
    positive("--tol", args.tol)
    graph = resolve_graph(args.model)
    plan = dagnet.compile(graph, dtype="float64", seed=args.seed)
    feeds = random_feeds(plan, batch=args.batch, seed=args.seed)
    errors = gradcheck_plan(plan, feeds, max_entries=args.entries)
    worst = max(errors.values())
    for name, err in errors.items():
        print(f"{name:30s} rel_error {err:.2e}")
    ok = worst < args.tol
    print(f"{'ok' if ok else 'FAILED'}: worst relative error {worst:.2e} (tolerance {args.tol:g})")
    return 0 if ok else 1


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    e = sub.add_parser("evaluate", help="loss and accuracy of a run on train, val and test")
    e.add_argument("run_dir")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("summary", help="per layer: output shape, params, connections")
    s.add_argument("model", help="a model-zoo name or a spec file")
    s.set_defaults(func=cmd_summary)

    gc = sub.add_parser("gradcheck", help="numerical gradient check of a model (float64)")
    gc.add_argument("model", help="a model-zoo name or a spec file")
    gc.add_argument("--batch", type=int, default=2)
    gc.add_argument("--entries", type=int, default=10, help="entries checked per param")
    gc.add_argument("--tol", type=float, default=1e-5)
    gc.add_argument("--seed", type=int, default=0)
    gc.set_defaults(func=cmd_gradcheck)
