"""dagnet.viz.html: the interactive explorer, one self-contained offline HTML page per graph,
plan or training run (no network, no library: scripts, styles and data inline).

    html = explorer_html(plan, timings=plan.profile(x, y))   # or a Graph (compiled for the plan view)
    write_html(html, "plan.html")
    report = explorer_html(plan, run=run_data(history, solver, data_info, evaluation))

Views: the declared graph and the compiled plan (pan, zoom, search; fused groups and folded runs
fold and unfold on click; details of every node and step; per-step time as heat), the memory
chart linked to the plan, the compiler passes on a slider, and for a run its curves, recipe and
metrics. Graph and ExecutionPlan show it in notebooks (`_repr_html_`, see notebook.py).
"""
from dagnet.viz.html.explorer import explorer_data, explorer_html, write_html
from dagnet.viz.html.notebook import notebook_html
from dagnet.viz.html.run import run_data

__all__ = ["explorer_data", "explorer_html", "notebook_html", "run_data", "write_html"]
