"""`dagnet render`, `diff`, `plot` and `maps`: pictures of graphs, plans and runs."""
from __future__ import annotations

import os

from dagnet.cli.common import (UsageError, load_data, load_graph_or_plan, load_run, read_json,
                               resolve_graph)


def cmd_render(args) -> int:
    from dagnet import viz

    if args.html:
        from dagnet.cli.report import render_html

        return render_html(args)
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
        graph = load_graph_or_plan(args.model, plan=False)
        viz.render_graph(graph, out, format=args.format, rankdir=args.rankdir)
    print(f"wrote {out}")
    return 0


def cmd_diff(args) -> int:
    from dagnet import viz

    a = load_graph_or_plan(args.a, plan=args.plan)
    b = load_graph_or_plan(args.b, plan=args.plan)
    out = args.output or "diff.svg"
    viz.diff(a, b, out)
    print(f"wrote {out}")
    return 0


def cmd_plot(args) -> int:
    from dagnet import viz

    history = read_json(os.path.join(args.run_dir, "history.json"), "the run may still be in its first epoch")
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
    info = read_json(os.path.join(args.run_dir, "data.json"), "re-run `dagnet train` to rewrite it")
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


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
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
    r.add_argument("--html", action="store_true", help="write the interactive explorer instead: one "
                   "offline HTML page (declared graph, plan, memory, passes; with --timings, heat)")
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

    m = sub.add_parser("maps", help="feature maps of a node for one test image")
    m.add_argument("run_dir")
    m.add_argument("--node", required=True, help="e.g. conv1 or pool1")
    m.add_argument("--index", type=int, default=0, help="test image index")
    m.add_argument("-o", "--output")
    m.set_defaults(func=cmd_maps)
