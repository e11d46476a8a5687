"""Graph and ExecutionPlan in notebooks: a summary table (what a text-only viewer such as
GitHub's also shows) beside the explorer, embedded in a sandboxed iframe so that its scripts
and styles never touch the notebook's.

    Graph._repr_html_ = lambda g: notebook_html(g)      (wired in dagnet/__init__.py)
"""
from __future__ import annotations

import html

from dagnet.graph import LEAVES, PARAM
from dagnet.viz import style
from dagnet.viz.html.explorer import explorer_html

HEIGHT = 640  # px: the explorer's frame in the notebook


def notebook_html(obj) -> str:
    """The summary table and the explorer side by side (they wrap on a narrow page)."""
    frame = (f'<iframe srcdoc="{html.escape(explorer_html(obj), quote=True)}" sandbox="allow-scripts" '
             f'title="dagnet explorer" style="width:100%;height:{HEIGHT}px;border:1px solid #ddd;'
             f'border-radius:4px"></iframe>')
    return ('<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">'
            f'<div style="flex:0 1 auto;max-height:{HEIGHT}px;overflow:auto">{summary_table(obj)}</div>'
            f'<div style="flex:1 1 520px;min-width:420px">{frame}</div></div>')


def summary_table(obj) -> str:
    """An HTML table: the plan's steps (op, output, params, MFLOPs, buffer) or the graph's
    layers (op, output, params)."""
    cell = 'style="padding:1px 8px;text-align:{}"'
    if hasattr(obj, "steps"):
        head = ["#", "step", "op", "output", "params", "MFLOPs", "KB/ex"]
        rows = [[str(s.index), s.name, s.op_name, style.shape_text(s.shape), f"{s.params:,}", f"{s.flops / 1e6:.2f}",
                 f"{_bytes(s.shape) * obj.dtype.itemsize / 1024:.1f}"] for s in obj.steps]
        total = sum(int(p.size) for p in obj.params.values())
        foot = (f"{len(obj.steps)} steps, {sum(1 for s in obj.steps if s.fused)} fused, {total:,} params, "
                f"mode {obj.mode}; peak {obj.peak_bytes(1) / 1024:.1f} KB per example")
        name = obj.graph.name
    else:
        from dagnet.viz.graph import annotated

        g = annotated(obj)
        head = ["layer", "op", "output", "params"]
        rows = [[n.name, n.op, style.shape_text(n.meta["shape"]), f"{n.meta.get('params', 0):,}"]
                for n in g if n.op != PARAM]
        ops = sum(1 for n in g if n.op not in LEAVES)
        foot = f"{ops} ops, {sum(n.meta['params'] for n in g if n.op == PARAM):,} params"
        name = g.name
    numeric = {"#", "params", "MFLOPs", "KB/ex"}
    out = [f'<table style="border-collapse:collapse;font-size:12px"><caption style="text-align:left;'
           f'font-weight:bold">{html.escape(name)}</caption><tr>']
    out += [f'<th {cell.format("right" if h in numeric else "left")}>{html.escape(h)}</th>' for h in head]
    out.append("</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f'<td {cell.format("right" if h in numeric else "left")}>{html.escape(v)}</td>'
                                    for h, v in zip(head, r)) + "</tr>")
    out.append(f'<tr><td colspan="{len(head)}" style="padding:4px 8px;color:#555">{html.escape(foot)}</td></tr></table>')
    return "".join(out)


def _bytes(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
