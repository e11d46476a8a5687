"""Draw a declared Graph as a graphviz diagram, and the drawing helpers that the plan, diff and
film-strip pictures share (labels, nested clusters, writing files).

    dot = render_graph(g, "lenet.svg")      # a graphviz.Digraph; dot.source is the DOT text
"""
from __future__ import annotations

import html
import os
import textwrap
from dataclasses import dataclass, field

import graphviz

from dagnet.errors import DagnetError
from dagnet.graph import CONSTANT, INPUT, LEAVES, PARAM, Graph
from dagnet.ops import get_op
from dagnet.compiler.shapes import infer_shapes
from dagnet.viz import style
from dagnet.viz.fold import Repeat, find_repeats

AUTO_FOLD_OPS = 60  # blocks="auto" folds repeated blocks of graphs with more op nodes than this
RASTER = ("png", "jpg", "jpeg", "gif", "bmp")
NO_DOT = ("rendering {fmt} needs Graphviz's `dot` program, which is not installed or not on PATH: "
          "install it (apt-get install graphviz; brew install graphviz; conda install graphviz), "
          "or pass format='dot' to write the DOT source instead")


# -- text ---------------------------------------------------------------------------------------
def node_id(name: str) -> str:
    """A graphviz node id for a node name (':' would be read as a port separator)."""
    return name.replace("%", "%25").replace(":", "%3A")


def esc(text) -> str:
    """Text escaped for graphviz HTML-like labels."""
    return html.escape(str(text), quote=True)


def box_label(title: str, lines=(), marks=()) -> str:
    """An HTML-like label: colored bold marks (e.g. '#3'), the bold title, then small lines
    (text, or (text, color) for a highlighted line)."""
    head = "".join(f'<font color="{color}"><b>{esc(text)}</b></font> ' for text, color in marks)
    rows = [head + f"<b>{esc(title)}</b>"]
    for line in lines:
        text, color = line if isinstance(line, tuple) else (line, "#444444")
        rows.append(f'<font point-size="9" color="{color}">{esc(text)}</font>')
    return "<" + "<br/>".join(rows) + ">"


def text_label(text: str) -> str:
    """A user's plain label text (from a `label=fn(node)` hook) as an escaped HTML-like label."""
    return "<" + "<br/>".join(esc(line) for line in str(text).split("\n")) + ">"


def wrap(text: str, width: int = 44) -> list[str]:
    """Text as lines of at most `width` characters (at least one line)."""
    return textwrap.wrap(text, width) or [""]


def annotated(graph: Graph) -> Graph:
    """The graph with meta shape/params on every node (shapes inferred when missing)."""
    if all("params" in n.meta and "shape" in n.meta for n in graph):
        return graph
    return infer_shapes(graph)


def port_name(node, port: int) -> str:
    """The op's name for an input port ('w' for a conv's port 1); variadic ops repeat the last."""
    names = get_op(node.op, node.name).input_names
    return names[min(port, len(names) - 1)]


def folded_params(graph: Graph) -> set[str]:
    """Params with one consumer (drawn inside it); a shared param stays a node of its own,
    since folding it would hide the sharing."""
    users = graph.consumer_map()
    return {n.name for n in graph
            if n.op == PARAM and len({u for u, _ in users.get(n.name, [])}) == 1}


def describe(node, graph: Graph, show_shapes=True, show_params=True, hidden=()) -> list[str]:
    """The lines under a node's name: op and attrs, output shape, params (with the shapes of
    params in `hidden`, i.e. folded into this op)."""
    if node.op in LEAVES:
        kind = (node.attrs.get("dtype") if node.op == INPUT else node.attrs.get("init")
                if node.op == PARAM else _value_text(node.attrs["value"]))
        lines = [f"{node.op} · {kind}"]
    else:
        lines = [node.op] + _attrs_lines(node.attrs)
    if show_shapes and "shape" in node.meta:
        lines.append(style.value_shape_text(node))
    if show_params and node.op != PARAM and node.meta.get("params"):
        folded = [f"{port_name(node, p)} {style.shape_text(graph.node(s).meta['shape'])}"
                  for p, s in enumerate(node.inputs) if s in hidden]
        lines.append(f"{style.count_text(node.meta['params'])} params"
                     + (f" ({', '.join(folded)})" if folded else ""))
    return lines


def _value_text(value) -> str:
    """A constant's value, short: the number itself, or its first numbers."""
    flat = str(value).replace(" ", "")
    return flat if len(flat) <= 18 else flat[:15] + "..."


def _attrs_lines(attrs: dict) -> list[str]:
    parts = []
    for k, v in attrs.items():
        if k == "members":  # a fused node: its op name already lists the chain
            continue
        if isinstance(v, bool):
            if v:
                parts.append(k)
            continue
        parts.append(f"{k} {'×'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}")
    return wrap(", ".join(parts)) if parts else []


def tooltip(node) -> str:
    """'name: op (attrs)', shown on hover in SVG viewers."""
    attrs = ", ".join(f"{k}={v}" for k, v in node.attrs.items() if k != "members")
    return f"{node.name}: {node.op}" + (f" ({attrs})" if attrs else "")


def node_attrs(node, lines, marks=(), label=None, **overrides) -> dict:
    """Graphviz attributes of one node box: its family's style (with overrides), a label of
    its name, marks and lines (or the hook's `label(node)` text), a tooltip."""
    attrs = {**style.style_of(node), **overrides}
    attrs["label"] = text_label(label(node)) if label else box_label(node.name, lines, marks)
    attrs["tooltip"] = tooltip(node)
    return attrs


def edge_attrs(src, show_shapes=True) -> dict:
    """An edge from value `src`: labelled with its shape; param edges thin and unlabelled."""
    if src.op == PARAM:
        return dict(style.PARAM_EDGE)
    if show_shapes and "shape" in src.meta:
        return {"label": " " + style.value_shape_text(src)}
    return {}


# -- layout -------------------------------------------------------------------------------------
@dataclass
class Cluster:
    """A box drawn around some node ids; clusters nest when one's members contain another's."""

    key: str
    members: set
    attrs: dict = field(default_factory=dict)


def nest(clusters) -> tuple[dict, list]:
    """({key: parent key or None}, clusters that partly overlap others and cannot be drawn).

    Graphviz clusters must form a tree; bigger sets are placed first, so every accepted
    cluster's parent is the smallest accepted cluster that contains it."""
    parents, placed, rejected = {}, [], []
    for c in sorted(clusters, key=lambda c: -len(c.members)):
        hits = [p for p in placed if p.members & c.members]
        if any(not c.members <= p.members for p in hits):
            rejected.append(c)
            continue
        parents[c.key] = min(hits, key=lambda p: len(p.members)).key if hits else None
        placed.append(c)
    return parents, rejected


def emit(name: str, title: str, rankdir: str, nodes: dict, edges, clusters=(), same_rank=()) -> graphviz.Digraph:
    """A Digraph from {id: attrs} nodes, (tail, head, attrs) edges, nested clusters and groups
    of ids to put side by side (same rank)."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise DagnetError(f"rankdir must be 'TB' or 'LR' (or 'BT', 'RL'), got {rankdir!r}")
    clusters = {c.key: c for c in clusters}
    parents, rejected = nest(clusters.values())
    if rejected:
        raise DagnetError(f"clusters {[c.key for c in rejected]} overlap others partly")
    dot = graphviz.Digraph(
        name,
        graph_attr={"rankdir": rankdir, "fontname": style.FONT, "fontsize": "13", "labelloc": "t",
                    "nodesep": "0.3", "ranksep": "0.35", "newrank": "true", "pad": "0.25"},
        node_attr={"fontname": style.FONT, "fontsize": "11", "margin": "0.14,0.06", "penwidth": "1.2"},
        edge_attr={"fontname": style.FONT, **style.EDGE})
    owner = {}
    for key in sorted(clusters, key=lambda k: -len(clusters[k].members)):
        owner.update({nid: key for nid in clusters[key].members})  # smallest cluster wins
    children: dict = {}
    for key, parent in parents.items():
        children.setdefault(parent, []).append(key)

    def fill(container, key):
        for child in children.get(key, []):
            with container.subgraph(name=f"cluster_{child}") as sub:
                sub.attr(**clusters[child].attrs)
                fill(sub, child)
        for nid, attrs in nodes.items():
            if owner.get(nid) == key:
                container.node(nid, **attrs)

    fill(dot, None)
    boxes = {nid: _boxes(owner.get(nid), parents) for nid in nodes}
    clipped = False
    for tail, head, attrs in edges:
        # an edge into a titled box ends at the box: drawn on to the node inside, it would run
        # through the title, which graphviz puts at the top, where edges come in
        into = [k for k in boxes.get(head, []) if k not in boxes.get(tail, []) and "label" in clusters[k].attrs]
        if into:
            attrs, clipped = {"lhead": f"cluster_{into[-1]}", **attrs}, True
        dot.edge(tail, head, **attrs)
    if clipped:
        dot.attr(compound="true")
    for group in same_rank:
        with dot.subgraph() as sub:
            sub.attr(rank="same")
            for nid in group:
                sub.node(nid)
    # set last: a root label set before the clusters would be inherited by them
    dot.attr(label=title)
    return dot


def _boxes(key, parents) -> list:
    """Cluster `key` and the boxes around it, innermost first ([] for None)."""
    out = []
    while key is not None:
        out.append(key)
        key = parents[key]
    return out


def title_label(title: str, subtitle: str = "") -> str:
    sub = f'<br/><font point-size="10" color="#555555">{esc(subtitle)}</font>' if subtitle else ""
    return f"<<b>{esc(title)}</b>{sub}>"


def save(dot: graphviz.Digraph, path, format: str | None = None) -> str:
    """Write `dot` to path as format (svg, png, pdf, ... or dot for the DOT source; default:
    the path's suffix, else svg). Returns the path."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DagnetError(f"cannot draw into {path}: it is a folder; give a file name such as "
                          f"{os.path.join(path, 'graph.svg')}")
    fmt = (format or os.path.splitext(path)[1].lstrip(".") or "svg").lower()
    fmt = "dot" if fmt == "gv" else fmt
    if fmt == "dot":
        data = dot.source.encode("utf-8")
    elif fmt not in graphviz.FORMATS:
        raise DagnetError(f"unknown format {fmt!r}: use svg, png, pdf or dot")
    else:
        if fmt in RASTER:
            dot = dot.copy()
            dot.attr(dpi="144")  # graphviz's 96 dpi makes 9-point text blurry
        try:
            data = dot.pipe(format=fmt, quiet=True)
        except graphviz.ExecutableNotFound:
            raise DagnetError(NO_DOT.format(fmt=fmt.upper())) from None
        except graphviz.CalledProcessError as e:
            detail = " ".join((e.stderr or b"").decode(errors="replace").split())[:300]
            raise DagnetError(f"graphviz could not draw {path}: {detail or f'exit {e.returncode}'}") from None
        except OSError as e:  # dot died while reading the graph (a broken pipe): no picture
            raise DagnetError(f"graphviz could not draw {path}: dot stopped ({e.strerror or e}); "
                              f"is a node name or label extremely long?") from None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


# -- the declared graph -------------------------------------------------------------------------
def render_graph(graph: Graph, path=None, format: str | None = None, show_shapes: bool = True,
                 show_params: bool = True, rankdir: str = "TB", collapse_params: bool = True,
                 label=None, blocks: str | None = "auto", title: str | None = None,
                 frozen=()) -> graphviz.Digraph:
    """The declared DAG: one box per op (name, op, output shape, params), edges labelled with
    shapes; written to `path` when given. frozen: params frozen for fine-tuning (their layers
    are drawn cold and dashed, marked ❄).

    collapse_params: draw each param inside its op (shared params stay nodes). label: a hook
    fn(node) -> str for the box text. blocks: "fold" draws runs of repeated blocks as one box
    (`b × 8`), "cluster" boxes them, None leaves them, "auto" folds graphs of more than
    AUTO_FOLD_OPS ops."""
    g = annotated(graph)
    mode = block_mode(g, blocks)
    repeats = find_repeats(g) if mode else []
    run_of = {v: i for i, r in enumerate(repeats) for v in r.nodes} if mode == "fold" else {}
    hidden = folded_params(g) if collapse_params else set()
    users = g.consumer_map()
    # the params and constants (attention's 1/sqrt(d)) that only folded blocks read
    hidden |= {n.name for n in g if n.op in (PARAM, CONSTANT) and users.get(n.name)
               and all(u in run_of for u, _ in users[n.name])}

    def where(name):
        return None if name in hidden else f"block/{run_of[name]}" if name in run_of else node_id(name)

    nodes = {}
    for n in g:
        if n.name in run_of and where(n.name) not in nodes:
            nodes[where(n.name)] = block_attrs(repeats[run_of[n.name]], g, show_shapes, show_params,
                                               frozen)
        elif n.name not in hidden and n.name not in run_of:
            cold = [v for v in n.inputs if v in frozen] if n.op != PARAM else \
                ([n.name] if n.name in frozen else [])
            lines = describe(n, g, show_shapes, show_params, hidden)
            extra = {}
            if cold:
                lines.append((f"frozen: {', '.join(cold)}", style.FROZEN_MARK))
                extra = style.FROZEN
            nodes[node_id(n.name)] = node_attrs(n, lines, [("❄", style.FROZEN_MARK)] if cold else (),
                                                label=label, **extra)
    edges, seen = [], set()
    for n in g:
        for src in n.inputs:
            tail, head = where(src), where(n.name)
            if tail is None or tail == head or (tail, head) in seen:
                continue
            if src in run_of or n.name in run_of:
                seen.add((tail, head))  # one edge in or out of a folded run
            edges.append((tail, head, edge_attrs(g.node(src), show_shapes)))
    clusters = block_clusters(repeats, g, hidden) if mode == "cluster" else []
    total = sum(n.meta["params"] for n in g if n.op == PARAM)
    ops = sum(1 for n in g if n.op not in LEAVES)
    sub = f"{ops} ops · {style.count_text(total)} params"
    if repeats:
        sub += " · " + ", ".join(f"{r.name} × {r.count}" for r in repeats)
    if frozen:
        cold = sum(n.meta["params"] for n in g if n.op == PARAM and n.name in frozen)
        sub += f" · ❄ {style.count_text(cold)} frozen"
    dot = emit(g.name, title_label(title or g.name, sub), rankdir, nodes, edges, clusters)
    if path is not None:
        save(dot, path, format)
    return dot


def block_mode(g: Graph, blocks):
    if blocks not in (None, "auto", "fold", "cluster"):
        raise DagnetError(f"blocks must be None, 'auto', 'fold' or 'cluster', got {blocks!r}")
    if blocks == "auto":
        return "fold" if sum(1 for n in g if n.op not in LEAVES) > AUTO_FOLD_OPS else None
    return blocks


def block_attrs(r: Repeat, g: Graph, show_shapes=True, show_params=True, frozen=()) -> dict:
    """The box of a folded run: `name × count`, block names, the ops of one block, shape, params
    (and whether they are all frozen)."""
    first = r.blocks[0]
    lines = [f"{r.prefixes[0]} … {r.prefixes[-1]}"] if r.prefixes[0] else []
    lines += wrap(f"{len(first)} ops each: " + " → ".join(g.node(v).op for v in first))
    if show_shapes:
        lines.append(style.shape_text(g.node(r.nodes[-1]).meta["shape"]))
    if show_params:
        lines.append(f"{style.count_text(sum(g.node(v).meta['params'] for v in r.nodes))} params in all")
    params = {v for u in r.nodes for v in g.node(u).inputs if g.node(v).op == PARAM}
    cold = bool(params) and params <= set(frozen)
    if cold:
        lines.append(("frozen: no gradient", style.FROZEN_MARK))
    attrs = {**style.BLOCK_NODE, "label": box_label(f"{r.name} × {r.count}", lines),
             "tooltip": ", ".join(r.nodes)}
    if cold:
        attrs.update({k: style.FROZEN[k] for k in ("color", "penwidth")})
    return attrs


def block_clusters(repeats, g: Graph, hidden=()) -> list[Cluster]:
    """A dotted box around each repeated block (and its own params), inside one per run."""
    users = g.consumer_map()
    out = []
    for i, r in enumerate(repeats):
        for k, (block, prefix) in enumerate(zip(r.blocks, r.prefixes)):
            inside = set(block)
            params = {n.name for n in g if n.op == PARAM and n.name not in hidden
                      and users.get(n.name) and all(u in inside for u, _ in users[n.name])}
            out.append(Cluster(f"block{i}_{k}", {node_id(v) for v in inside | params},
                               {**style.BLOCK_CLUSTER, "label": f"{prefix or r.name} ({k + 1}/{r.count})",
                                "fontsize": "10", "fontcolor": "#666666"}))
        members = set().union(*(c.members for c in out[-r.count:]))
        out.append(Cluster(f"run{i}", members, {**style.BLOCK_CLUSTER, "style": "rounded",
                                                 "bgcolor": "#FFFFFF", "fontcolor": "#444444",
                                                 "label": f"{r.name} × {r.count}"}))
    return out
