"""The `dagnet` command: train, evaluate, summary, gradcheck, render, diff, plot, maps,
import, export.

    dagnet train lenet --data fashion-mnist --epochs 2 --out runs/lenet
    dagnet evaluate runs/lenet --json
    dagnet summary lenet

A user's mistake (bad path, unknown model, bad flag value) prints one line and exits with 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from dagnet.errors import DagnetError

DATA_HELP = ("fashion-mnist (Debian's dataset-fashion-mnist), mnist:DIR, fashion-mnist:DIR, "
             "or cifar10:DIR (the CIFAR-10 python batches)")


class UsageError(DagnetError):
    """A bad command line: printed as one line, exit code 2."""


# -- what to train ---------------------------------------------------------------------------
def resolve_graph(target: str, input_shape=None, num_classes=None):
    """A Graph from a spec file path or a model-zoo name (sized for the data when given)."""
    from dagnet.graph import Graph
    from dagnet.models import MODELS, get_model

    if target.endswith(".onnx"):
        return _load_onnx(target).graph
    if os.path.exists(target):
        return Graph.from_spec(target)
    if target.endswith((".yaml", ".yml", ".json")):
        raise UsageError(f"spec file not found: {target}")
    if target not in MODELS:
        raise UsageError(f"unknown model '{target}': give a spec file or one of {', '.join(MODELS)}")
    kw = {}
    if input_shape is not None:
        kw.update(input_shape=tuple(input_shape), num_classes=num_classes)
    return get_model(target, **kw)


def _load_onnx(path: str, input_shapes=None):
    from dagnet import onnx

    if not os.path.exists(path):
        raise UsageError(f"ONNX file not found: {path}")
    return onnx.load(path, input_shapes=input_shapes or None)


def load_data(spec: str, num_val: int, seed: int):
    """Train/val/test arrays standardised per channel with train statistics, and a JSON-able
    description (to reload the same data for `evaluate`)."""
    from dagnet.data.idx import load_mnist_like
    from dagnet.data.preprocess import fit_normalization, normalize, split_train_val

    kind, _, directory = spec.partition(":")
    if kind in ("fashion-mnist", "mnist"):
        raw = load_mnist_like(directory or None, kind)
    elif kind == "cifar10":
        from dagnet.data.cifar import load_cifar10

        if not directory:
            raise UsageError("cifar10 needs a directory: --data cifar10:DIR")
        raw = load_cifar10(directory)
    else:
        raise UsageError(f"unknown dataset '{spec}': use {DATA_HELP}")
    X, y, Xv, yv = split_train_val(raw["X_train"], raw["y_train"], num_val, seed)
    stats = fit_normalization(X, "channel")
    data = {"X_train": normalize(X, stats), "y_train": y, "X_val": normalize(Xv, stats), "y_val": yv,
            "X_test": normalize(raw["X_test"], stats), "y_test": raw["y_test"]}
    info = {"data": spec, "num_val": num_val, "split_seed": seed,
            "normalization": {k: np.asarray(v).tolist() for k, v in stats.items()}}
    return data, info


# -- commands --------------------------------------------------------------------------------
def cmd_train(args) -> int:
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
    graph = _with_loss(resolve_graph(args.model, shape, classes))
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
    _write_json(os.path.join(args.out, "data.json"), info)
    if not args.quiet:
        print(f"{graph.name}: {sum(p.size for p in plan.params.values()):,} params, "
              f"{len(plan.steps)} steps ({sum(s.fused for s in plan.steps)} fused); "
              f"{len(data['X_train']):,} train / {len(data['X_val']):,} val / "
              f"{len(data['X_test']):,} test examples")
    solver = Solver(plan, data, update_rule=args.update_rule,
                    optim_config={"learning_rate": args.lr},
                    lr_schedule=_schedule(args, len(data["X_train"])),
                    batch_size=args.batch_size, num_epochs=args.epochs,
                    weight_decay=args.weight_decay, num_train_samples=5000, verbose=not args.quiet,
                    checkpoint=ckpt, resume=args.resume, seed=args.seed,
                    on_epoch=lambda s: _write_history(args.out, s))
    solver.train()  # leaves the best-validation params in the plan
    test = evaluate_arrays(plan, data["X_test"], data["y_test"])
    _write_pictures(args.out, graph, plan, solver, args.quiet)
    if not args.quiet:
        images = len(data["X_train"]) * len(solver.epoch_times) / max(sum(solver.epoch_times), 1e-9)
        print(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}); "
              f"{np.mean(solver.epoch_times):.1f} s/epoch, {images:,.0f} images/s; run in {args.out}")
    return 0


def _schedule(args, n_train: int) -> dict:
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


def _with_loss(graph):
    """The graph itself if it has a loss; else (e.g. an imported ONNX model) a softmax
    cross-entropy loss on its single output, with an int64 label input `y`."""
    if graph.losses:
        return graph
    outs = graph.outputs
    if len(outs) != 1 or len(graph.shape_of(outs[0])) != 1:
        raise UsageError(f"the model has no loss and its outputs {outs} are not one vector of "
                         f"class scores; add a loss node (e.g. softmax_cross_entropy) to the spec")
    labels = "y" if "y" not in graph else "labels"
    graph.softmax_cross_entropy(outs[0], graph.input(labels, (), dtype="int64"), name="loss")
    graph.outputs = None
    return graph


def _write_json(path: str, obj) -> None:
    """Write JSON atomically: a kill mid-write leaves the old file, never half of one."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def _read_json(path: str, what: str):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: is this a run directory of `dagnet train`?") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} cannot be read ({e}); {what}") from None


def _write_history(out: str, solver) -> None:
    _write_json(os.path.join(out, "history.json"), solver.history())


def _write_pictures(out: str, graph, plan, solver, quiet: bool) -> None:
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


def load_run(run_dir: str, mode: str = "eval", best: bool = True):
    """(graph, plan, checkpoint) of a run directory written by `dagnet train`; the plan holds
    the best-validation params (or the last epoch's with best=False)."""
    import dagnet
    from dagnet.graph import Graph
    from dagnet.train.checkpoint import load_checkpoint

    if not os.path.isdir(run_dir):
        raise UsageError(f"no run directory {run_dir}")
    ck = load_checkpoint(os.path.join(run_dir, "checkpoint.npz"))
    params, state = ck.params, ck.state
    if best and ck.extra.get("best_params"):
        params, state = ck.extra["best_params"], ck.extra.get("best_state", state)
    if not params:
        raise UsageError(f"{run_dir}/checkpoint.npz holds no params: it is not a training checkpoint")
    graph = Graph.from_spec(ck.spec)
    plan = dagnet.compile(graph, mode=mode, params=params, state=state,
                          dtype=next(iter(params.values())).dtype)
    return graph, plan, ck


def cmd_evaluate(args) -> int:
    from dagnet.train.evaluate import evaluate_arrays

    _, plan, _ = load_run(args.run_dir)
    info = _read_json(os.path.join(args.run_dir, "data.json"), "re-run `dagnet train` to rewrite it")
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
    from dagnet.compiler.pipeline import random_feeds
    from dagnet.gradcheck import gradcheck_plan

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


def _load_graph_or_plan(target: str, plan: bool, mode: str = "train"):
    """A model name, spec file, run directory or (with the onnx extra) .onnx file, as a Graph
    or a compiled plan."""
    import dagnet

    if os.path.isdir(target):
        graph, run_plan, _ = load_run(target, mode="eval")
        return run_plan if plan else graph
    if target.endswith(".onnx"):
        m = _load_onnx(target)
        return dagnet.compile(m.graph, mode=mode, params=m.params, state=m.state) if plan else m.graph
    graph = resolve_graph(target)
    return dagnet.compile(graph, mode=mode) if plan else graph


def cmd_render(args) -> int:
    from dagnet import viz

    if args.passes:
        graph = resolve_graph(args.model)
        files = viz.film_strip(graph, args.passes, format=args.format or "svg", mode=args.mode)
        print(f"wrote {len(files)} pictures to {args.passes}: " + ", ".join(map(os.path.basename, files)))
        return 0
    out = args.output or f"{os.path.splitext(os.path.basename(args.model.rstrip('/')))[0]}.svg"
    if args.plan or args.backward or args.memory:
        plan = _load_graph_or_plan(args.model, plan=True, mode=args.mode)
        timings = None
        if args.timings:
            from dagnet.compiler.pipeline import random_feeds

            timings = viz.profile_plan(plan, random_feeds(plan, batch=args.batch))
        viz.render_plan(plan, out, format=args.format, show_backward=args.backward,
                        show_memory=args.memory, timings=timings)
        if args.memory:
            chart = os.path.splitext(out)[0] + "_memory.png"
            viz.plot_memory(plan, chart)
            print(f"wrote {out} and {chart}")
            return 0
    else:
        graph = _load_graph_or_plan(args.model, plan=False)
        viz.render_graph(graph, out, format=args.format, rankdir=args.rankdir)
    print(f"wrote {out}")
    return 0


def cmd_diff(args) -> int:
    from dagnet import viz

    a = _load_graph_or_plan(args.a, plan=args.plan)
    b = _load_graph_or_plan(args.b, plan=args.plan)
    out = args.output or "diff.svg"
    viz.diff(a, b, out)
    print(f"wrote {out}")
    return 0


def cmd_plot(args) -> int:
    from dagnet import viz

    history = _read_json(os.path.join(args.run_dir, "history.json"), "the run may still be in its first epoch")
    curves = os.path.join(args.run_dir, "curves.png")
    viz.plot_history(history, curves)
    graph, plan, _ = load_run(args.run_dir)
    conv = next((n for n in graph if n.op == "conv2d"), None)
    written = [curves]
    if conv is not None:
        filters = os.path.join(args.run_dir, "filters.png")
        viz.plot_filters(plan.params[conv.inputs[1]], filters, title=f"{conv.name} filters")
        written.append(filters)
    print("wrote " + ", ".join(written))
    return 0


def cmd_maps(args) -> int:
    from dagnet import viz

    graph, plan, _ = load_run(args.run_dir)
    if args.node not in graph:
        raise UsageError(f"no node '{args.node}' in the model; nodes: "
                         f"{', '.join(n.name for n in graph if n.op not in ('input', 'param'))}")
    info = _read_json(os.path.join(args.run_dir, "data.json"), "re-run `dagnet train` to rewrite it")
    data, _ = load_data(info["data"], info["num_val"], info["split_seed"])
    X = data["X_test"]
    if not 0 <= args.index < len(X):
        raise UsageError(f"--index must be in [0, {len(X) - 1}]")
    maps = viz.feature_maps(plan, X[args.index], args.node)
    out = args.output or f"{args.node}_{args.index}.png"
    viz.plot_feature_maps(maps, out, title=f"{args.node} of test image {args.index} "
                          f"(label {data['y_test'][args.index]})")
    print(f"wrote {out}")
    return 0


def cmd_import(args) -> int:
    from dagnet.spec import save_spec
    from dagnet.train.checkpoint import save_checkpoint

    shapes = {}
    for item in args.input_shape or []:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise UsageError(f"--input-shape takes NAME=C,H,W, got '{item}'") from None
    m = _load_onnx(args.model, shapes)
    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + ".yaml"
    save_spec(m.graph, out)
    weights = os.path.splitext(out)[0] + ".weights.npz"
    save_checkpoint(weights, params=m.params, state=m.state, optimizer={}, solver={},
                    spec=m.graph.to_spec())
    print(f"wrote {out} ({len(m.graph)} nodes) and {weights} ({len(m.params)} params); "
          f"fine-tune with: dagnet train {out} --weights {weights} ...")
    return 0


def cmd_export(args) -> int:
    import dagnet
    from dagnet import onnx

    if os.path.isdir(args.model):
        _, plan, _ = load_run(args.model)
    else:
        plan = dagnet.compile(resolve_graph(args.model), mode="eval")
        print("note: exporting freshly initialised weights (give a run directory for trained ones)",
              file=sys.stderr)
    out = args.output or "model.onnx"
    onnx.export(plan, out, opset=args.opset)
    print(f"wrote {out}")
    return 0


# -- parser ----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (not usage + error) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dagnet", description="Graph-compiled neural networks: "
                "train, evaluate, inspect and render models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

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
    t.set_defaults(func=cmd_train)

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

    r = sub.add_parser("render", help="draw a graph or its compiled plan (svg, png, pdf, dot)")
    r.add_argument("model", help="a model-zoo name, a spec file or a run directory")
    r.add_argument("-o", "--output", help="output file; the format follows its suffix")
    r.add_argument("--format", choices=["svg", "png", "pdf", "dot"], help="override the suffix")
    r.add_argument("--plan", action="store_true", help="draw the compiled plan (fused groups, steps)")
    r.add_argument("--backward", action="store_true", help="with the backward sweep")
    r.add_argument("--memory", action="store_true", help="with buffers and a memory chart")
    r.add_argument("--timings", action="store_true", help="color steps by measured time")
    r.add_argument("--batch", type=int, default=32, help="batch size for --timings")
    r.add_argument("--mode", default="train", choices=["train", "eval"])
    r.add_argument("--rankdir", default="TB", choices=["TB", "LR"])
    r.add_argument("--passes", metavar="DIR", help="write the graph after every compiler pass")
    r.set_defaults(func=cmd_render)

    d = sub.add_parser("diff", help="draw two graphs (or plans) with changes colored")
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--plan", action="store_true", help="compare the compiled plans")
    d.add_argument("-o", "--output")
    d.set_defaults(func=cmd_diff)

    pl = sub.add_parser("plot", help="training curves and first-layer filters of a run")
    pl.add_argument("run_dir")
    pl.set_defaults(func=cmd_plot)

    im = sub.add_parser("import", help="an ONNX model as a spec (YAML/JSON) plus its weights")
    im.add_argument("model", help="a .onnx file")
    im.add_argument("-o", "--output", help="spec file to write (.yaml or .json)")
    im.add_argument("--input-shape", action="append", metavar="NAME=C,H,W",
                    help="fix a symbolic input shape (repeatable)")
    im.set_defaults(func=cmd_import)

    ex = sub.add_parser("export", help="a model, spec or trained run as ONNX")
    ex.add_argument("model", help="a model-zoo name, a spec file or a run directory")
    ex.add_argument("-o", "--output", help="the .onnx file to write")
    ex.add_argument("--opset", type=int, default=17)
    ex.set_defaults(func=cmd_export)

    m = sub.add_parser("maps", help="feature maps of a node for one test image")
    m.add_argument("run_dir")
    m.add_argument("--node", required=True, help="e.g. conv1 or pool1")
    m.add_argument("--index", type=int, default=0, help="test image index")
    m.add_argument("-o", "--output")
    m.set_defaults(func=cmd_maps)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "out", "") is None:
        args.out = os.path.join("runs", os.path.splitext(os.path.basename(args.model))[0])
    try:
        return args.func(args)
    except DagnetError as e:
        print(f"dagnet {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dagnet summary lenet | head`: the reader left, not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
