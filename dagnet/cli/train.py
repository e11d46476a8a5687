"""`dagnet train`: train a model on a dataset, writing a run folder (checkpoint, history,
data description, spec.yaml with the resolved recipe, pictures, TensorBoard events).

One writer per run folder: rank 0 holds its lock (`checkpoint.npz.lock`) for the whole run.
`--resume` continues the run with its own flags (dagnet/cli/resume.py): a flag given with
another value is refused unless `--override FLAG=VALUE` asks for it, and the Solver checks
the checkpoint's graph, data and recipe (dagnet/train/resume.py)."""
from __future__ import annotations

import contextlib
import json
import os
import sys

import numpy as np

from dagnet.cli import data_flags, dist, finetune, recipe, run_logs
from dagnet.cli.common import DATA_HELP, MODEL_HELP, UsageError, load_data, resolve_model, with_loss
from dagnet.cli.resume import Given, keep_data_json, recorded_flags, saved_note, settle
from dagnet.errors import DagnetError
from dagnet.files import describe_os_error, short
from dagnet.train.runfolder import write_json


def cmd_train(args, callbacks=(), hparams=None) -> int:
    """`dagnet train` (and each trial of `dagnet tune`, which adds its callbacks and hparams)."""
    check_flags(args)
    # here, as one rank of an MPI job, or --ranks N under mpiexec
    return dist.run(args, lambda a, world: train(a, world, callbacks, hparams))


def train(args, world, callbacks=(), hparams=None) -> int:
    """The training run of this process (`world`: its rank among the others, if any); rank 0
    holds the run folder's lock throughout."""
    ckpt = os.path.join(args.out, "checkpoint.npz")
    try:
        with contextlib.ExitStack() as held:
            world.on_root(lambda: held.enter_context(_lock_out(args, ckpt)))
            flags, allowed = _settle(args, world, ckpt)
            return train_in_folder(args, world, ckpt, flags, allowed, callbacks, hparams)
    except KeyboardInterrupt:
        # what the folder holds, read from the checkpoint itself (perhaps nothing yet)
        raise KeyboardInterrupt(f"interrupted; {saved_note(ckpt)}") from None


def _lock_out(args, ckpt: str):
    from dagnet.train.runfolder import RunLock

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot use --out {args.out}: {describe_os_error(e)}") from None
    return RunLock(ckpt, what=f"run folder {args.out}")


def _settle(args, world, ckpt: str) -> tuple[dict, list]:
    """The run's flags (rank 0 settles them against the checkpoint's; see cli/resume.py) and
    the Solver keys whose change --override asked for; every rank takes rank 0's."""
    settled = {}

    def on_root():
        resuming = os.path.exists(ckpt)
        if resuming and not args.resume:
            raise UsageError(f"{args.out} already holds a run: pass --resume to continue it, or "
                             f"choose another --out")
        recorded = recorded_flags(ckpt) if resuming else {}
        settled["flags"], settled["allowed"] = settle(args.parser, args, recorded, args.out)
        check_flags(args)

    world.on_root(on_root)
    if world.comm:
        settled = json.loads(world.comm.bcast_bytes(json.dumps(settled).encode(),
                                                     "sending the run's flags from rank 0"))
        for dest, value in settled["flags"].items():
            setattr(args, dest, value)
    return settled["flags"], settled["allowed"]


def train_in_folder(args, world, ckpt: str, flags: dict, allowed: list, callbacks, hparams) -> int:
    import dagnet
    from dagnet.train.evaluate import evaluate_arrays
    from dagnet.train.solver import Solver

    try:
        data, info = load_data(args.data, args.val, args.seed, args.preprocessing)
    except DagnetError as e:  # the split's own message, in the command's terms
        if not str(e).startswith("num_val"):
            raise
        raise UsageError(f"--val {args.val}: {str(e).split(', but ', 1)[-1]}") from None
    shape = data["X_train"].shape[1:]
    classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    source = resolve_model(args.model, shape, classes)
    # the weights it starts from, a fresh head (--replace-head), what is frozen (--freeze);
    # resuming, the checkpoint's params then replace them
    begin = finetune.start(args, source, with_loss(source.graph), shape, classes, args.dtype)
    graph = begin.graph
    plan = dagnet.compile(graph, seed=args.seed, dtype=args.dtype, params=begin.params,
                          state=begin.state, freeze=begin.freeze, **world.compile_options(args))
    model = world.wrap(plan, args)  # several ranks: DataParallel (rank 0's params everywhere)
    augment = data_flags.from_args(args)
    world.on_root(lambda: _make_out(args, info, graph, augment, ckpt))
    quiet = args.quiet or not world.is_root
    if not quiet:
        ranks = f"; {world.size} ranks" if world.size > 1 else ""
        frozen = sum(plan.params[p].size for p in plan.frozen if p in plan.params)
        print(f"{graph.name}: {sum(p.size for p in plan.params.values()):,} params"
              + (f" ({frozen:,} frozen up to {args.freeze})" if frozen else "") + ", "
              f"{len(plan.steps)} steps ({sum(s.fused for s in plan.steps)} fused); "
              f"{len(data['X_train']):,} train / {len(data['X_val']):,} val / "
              f"{len(data['X_test']):,} test examples{ranks}")
    # Off a terminal (a log, CI) the Solver prints one line per epoch and no bar; the course's
    # per-iteration lines (print_every) would add hundreds more.
    tensorboard = run_logs.tensorboard_logger(args, hparams) if world.is_root else None
    options = solver_options(args)
    options["optim_config"].update(getattr(args, "optim", None) or {})  # a recipe's optim:
    solver = Solver(model, data, **options,
                    lr_schedule=lr_schedule(args, len(data["X_train"])),
                    batch_size=args.batch_size, num_epochs=args.epochs, num_train_samples=5000,
                    verbose=not quiet, print_every=0, checkpoint=ckpt if world.is_root else None,
                    resume=args.resume and world.size == 1, seed=args.seed,
                    on_epoch=(lambda s: write_history(args.out, s)) if world.is_root else None,
                    callbacks=[*callbacks, *([tensorboard] if tensorboard else [])],
                    augment=augment, allow_changes=allowed, run_info={"flags": flags})
    if args.resume:
        world.resume(solver, ckpt, model)  # several ranks: rank 0's checkpoint on every rank
    if solver.changes and solver.changes[-1]["epoch"] == solver.epoch and not quiet:
        changed = solver.changes[-1]["changed"]
        print(f"resuming after epoch {solver.epoch} with "
              + ", ".join(f"{k} {short(repr(a), 40)} -> {short(repr(b), 40)}"
                          for k, (a, b) in changed.items()) + " (recorded in the run's history)")
    first_epoch = solver.epoch  # > 0 when resumed: the speed below is this run's alone
    with run_logs.logging_to(tensorboard):
        solver.train()  # leaves the best epoch's params in the plan
    if not world.is_root:
        return 0
    # each epoch writes history.json after its checkpoint: a run killed between the two and
    # resumed with no epoch left to train would keep the stale file without this
    write_history(args.out, solver)
    test = evaluate_arrays(plan, data["X_test"], data["y_test"])
    write_pictures(args.out, graph, plan, solver, args.quiet)
    if not args.quiet:
        print(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}); "
              f"{run_speed(solver.epoch_times[first_epoch:], len(data['X_train']), first_epoch)}; "
              f"run in {args.out}")
        if world.report(model):
            print(world.report(model))
    return 0


def _make_out(args, info: dict, graph, augment, ckpt: str) -> None:
    """data.json (written when a run starts, never rewritten mid-run) and spec.yaml."""
    keep_data_json(os.path.join(args.out, "data.json"), info, os.path.exists(ckpt), args.out)
    recipe.write_spec(os.path.join(args.out, "spec.yaml"), graph,
                      recipe.resolved_recipe(args, augment))


#: the learning rate tuned for LeNet-sized nets with the SGD rules and the cosine schedule
SGD_LR = 4e-2


def solver_options(args) -> dict:
    """The update rule's Solver keywords from the flags: --lr (default: SGD_LR for the SGD
    rules, the rule's own default otherwise), --weight-decay as AdamW's decoupled decay or as
    the L2 term of the other rules, and early stopping."""
    from dagnet.train.optim import DEFAULTS

    rule = args.update_rule
    lr = args.lr
    if lr is None:
        lr = SGD_LR if rule in ("sgd", "sgd_momentum", "nesterov") else DEFAULTS[rule]["learning_rate"]
    config = {"learning_rate": lr}
    decay = args.weight_decay
    if rule == "adamw":
        config["weight_decay"] = DEFAULTS["adamw"]["weight_decay"] if decay is None else decay
        decay = 0.0
    return {"update_rule": rule, "optim_config": config, "weight_decay": decay or 0.0,
            "patience": args.patience, "monitor": args.monitor, "min_delta": args.min_delta}


def check_flags(args) -> None:
    """UsageError naming the flag for values out of range (before any data is loaded)."""
    for flag, value, low in (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 1),
                             ("--val", args.val, 0), ("--seed", args.seed, 0)):
        if value < low:
            raise UsageError(f"{flag} must be an integer >= {low}, got {value}")
    for flag, value, ok in (("--lr", args.lr, lambda v: v > 0),
                            ("--weight-decay", args.weight_decay, lambda v: v >= 0),
                            ("--patience", args.patience, lambda v: v >= 1),
                            ("--min-delta", args.min_delta, lambda v: v >= 0),
                            ("--warmup", args.warmup, lambda v: v >= 0),
                            ("--lr-decay", args.lr_decay, lambda v: v > 0)):
        if value is not None and not (np.isfinite(value) and ok(value)):
            want = "an integer >= 1" if flag == "--patience" else (
                "a number > 0" if flag in ("--lr", "--lr-decay") else "a number >= 0")
            raise UsageError(f"{flag} must be {want}, got {value}")
    finetune.check_flags(args)
    if not 0 <= args.warmup < args.epochs:
        raise UsageError(f"--warmup must be at least 0 and less than --epochs ({args.epochs}), "
                         f"got {args.warmup}")


def run_speed(epoch_times: list, n_train: int, resumed_at: int = 0) -> str:
    """'s/epoch, images/s' over the epochs this run trained (not a resumed run's earlier ones)."""
    if not epoch_times:
        return "no epochs left to train"
    seconds = sum(epoch_times)
    text = (f"{seconds / len(epoch_times):.1f} s/epoch, "
            f"{n_train * len(epoch_times) / max(seconds, 1e-9):,.0f} images/s")
    if resumed_at:
        k = len(epoch_times)
        text += f" (this run's {k} epoch{'s' if k != 1 else ''}, resumed after epoch {resumed_at})"
    return text


def lr_schedule(args, n_train: int) -> dict:
    """The learning-rate schedule of --lr-schedule: cosine climbs linearly for --warmup epochs,
    then decays per step to 0 over the rest of the run; step multiplies by --lr-decay each
    epoch; constant keeps --lr."""
    if args.lr_schedule == "cosine":
        per_epoch = -(-n_train // args.batch_size)
        return {"name": "cosine", "per": "step", "total": args.epochs * per_epoch,
                "warmup": int(round(args.warmup * per_epoch))}
    if args.lr_schedule == "step":
        return {"name": "step", "lr_decay": args.lr_decay}
    return {"name": "constant"}


def write_history(out: str, solver) -> None:
    write_json(os.path.join(out, "history.json"), {**solver.history(), "changes": solver.changes})


def write_pictures(out: str, graph, plan, solver, quiet: bool) -> None:
    """The graph diagram and the training curves, when the viz extras work here."""
    try:
        from dagnet.viz import plot_history, render_graph
    except ImportError:
        return
    try:
        render_graph(graph, os.path.join(out, "graph.svg"), frozen=plan.frozen)
        plot_history(solver.history(), os.path.join(out, "curves.png"))
    except DagnetError as e:  # e.g. graphviz's dot missing: training still succeeded
        if not quiet:
            print(f"note: pictures not written: {e}", file=sys.stderr)


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    from dagnet.train.optim import UPDATE_RULES
    from dagnet.train.stopping import MONITORS

    t = sub.add_parser("train", help="train a model on a dataset, writing a run directory")
    t.add_argument("model", help=MODEL_HELP + " (a run's graph, fresh weights; see --weights)")
    t.add_argument("--data", action=Given, default="fashion-mnist", help=DATA_HELP + "")
    t.add_argument("--epochs", action=Given, type=int, default=2,
                   help="passes over the training set")
    t.add_argument("--batch-size", action=Given, type=int, default=64,
                   help="examples per step")
    t.add_argument("--update-rule", action=Given, default="sgd_momentum", choices=list(UPDATE_RULES),
                   help="the optimizer; adamw: Adam with decoupled weight decay (PyTorch's "
                        "AdamW), adadelta: AdaDelta (PyTorch's)")
    t.add_argument("--lr", action=Given, type=float, default=None,
                   help=f"(peak) learning rate (default: {SGD_LR} for sgd, sgd_momentum and "
                        f"nesterov; the rule's own otherwise: adam/adamw 1e-3, rmsprop and "
                        f"adagrad 1e-2, adadelta 1.0)")
    t.add_argument("--lr-schedule", action=Given, default="cosine", choices=["cosine", "step", "constant"],
                   help="cosine: per step down to 0 over the run; step: times --lr-decay per "
                        "epoch; constant: --lr throughout (default: %(default)s)")
    t.add_argument("--warmup", action=Given, type=float, default=0.1,
                   help="epochs (a fraction is fine) over which the rate climbs linearly to --lr "
                        "before the cosine decay (with --lr-schedule cosine; 0: none) "
                        "(default: %(default)s)")
    t.add_argument("--lr-decay", action=Given, type=float, default=0.9,
                   help="per-epoch learning-rate factor (with --lr-schedule step) "
                        "")
    t.add_argument("--weight-decay", action=Given, type=float, default=None,
                   help="weight decay on weights (not biases): an L2 term 0.5*wd*||W||^2 in the "
                        "loss, or with --update-rule adamw AdamW's decoupled decay (default: 0; "
                        "with adamw 0.01, PyTorch's)")
    t.add_argument("--patience", action=Given, type=int, default=None,
                   help="stop early after this many epochs without the --monitor value "
                        "improving, keeping the best epoch's params (default: never stop early)")
    t.add_argument("--monitor", action=Given, default="val_acc", choices=list(MONITORS),
                   help="what picks the best epoch (whose params are kept) and drives "
                        "--patience")
    t.add_argument("--min-delta", action=Given, type=float, default=0.0,
                   help="how much the --monitor value must improve by to count as an "
                        "improvement")
    t.add_argument("--val", action=Given, type=int, default=5000,
                   help="validation examples split off train")
    t.add_argument("--dtype", action=Given, default="float32", choices=["float32", "float64"],
                   help="float type of params and activations")
    t.add_argument("--seed", action=Given, type=int, default=0,
                   help="seed of the init, the split, the batch order and dropout "
                        "")
    t.add_argument("--out", default=None, help="run directory (default: runs/MODEL)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its own flags (a flag given with "
                        "another value is refused, naming both)")
    t.add_argument("--override", action="append", metavar="FLAG=VALUE",
                   help="with --resume: change one of the run's flags (e.g. lr=0.01, "
                        "epochs=20), recorded in the run's history (repeatable)")
    t.add_argument("--weights", help="start from these params (a checkpoint, e.g. from "
                   "`dagnet import`) instead of fresh ones: fine-tuning")
    finetune.add_flags(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    data_flags.add_arguments(t)
    dist.add_flags(t)
    t.set_defaults(func=cmd_train, parser=t)
