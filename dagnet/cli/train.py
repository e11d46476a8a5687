"""`dagnet train`: train a model on a dataset, writing a run folder (checkpoint, history,
data description, pictures)."""
from __future__ import annotations

import os
import sys

import numpy as np

from dagnet.cli import augment_flags, run_logs
from dagnet.cli.common import DATA_HELP, UsageError, load_data, resolve_graph, with_loss, write_json
from dagnet.errors import DagnetError


def cmd_train(args, callbacks=(), hparams=None) -> int:
    import dagnet
    from dagnet.train.evaluate import evaluate_arrays
    from dagnet.train.solver import Solver

    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise UsageError("--epochs and --batch-size must be >= 1 and --lr > 0")
    if not 0 <= args.warmup < args.epochs:
        raise UsageError(f"--warmup must be at least 0 and less than --epochs ({args.epochs}), "
                         f"got {args.warmup}")
    ckpt = os.path.join(args.out, "checkpoint.npz")
    if os.path.exists(ckpt) and not args.resume:
        raise UsageError(f"{args.out} already holds a run: pass --resume to continue it, or "
                         f"choose another --out")
    data, info = load_data(args.data, args.val, args.seed)
    shape = data["X_train"].shape[1:]
    classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    graph = with_loss(resolve_graph(args.model, shape, classes))
    params = state = None
    if args.weights:
        from dagnet.train.checkpoint import check_compatible, load_checkpoint

        ck = load_checkpoint(args.weights)
        shapes = {n.name: tuple(n.attrs["shape"]) for n in graph.params}
        check_compatible(ck, shapes)
        params = {k: v.astype(args.dtype) for k, v in ck.params.items()}
        state = {n: {k: v.astype(args.dtype) for k, v in st.items()} for n, st in ck.state.items()}
    plan = dagnet.compile(graph, seed=args.seed, dtype=args.dtype, params=params, state=state)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot use --out {args.out}: {e.strerror}") from None
    write_json(os.path.join(args.out, "data.json"), info)
    if not args.quiet:
        print(f"{graph.name}: {sum(p.size for p in plan.params.values()):,} params, "
              f"{len(plan.steps)} steps ({sum(s.fused for s in plan.steps)} fused); "
              f"{len(data['X_train']):,} train / {len(data['X_val']):,} val / "
              f"{len(data['X_test']):,} test examples")
    tensorboard = run_logs.tensorboard_logger(args, hparams)
    solver = Solver(plan, data, update_rule=args.update_rule,
                    optim_config={"learning_rate": args.lr},
                    lr_schedule=lr_schedule(args, len(data["X_train"])),
                    batch_size=args.batch_size, num_epochs=args.epochs,
                    weight_decay=args.weight_decay, num_train_samples=5000, verbose=not args.quiet,
                    checkpoint=ckpt, resume=args.resume, seed=args.seed,
                    on_epoch=lambda s: write_history(args.out, s),
                    callbacks=[*callbacks, tensorboard], augment=augment_flags.from_args(args))
    with run_logs.logging_to(tensorboard):
        solver.train()  # leaves the best-validation params in the plan
    test = evaluate_arrays(plan, data["X_test"], data["y_test"])
    write_pictures(args.out, graph, plan, solver, args.quiet)
    if not args.quiet:
        images = len(data["X_train"]) * len(solver.epoch_times) / max(sum(solver.epoch_times), 1e-9)
        print(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}); "
              f"{np.mean(solver.epoch_times):.1f} s/epoch, {images:,.0f} images/s; run in {args.out}")
    return 0


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
    write_json(os.path.join(out, "history.json"), solver.history())


def write_pictures(out: str, graph, plan, solver, quiet: bool) -> None:
    """The graph diagram and the training curves, when the viz extras work here."""
    try:
        from dagnet.viz import plot_history, render_graph
    except ImportError:
        return
    try:
        render_graph(graph, os.path.join(out, "graph.svg"))
        plot_history(solver.history(), os.path.join(out, "curves.png"))
    except DagnetError as e:  # e.g. graphviz's dot missing: training still succeeded
        if not quiet:
            print(f"note: pictures not written: {e}", file=sys.stderr)


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    t = sub.add_parser("train", help="train a model on a dataset, writing a run directory")
    t.add_argument("model", help="a model-zoo name (lenet, ...) or a spec file (.yaml/.json)")
    t.add_argument("--data", default="fashion-mnist", help=DATA_HELP)
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--update-rule", default="sgd_momentum",
                   choices=["sgd", "sgd_momentum", "nesterov", "rmsprop", "adam", "adagrad"])
    t.add_argument("--lr", type=float, default=4e-2, help="(peak) learning rate")
    t.add_argument("--lr-schedule", default="cosine", choices=["cosine", "step", "constant"],
                   help="cosine: per step down to 0 over the run; step: times --lr-decay per epoch")
    t.add_argument("--warmup", type=float, default=0.1,
                   help="epochs (a fraction is fine) over which the rate climbs linearly to --lr "
                        "before the cosine decay (with --lr-schedule cosine; 0: none)")
    t.add_argument("--lr-decay", type=float, default=0.9,
                   help="per-epoch learning-rate factor (with --lr-schedule step)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 on weights (not biases)")
    t.add_argument("--val", type=int, default=5000, help="validation examples split off train")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="run directory (default runs/MODEL)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--weights", help="start from these params (a checkpoint, e.g. from "
                   "`dagnet import`) instead of fresh ones: fine-tuning")
    t.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    augment_flags.add_arguments(t)
    t.set_defaults(func=cmd_train)
