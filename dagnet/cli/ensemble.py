"""`dagnet evaluate RUN1 RUN2 ... --ensemble`: the runs' averaged probabilities beside each run."""
from __future__ import annotations

import json
import os

from dagnet.cli.common import UsageError, load_data, load_run, read_json

SPLITS = ("train", "val", "test")


def add_arguments(parser) -> None:
    parser.add_argument("--ensemble", action="store_true",
                        help="with several runs: evaluate the average of their class "
                             "probabilities, beside each run's own figures")


def wanted(args) -> bool:
    """True for `--ensemble` or several runs (UsageError for several runs without it)."""
    if len(args.run_dirs) > 1 and not args.ensemble:
        raise UsageError(f"{len(args.run_dirs)} runs given: pass --ensemble to evaluate them as an "
                         f"ensemble, or one run")
    return args.ensemble


def cmd_ensemble(args) -> int:
    from dagnet.train.ensemble import evaluate_ensemble

    if len(set(map(os.path.realpath, args.run_dirs))) != len(args.run_dirs):
        raise UsageError("a run is given twice: an ensemble's members are different runs")
    infos = [read_json(os.path.join(d, "data.json"), "re-run `dagnet train` to rewrite it")
             for d in args.run_dirs]
    first = infos[0]
    for d, info in zip(args.run_dirs[1:], infos[1:]):
        mine, theirs = (first.get("data"), first.get("preprocessing", "channel")), \
            (info.get("data"), info.get("preprocessing", "channel"))
        if mine != theirs:
            raise UsageError(f"{d} was trained on {theirs[0]} ({theirs[1]} preprocessing), "
                             f"{args.run_dirs[0]} on {mine[0]} ({mine[1]}): an ensemble's members "
                             f"must share the data and its preprocessing")
    splits = SPLITS
    if len({(i.get("num_val"), i.get("split_seed")) for i in infos}) > 1:
        # members split train/val with different seeds (--seed): each one's validation set
        # holds others' training examples, so only the test set is fair to all
        splits = ("test",)
        if not args.json:
            print("note: the runs split train/val differently (other --seed or --val): each "
                  "one's validation examples are others' training examples, so only the test "
                  "set is scored")
    plans = [load_run(d)[1] for d in args.run_dirs]
    data, _ = load_data(first["data"], first["num_val"], first["split_seed"],
                        first.get("preprocessing", "channel"))
    result = {split: evaluate_ensemble(plans, data[f"X_{split}"], data[f"y_{split}"])
              for split in splits}
    if args.json:
        print(json.dumps({"runs": list(args.run_dirs), **result}))
        return 0
    width = max(10, *(len(str(d)) for d in args.run_dirs))
    print(f"{'model':{width}s} " + " ".join(f"{s + ' acc':>9s}" for s in splits) + f" {'test loss':>9s}")
    for i, d in enumerate(args.run_dirs):
        print(f"{str(d):{width}s} " + " ".join(f"{result[s]['members'][i]['accuracy']:9.4f}" for s in splits)
              + f" {result['test']['members'][i]['loss']:9.4f}")
    ens = {s: result[s]["ensemble"] for s in splits}
    print(f"{'ensemble':{width}s} " + " ".join(f"{ens[s]['accuracy']:9.4f}" for s in splits)
          + f" {ens['test']['loss']:9.4f}")
    best = max(m["accuracy"] for m in result["test"]["members"])
    print(f"the ensemble of {len(plans)} runs (their averaged class probabilities): test accuracy "
          f"{ens['test']['accuracy']:.4f}, {ens['test']['accuracy'] - best:+.4f} against its best member")
    return 0
