"""dagnet.viz: pictures of graphs, compiled plans and training runs.

graphviz diagrams (each function returns a graphviz.Digraph and writes a file when given a
path; `.source` is the DOT text):
    render_graph(graph, "net.svg")                 the declared DAG
    render_plan(plan, "plan.svg", show_backward=True, show_memory=True, timings=...)
    diff(a, b, "ab.svg"); film_strip(graph, "passes/")    what changed; what each pass did
    render_autodiff(graph, feeds, mode="forward", wrt="x1")   values and derivatives on the
        edges, as autodiff courses draw them (mode="reverse", of="y1": adjoints flowing back)
matplotlib figures (each returns a Figure and writes a file when given a path):
    plot_memory(plan, "memory.png")                buffer lifetimes and the memory peak
    plot_history(history, "curves.png"); plot_histories({"a": h1, "b": h2}, "compare.png")
    plot_filters(w, "filters.png"); plot_affine_weights(w, (1, 28, 28), "fc1.png")
    plot_feature_maps(feature_maps(plan, x, "conv1"), "maps.png", image=x)
profile_plan(plan, x, y) times every step for render_plan(timings=...).
"""
from dagnet.viz.autodiff import render_autodiff
from dagnet.viz.fold import Repeat, find_repeats
from dagnet.viz.graph import render_graph, save
from dagnet.viz.memory import live_bytes, plot_memory
from dagnet.viz.passes import diff, film_strip, pass_frames
from dagnet.viz.plan import render_plan
from dagnet.viz.grids import feature_maps, plot_affine_weights, plot_feature_maps, plot_filters
from dagnet.viz.plots import plot_histories, plot_history, save_figure
from dagnet.viz.profile import profile_plan

__all__ = [
    "Repeat", "diff", "feature_maps", "film_strip", "find_repeats", "live_bytes", "pass_frames",
    "plot_affine_weights", "plot_feature_maps", "plot_filters", "plot_histories", "plot_history",
    "plot_memory", "profile_plan",
    "render_autodiff", "render_graph", "render_plan", "save", "save_figure",
]
