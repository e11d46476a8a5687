"""The per-layer summary of a big graph, folded: layers grouped by their dotted name prefix
(stage2.block3.conv1 belongs to stage2 and stage2.block3), a total row per group, and runs of
repeated blocks (viz.fold.find_repeats) after their first block as one row `k like ...`.

    print(folded_summary(resnet50(), depth=2))
    stage2                          4 blocks, 43 ops      (512, 28, 28)   1,219,584 ...
      stage2.block1                 13 ops                (512, 28, 28)     379,392 ...
      stage2.block2 … block4        3 like stage2.block1  (512, 28, 28)     ...

depth: how many name levels to show (1: one row per stage); None, or a depth at least the
deepest name, lists every layer unfolded (dagnet.summary.summary_table). Graphs without dotted
names (imported ones) have one level: their repeated runs fold all the same.
"""
from __future__ import annotations

import os

from dagnet.graph import CONSTANT, INPUT, Graph
from dagnet.summary import summary_rows, summary_table
from dagnet.viz.fold import find_repeats
from dagnet.viz.graph import AUTO_FOLD_OPS, annotated

HEAD = ("layer", "op / contents", "output (C, H, W) / units", "params", "connections")


def default_depth(graph: Graph) -> int | None:
    """For graphs of more than AUTO_FOLD_OPS ops (the diagrams fold those too): 2 (stages and
    their blocks), or 1 where names have two levels (fire2.squeeze); else None (every layer)."""
    ops = [n.name for n in graph if n.op not in (INPUT, "param")]
    if len(ops) <= AUTO_FOLD_OPS:
        return None
    deepest = max(len(name.split(".")) for name in ops)
    return max(1, min(2, deepest - 1))


def folded_summary(graph: Graph, depth: int | None = 2) -> str:
    """The summary table with layers grouped to `depth` name levels and repeated blocks folded;
    depth None or at least the deepest name level: every layer (summary_table)."""
    g = annotated(graph)
    rows = summary_rows(g)
    deepest = max(len(r["name"].split(".")) for r in rows)
    if depth is None or depth >= deepest > 1:
        return summary_table(g)  # (undotted names, e.g. imported: one level, runs still fold)
    folded = _folded_runs(g)
    body, open_groups = [], {}
    for r in rows:
        run = folded.get(r["name"])
        if run is not None and run["level"] <= depth:
            key = ("run", run["label"])
            level, name, what = run["level"], run["label"], run["what"]
        else:
            parts = r["name"].split(".")
            level = min(depth, len(parts))
            name = ".".join(parts[:level])
            key = ("group", name)
            what = INPUT if r["op"] == INPUT else None
        # every enclosing group above the row's level gets (or keeps) its total row
        parts = name.split(".")
        for k in range(1, min(level, len(parts))):
            _add(body, open_groups, ("group", ".".join(parts[:k])), ".".join(parts[:k]), k, r, None)
        _add(body, open_groups, key, name, level, r, what)
    body = _fold_alike(body, depth)
    lines = [(("  " * (e["level"] - 1)) + e["name"], _contents(e), str(e["shape"]),
              f"{e['params']:,}", f"{e['connections']:,}") for e in body]
    total = ("total", f"{sum(1 for r in rows if r['op'] != INPUT)} ops", "",
             f"{sum(r['params'] for r in rows):,}", f"{sum(r['connections'] for r in rows):,}")
    table = [HEAD] + lines + [total]
    widths = [max(len(t[i]) for t in table) for i in range(len(HEAD))]
    text = ["  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                      for i, (c, w) in enumerate(zip(t, widths))).rstrip() for t in table]
    text.insert(1, "-" * len(text[0]))
    text.insert(len(text) - 1, "-" * len(text[0]))
    note = (f"{graph.name}: grouped to depth {depth}, repeated blocks folded "
            f"(--depth {deepest if deepest > 1 else 'full'} lists every layer)")
    return note + "\n" + "\n".join(text)


def _add(body: list, open_groups: dict, key, name: str, level: int, r: dict, what) -> None:
    """Add layer row r to the entry `key` (the last one of that key, if it is still open)."""
    entry = open_groups.get(key)
    if entry is None or entry is not _last_at(body, level, entry):
        entry = {"name": name, "level": level, "ops": [], "params": 0, "connections": 0,
                 "shape": r["shape"], "what": what}
        body.append(entry)
        open_groups[key] = entry
    if r["op"] != INPUT:
        entry["ops"].append(r["op"])
    entry["params"] += r["params"]
    entry["connections"] += r["connections"]
    entry["shape"] = r["shape"]


def _fold_alike(body: list, depth: int) -> list:
    """Consecutive sibling groups at the deepest level shown that run the same ops (DenseNet's
    dense layers: equal but for their growing channels, so find_repeats keeps them apart)
    after the first as one row, as the runs of identical blocks are."""
    out, i = [], 0
    while i < len(body):
        e, j = body[i], i + 1
        if e["what"] is None and e["level"] == depth and len(e["ops"]) > 1:
            parent = _parent(e["name"])
            while (j < len(body) and body[j]["what"] is None and body[j]["level"] == depth
                   and body[j]["ops"] == e["ops"] and _parent(body[j]["name"]) == parent):
                j += 1
        out.append(e)
        if j - i > 1:
            alike = body[i + 1:j]
            shared = len(parent) + 1 if parent else 0
            label = alike[0]["name"] + (f" … {alike[-1]['name'][shared:]}" if len(alike) > 1
                                        else "")
            many = f"{len(alike)} " if len(alike) > 1 else ""
            out.append({"name": label, "level": depth, "ops": sum((a["ops"] for a in alike), []),
                        "params": sum(a["params"] for a in alike),
                        "connections": sum(a["connections"] for a in alike),
                        "shape": alike[-1]["shape"], "what": f"{many}like {e['name']}"})
        i = j
    return out


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _last_at(body: list, level: int, entry: dict):
    """The entry still open at `level`: the last one at that level or above, if it is `entry`."""
    for e in reversed(body):
        if e["level"] <= level:
            return e
    return None


def _contents(e: dict) -> str:
    if e["what"] is not None:
        return e["what"]
    if len(e["ops"]) == 1:
        return e["ops"][0]
    return f"{len(e['ops'])} ops"


def _folded_runs(g: Graph) -> dict:
    """{op node: its run's fold} for the blocks after the first of every repeated run:
    label 'first … last', what 'x k like FIRST', and the name level of its blocks."""
    out = {}
    for r in find_repeats(g):
        prefixes = r.prefixes
        if not all(prefixes):
            names = [b[0] for b in r.blocks]  # unnamed blocks: name them by their first op
            prefixes = names
        label = prefixes[1]
        if r.count > 2:
            shared = os.path.commonprefix([prefixes[1] + ".", prefixes[-1] + "."])
            shared = shared[:shared.rfind(".") + 1]  # whole name levels only
            label += f" … {prefixes[-1][len(shared):]}"
        many = f"{r.count - 1} " if r.count > 2 else ""
        fold = {"label": label, "what": f"{many}like {prefixes[0]}",
                "level": len(prefixes[0].split("."))}
        for b in r.blocks[1:]:
            for v in b:
                out[v] = fold
                # a block's constants (attention's 1/sqrt(d)) are rows too: they fold with it
                out.update((s, fold) for s in g.node(v).inputs if g.node(s).op == CONSTANT)
    return out
