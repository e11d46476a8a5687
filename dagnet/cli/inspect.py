"""`dagnet evaluate`, `summary` and `gradcheck`: what a model or a run computes."""
from __future__ import annotations

import json
import os
import sys

from dagnet.cli import ensemble
from dagnet.cli.common import (MODEL_HELP, UsageError, at_least, load_data, load_run,
                               positive_float, read_json, resolve_model, with_loss)
from dagnet.errors import DagnetError
from dagnet.train.runfolder import DATA_FIELDS, check_fields

SPLITS = ("train", "val", "test")


def cmd_evaluate(args) -> int:
    from dagnet.train.evaluate import confusion_table, evaluate_arrays

    if ensemble.wanted(args):
        return ensemble.cmd_ensemble(args)
    args.run_dir = args.run_dirs[0]
    _, plan, _ = load_run(args.run_dir)
    path = os.path.join(args.run_dir, "data.json")
    info = read_json(path, "re-run `dagnet train` to rewrite it")
    if "data" not in info:
        raise UsageError(f"{args.run_dir} does not say which data it was trained on (it was saved "
                         f"by dagnet.save, not `dagnet train`): evaluate it in Python with "
                         f"dagnet.load('{args.run_dir}').evaluate(images, labels)")
    check_fields(path, info, DATA_FIELDS, "re-run `dagnet train` to rewrite it", UsageError)
    classes = plan.graph.node(plan.scores_name).meta["shape"][-1]
    if args.top_k is not None and args.top_k > classes:
        raise UsageError(f"--top-k must be at most the number of classes ({classes}), got {args.top_k}")
    data, _ = load_data(info["data"], info["num_val"], info["split_seed"],
                        info.get("preprocessing", "channel"))
    result = {split: evaluate_arrays(plan, data[f"X_{split}"], data[f"y_{split}"], top_k=args.top_k)
              for split in SPLITS}
    names = info.get("class_names")
    picture = write_confusion_picture(result["test"]["confusion"], args.run_dir, names)
    if args.json:
        print(json.dumps({split: {**r, "confusion": r["confusion"].tolist()} for split, r in result.items()}))
        return 0
    top = f"top-{args.top_k}" if args.top_k else ""
    print(f"{'split':6s} {'loss':>8s} {'accuracy':>9s}" + (f" {top:>9s}" if top else ""))
    for split, r in result.items():
        print(f"{split:6s} {r['loss']:8.4f} {r['accuracy']:9.4f}"
              + (f" {r['top_k_accuracy']:9.4f}" if top else ""))
    print(f"\nconfusion matrix on test ({len(data['y_test']):,} examples; rows: true class, "
          f"columns: predicted)")
    print(confusion_table(result["test"]["confusion"], names))
    if picture:
        print(f"wrote {picture}")
    return 0


def write_confusion_picture(matrix, run_dir: str, class_names) -> str | None:
    """run_dir/confusion.png, or None (with a note) where the picture cannot be drawn."""
    path = os.path.join(run_dir, "confusion.png")
    try:
        from dagnet.viz.confusion import plot_confusion

        plot_confusion(matrix, path, class_names=class_names,
                       title=f"{os.path.basename(os.path.normpath(run_dir))}: test set")
    except (ImportError, OSError, DagnetError) as e:  # the numbers are printed all the same
        print(f"note: {path} not written: {e}", file=sys.stderr)
        return None
    return path


def cmd_summary(args) -> int:
    from dagnet.viz.summary import default_depth, folded_summary

    graph = resolve_model(args.model).graph
    depth = default_depth(graph) if args.depth is None else args.depth
    print(folded_summary(graph, None if depth == "full" else depth))
    return 0


def depth_value(text: str):
    """--depth: an integer >= 1, or 'full'."""
    return text if text == "full" else at_least(1)(text)


def cmd_gradcheck(args) -> int:
    from dagnet.compiler.feeds import random_feeds
    from dagnet.gradcheck import gradcheck_plan

    source = resolve_model(args.model)
    source.graph = with_loss(source.graph)
    plan = source.compile(dtype="float64", seed=args.seed)
    if not plan.params:  # "ok" would claim a check that never ran
        raise UsageError(f"{args.model} has no params whose gradients could be checked")
    feeds = random_feeds(plan, batch=args.batch, seed=args.seed)
    errors = gradcheck_plan(plan, feeds, max_entries=args.entries, seed=args.seed)
    cancelled = cancelled_by_batchnorm(source.graph)
    width = max(30, *(len(p) + 2 for p in errors))
    print(f"{'param':{width}s} {'error':>8s} {'max |grad|':>11s}")
    for name, err in errors.items():
        note = ""
        if errors.grad_max[name] <= 1e-9 * errors.scale:
            why = f"cancelled by batchnorm {cancelled[name]}" if name in cancelled else "no gradient here"
            note = f"  ~0: {why}"
        if errors.refined[name]:
            note += (f"  {errors.refined[name]} entr{'y' if errors.refined[name] == 1 else 'ies'} "
                     f"near a kink: re-measured with a smaller step")
        print(f"{name:{width}s} {err:8.1e} {errors.grad_max[name]:11.1e}{note}")
    worst = max(errors.values())
    ok = worst < args.tol
    print(f"{'ok' if ok else 'FAILED'}: worst error {worst:.2e} (tolerance {args.tol:g}); each "
          f"error is max |numeric - analytic| / {errors.scale:.2e}, the largest gradient entry "
          f"of the model (float64, batch {args.batch}, up to {args.entries} sampled entries "
          f"per param, centered differences)")
    return 0 if ok else 1


def cancelled_by_batchnorm(graph) -> dict:
    """{bias param: batchnorm node} for conv/affine biases whose only consumer is a batchnorm:
    it subtracts the batch mean, so their exact gradient is zero."""
    out = {}
    for n in graph:
        if n.op in ("conv2d", "affine") and len(n.inputs) > 2:
            users = [graph.node(c) for c, _ in graph.consumers(n.name)]
            if users and all(u.op == "batchnorm" for u in users):
                out[n.inputs[2]] = users[0].name
    return out


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    e = sub.add_parser("evaluate", help="loss, accuracy, top-k accuracy and the confusion matrix "
                       "of a run on train, val and test")
    e.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a run directory written by "
                   "`dagnet train`; several with --ensemble")
    ensemble.add_arguments(e)
    e.add_argument("--top-k", type=at_least(1), metavar="K",
                   help="also the fraction of examples whose label is among the K highest scores")
    e.add_argument("--json", action="store_true",
                   help="print one JSON object {split: {loss, accuracy, confusion, ...}}")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("summary", help="per layer: output shape, params, connections")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--depth", type=depth_value, metavar="N|full",
                   help="name levels to show (stage2.block3.conv1 has 3): 1 gives one row per "
                        "stage, 2 per block; repeated blocks fold into one row; full lists every "
                        "layer (default: 2 for graphs big enough that the diagrams fold them, "
                        "else full)")
    s.set_defaults(func=cmd_summary)

    gc = sub.add_parser("gradcheck", help="numerical gradient check of a model (float64)")
    gc.add_argument("model", help=MODEL_HELP + " (a run's trained weights are checked)")
    gc.add_argument("--batch", type=at_least(1), default=2, help="examples in the random batch")
    gc.add_argument("--entries", type=at_least(1), default=10,
                    help="entries checked per param (sampled)")
    gc.add_argument("--tol", type=positive_float, default=1e-6,
                    help="largest error allowed, relative to the largest gradient entry")
    gc.add_argument("--seed", type=at_least(0), default=0,
                    help="seed of the random batch, fresh params and sampled entries")
    gc.set_defaults(func=cmd_gradcheck)
