"""`dagnet render`, `diff`, `plot` and `maps`: pictures of graphs, plans and runs."""
from __future__ import annotations

import math
import os

from dagnet.cli.common import (MODEL_HELP, UsageError, at_least, load_data, load_graph_or_plan,
                               load_run, read_json, resolve_graph)
from dagnet.cli.outputs import output_file, output_folder
from dagnet.train.runfolder import DATA_FIELDS, HISTORY_FIELDS


def cmd_render(args) -> int:
    from dagnet import viz

    if args.html:
        from dagnet.cli.report import render_html

        return render_html(args)
    output_folder(args.passes, "--passes")
    output_file(args.output)
    if args.passes:
        graph = resolve_graph(args.model)
        files = viz.film_strip(graph, args.passes, format=args.format or "svg", mode=args.mode)
        print(f"wrote {len(files)} pictures to {args.passes}: " + ", ".join(map(os.path.basename, files)))
        return 0
    out = args.output or f"{os.path.splitext(os.path.basename(args.model.rstrip('/')))[0]}.svg"
    if args.plan or args.backward or args.memory:
        plan = load_graph_or_plan(args.model, plan=True, mode=args.mode)
        timings = None
        if args.timings:
            from dagnet.compiler.feeds import random_feeds

            timings = viz.profile_plan(plan, random_feeds(plan, batch=args.batch))
        viz.render_plan(plan, out, format=args.format, show_backward=args.backward,
                        show_memory=args.memory, timings=timings)
        if args.memory:
            chart = os.path.splitext(out)[0] + "_memory.png"
            viz.plot_memory(plan, chart)
            print(f"wrote {out} and {chart}")
            return 0
    else:
        graph = load_graph_or_plan(args.model, plan=False)
        viz.render_graph(graph, out, format=args.format, rankdir=args.rankdir)
    print(f"wrote {out}")
    return 0


def cmd_diff(args) -> int:
    from dagnet import viz

    output_file(args.output)
    a = load_graph_or_plan(args.a, plan=args.plan)
    b = load_graph_or_plan(args.b, plan=args.plan)
    out = args.output or "diff.svg"
    viz.diff(a, b, out)
    print(f"wrote {out}")
    return 0


def cmd_plot(args) -> int:
    from dagnet import viz

    output_file(args.output)
    histories = {name: read_json(os.path.join(d, "history.json"), "the run may still be in its first epoch",
                                 HISTORY_FIELDS)
                 for name, d in zip(run_names(args.run_dirs), args.run_dirs)}
    if len(histories) > 1:
        out = args.output or "compare.png"
        viz.plot_histories(histories, out)
        print(f"wrote {out}")
        return 0
    run_dir, history = args.run_dirs[0], next(iter(histories.values()))
    curves = args.output or os.path.join(run_dir, "curves.png")
    viz.plot_history(history, curves)
    graph, plan, _ = load_run(run_dir)
    written = [curves]
    conv = next((n for n in graph if n.op == "conv2d"), None)
    affine = next((n for n in graph if n.op == "affine"), None)
    if conv is not None:
        filters = os.path.join(run_dir, "filters.png")
        viz.plot_filters(plan.params[conv.inputs[1]], filters, title=f"{conv.name} filters")
        written.append(filters)
    elif affine is not None:
        w = plan.params[affine.inputs[1]]
        shape = image_shape(graph, affine, w.shape[0])
        if shape is None:
            print(f"note: no conv, and {affine.name} does not read an image (1 or 3 channels): "
                  f"no weight picture")
        else:
            weights = os.path.join(run_dir, "weights.png")
            viz.plot_affine_weights(w, shape, weights, title=f"{affine.name} weights, one image per "
                                    f"hidden unit" + (f" (first 100 of {w.shape[1]})" if w.shape[1] > 100 else ""))
            written.append(weights)
    print("wrote " + ", ".join(written))
    return 0


def run_names(run_dirs) -> list[str]:
    """Legend names of runs: their folder names, or the paths as given where two share one."""
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    return [n if names.count(n) == 1 else os.path.normpath(d) for n, d in zip(names, run_dirs)]


def image_shape(graph, affine, features: int):
    """The image (C, H, W) with C 1 or 3 whose pixels an affine layer's `features` rows weigh:
    its input's shape, or a graph input's when the input is that image flattened; else None."""
    shapes = [graph.shape_of(affine.inputs[0])] + [tuple(n.attrs["shape"]) for n in graph.inputs]
    return next((s for s in shapes if len(s) == 3 and s[0] in (1, 3) and math.prod(s) == features), None)


def cmd_maps(args) -> int:
    from dagnet import viz

    output_file(args.output)
    graph, plan, _ = load_run(args.run_dir)
    if args.node in graph and graph.node(args.node).op in ("input", "param"):
        raise UsageError(f"'{args.node}' is a {graph.node(args.node).op}, not a layer: feature "
                         f"maps are a layer's outputs; give one of {layer_names(graph)}")
    if args.node not in graph:
        raise UsageError(f"no node '{args.node}' in the model; nodes: {layer_names(graph)}")
    info = read_json(os.path.join(args.run_dir, "data.json"), "re-run `dagnet train` to rewrite it",
                     DATA_FIELDS)
    data, _ = load_data(info["data"], info["num_val"], info["split_seed"],
                        info.get("preprocessing", "channel"))
    X = data["X_test"]
    if not 0 <= args.index < len(X):
        raise UsageError(f"--index must be in [0, {len(X) - 1}]")
    maps = viz.feature_maps(plan, X[args.index], args.node)
    out = args.output or f"{args.node}_{args.index}.png"
    viz.plot_feature_maps(maps, out, title=f"{args.node} of test image {args.index}", image=X[args.index],
                          image_title=f"test image {args.index} (label {data['y_test'][args.index]})")
    print(f"wrote {out}")
    return 0


def layer_names(graph) -> str:
    return ", ".join(n.name for n in graph if n.op not in ("input", "param"))


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    r = sub.add_parser("render", help="draw a graph or its compiled plan (svg, png, pdf, dot)")
    r.add_argument("model", help=MODEL_HELP)
    r.add_argument("-o", "--output", help="output file; the format follows its suffix")
    r.add_argument("--format", choices=["svg", "png", "pdf", "dot"], help="override the suffix")
    r.add_argument("--plan", action="store_true", help="draw the compiled plan (fused groups, steps)")
    r.add_argument("--backward", action="store_true", help="with the backward sweep")
    r.add_argument("--memory", action="store_true", help="with buffers and a memory chart")
    r.add_argument("--timings", action="store_true", help="color steps by measured time")
    r.add_argument("--batch", type=at_least(1), default=32, help="batch size for --timings")
    r.add_argument("--mode", default="train", choices=["train", "eval"],
                   help="compile for training (with backward) or for inference")
    r.add_argument("--rankdir", default="TB", choices=["TB", "LR"],
                   help="layout direction: top to bottom or left to right")
    r.add_argument("--passes", metavar="DIR", help="write the graph after every compiler pass")
    r.add_argument("--html", action="store_true", help="write the interactive explorer instead: one "
                   "offline HTML page (declared graph, plan, memory, passes; with --timings, heat)")
    r.set_defaults(func=cmd_render)

    d = sub.add_parser("diff", help="draw two graphs (or plans) with changes colored")
    d.add_argument("a", help="the model before: " + MODEL_HELP)
    d.add_argument("b", help="the model after, any of the same kinds")
    d.add_argument("--plan", action="store_true", help="compare the compiled plans")
    d.add_argument("-o", "--output", help="output file (default diff.svg); the format follows "
                   "its suffix")
    d.set_defaults(func=cmd_diff)

    pl = sub.add_parser("plot", help="training curves and first-layer filters (or weights) of a run; "
                        "several runs: their curves overlaid in one picture")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories of `dagnet train`")
    pl.add_argument("-o", "--output", help="the curves picture (default: RUN_DIR/curves.png for one "
                    "run, compare.png for several)")
    pl.set_defaults(func=cmd_plot)

    m = sub.add_parser("maps", help="feature maps of a node for one test image")
    m.add_argument("run_dir", help="a run directory written by `dagnet train`")
    m.add_argument("--node", required=True, help="e.g. conv1 or pool1")
    m.add_argument("--index", type=int, default=0, help="test image index")
    m.add_argument("-o", "--output", help="output picture (default NODE_INDEX.png)")
    m.set_defaults(func=cmd_maps)
