// The compiler's passes as a slider over the film strip: frame 0 is the graph as declared,
// frame k the graph after pass k drawn as a diff against the one before (viz.passes' colors:
// added green, removed red and dashed, changed orange, meta annotated blue).

function filmStrip(deltas) {
  const graphs = [deltas[0].nodes.map(n => Object.assign({}, n))];
  for (const d of deltas.slice(1)) {
    const prev = graphs[graphs.length - 1], byName = new Map(prev.map(n => [n.name, n]));
    const removed = new Set(d.removed), set = new Map(d.set.map(n => [n.name, n]));
    const names = d.order || prev.map(n => n.name).filter(v => !removed.has(v));
    graphs.push(names.map(v => Object.assign({}, set.get(v) || byName.get(v))));
  }
  // frame k: graph k, with what pass k removed still drawn, and each node's status
  return {
    count: deltas.length,
    name: k => deltas[k].pass,
    counts: k => deltas[k].counts || {},
    frame(k) {
      const d = deltas[k], nodes = graphs[k].map(n => Object.assign({}, n, {status: null, meta: null}));
      if (k === 0) return nodes;
      const byName = new Map(nodes.map(n => [n.name, n]));
      for (const n of d.set) byName.get(n.name).status = n.status;
      for (const [v, meta] of Object.entries(d.annotated)) if (byName.has(v)) Object.assign(byName.get(v), {status: "annotated", meta});
      const before = new Map(graphs[k - 1].map(n => [n.name, n]));
      for (const v of d.removed) nodes.push(Object.assign({}, before.get(v), {status: "removed"}));
      return nodes;
    },
    edgesBefore(k) {
      const out = new Set();
      if (k > 0) for (const n of graphs[k - 1]) for (const u of n.inputs) out.add(u + ">" + n.name);
      return out;
    },
  };
}

const MARKS = {added: "+ added", removed: "− removed", changed: "~ changed", annotated: "meta changed"};

function frameGraph(strip, k, families, styles) {
  const nodes = strip.frame(k), names = new Set(nodes.map(n => n.name));
  const before = strip.edgesBefore(k), items = [], edges = [];
  for (const n of nodes) {
    const lines = [{text: n.op}];
    if (n.status) lines.push({text: MARKS[n.status], color: styles.diff[n.status]});
    if (n.meta) for (const key of Object.keys(n.meta).slice(0, 3)) lines.push({text: `${key} = ${n.meta[key]}`, color: styles.diff.annotated});
    const family = families[n.op] || (n.op.includes("+") ? "fused" : "op");
    items.push(Object.assign(boxSize(n.name, lines, []), {id: "f:" + n.name, cluster: null, kind: "frame", title: n.name,
      lines, marks: [], fill: n.status === "removed" ? "#FFFFFF" : null, klass: `fam-${family} st-${n.status || "none"}`,
      frameNode: n, status: n.status}));
  }
  const removed = new Set(nodes.filter(n => n.status === "removed").map(n => n.name)), now = new Set();
  for (const n of nodes) for (const u of n.inputs) {
    if (!names.has(u)) continue;
    const key = u + ">" + n.name;
    const status = removed.has(n.name) || removed.has(u) ? "removed" : k > 0 && !before.has(key) ? "added" : null;
    edges.push({from: "f:" + u, to: "f:" + n.name, value: u, status});
    now.add(key);
  }
  for (const key of before) {  // what the pass cut: e.g. relu3 -> scores, now fc1+relu3 -> scores
    const [u, v] = key.split(">");
    if (!now.has(key) && names.has(u) && names.has(v)) edges.push({from: "f:" + u, to: "f:" + v, value: u, status: "removed"});
  }
  return {items, edges, clusters: {}};
}

function drawFrame(g, lay, styles, win) {
  const parts = [];
  for (const e of lay.edges) {
    if (!edgeMeets(e.points, win)) continue;
    const s = e.edge.status, color = s ? styles.diff[s] : styles.edge;
    parts.push(`<path class="edge" d="${edgePath(e.points)}" stroke="${color}"${s === "removed" ? ' stroke-dasharray="5,3"' : ""}${s ? ' stroke-width="2"' : ""} marker-end="url(#arrow)"/>`);
  }
  for (const it of g.items) {
    const p = lay.items.get(it.id), fam = styles.families[(it.klass.match(/fam-(\w+)/) || [])[1]] || styles.families.op;
    if (!meets(p, win)) continue;
    const x = p.x - p.w / 2, y = p.y - p.h / 2, s = it.status;
    const stroke = s ? styles.diff[s] : fam.stroke, fill = it.fill || fam.fill;
    parts.push(`<g class="box ${it.klass}" data-id="${esc(it.id)}" transform="translate(${x.toFixed(1)},${y.toFixed(1)})">` +
      `<rect class="frame" width="${p.w}" height="${p.h}" rx="5" fill="${fill}" stroke="${stroke}" stroke-width="${s ? 2.6 : 1.2}"${s === "removed" ? ' stroke-dasharray="5,3"' : ""}/>` +
      `<text x="${PADX}" y="${PADY + 12}" class="title"${s === "removed" ? ' fill="#888"' : ""}>${esc(it.title)}</text>` +
      it.lines.map((l, i) => `<text x="${PADX}" y="${PADY + TITLE_H + LINE_H * i + 9}" class="line"${l.color ? ` fill="${l.color}"` : ""}>${esc(l.text)}</text>`).join("") +
      "</g>");
  }
  return parts.join("");
}
