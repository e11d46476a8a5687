// The picture of one view (declared graph or compiled plan): which boxes are visible given the
// collapsed groups, what each box says, the layout, and the SVG markup.
//
//   const g = visibleGraph(ctx);  const lay = layoutGraph(g.items, g.edges, g.clusters);
//   scene.innerHTML = drawGraph(g, lay, ctx)
// ctx: {view, nodes, byName, groups (Map), inner (node -> innermost group), collapsed (Set),
//       plan (or null), stepOf (member -> step), stepByName, timings, backward (bool), heat (bool)}

const TITLE = 12, LINE = 10, TITLE_H = 16, LINE_H = 13, PADX = 8, PADY = 5;

function boxSize(title, lines, marks) {
  const markW = (marks || []).reduce((s, m) => s + textWidth(m.text, TITLE, true) + 4, 0);
  let w = textWidth(title, TITLE, true) + markW;
  for (const l of lines) w = Math.max(w, textWidth(l.text, LINE, false));
  return {w: Math.max(46, Math.ceil(w) + 2 * PADX), h: 2 * PADY + TITLE_H + LINE_H * lines.length};
}

// Index of one view's groups: the innermost (deepest nested) group of every node.
function indexGroups(groups) {
  const byId = new Map(groups.map(g => [g.id, g]));
  const depth = new Map();
  const depthOf = id => {
    if (!depth.has(id)) depth.set(id, byId.get(id).parent ? depthOf(byId.get(id).parent) + 1 : 0);
    return depth.get(id);
  };
  const inner = new Map();
  for (const g of groups) {
    if (g.edges_only) continue;
    for (const m of g.members) {
      const cur = inner.get(m);
      if (!cur || depthOf(cur) < depthOf(g.id)) inner.set(m, g.id);
    }
  }
  return {byId, inner};
}

function ancestors(ctx, groupId) {
  const out = [];
  for (let c = groupId; c; c = ctx.groups.get(c).parent) out.push(c);
  return out;
}

function repOf(ctx, name) {
  let top = null;
  for (let c = ctx.inner.get(name); c; c = ctx.groups.get(c).parent) if (ctx.collapsed.has(c)) top = c;
  return top ? "g:" + top : "n:" + name;
}

function visibleGraph(ctx) {
  const items = [], edges = [], clusters = {}, seen = new Set(), seenEdge = new Set();
  const rep = new Map();
  for (const n of ctx.nodes) rep.set(n.name, repOf(ctx, n.name));
  const groupOpen = id => ancestors(ctx, id).every(c => !ctx.collapsed.has(c));
  for (const g of ctx.groups.values()) {
    if (g.edges_only || !groupOpen(g.id)) continue;
    const label = [{text: g.label, bold: true}].concat(g.kind === "miss" || g.kind === "run" ? g.lines.map(t => ({text: t})) : g.lines.slice(0, 1).map(t => ({text: t})));
    const head = TITLE_H + LINE_H * (label.length - 1) + 2;
    // only the title widens the box: a wider box would cover its neighbours (lines are cut to fit)
    const minWidth = textWidth(label[0].text, 11, true) + 2 * PADX + 14;
    clusters["c:" + g.id] = {parent: g.parent ? "c:" + g.parent : null, head, minWidth, group: g, label};
  }
  for (const n of ctx.nodes) {
    const r = rep.get(n.name);
    if (seen.has(r)) continue;
    seen.add(r);
    if (r.startsWith("n:")) {
      const inner = ctx.inner.get(n.name);
      items.push(Object.assign(nodeBox(ctx, n), {id: r, cluster: inner ? "c:" + inner : null, name: n.name}));
    } else {
      const g = ctx.groups.get(r.slice(2));
      items.push(Object.assign(groupBox(ctx, g), {id: r, cluster: g.parent ? "c:" + g.parent : null, group: g.id}));
    }
  }
  const misses = missEdges(ctx);
  for (const n of ctx.nodes) {
    n.inputs.forEach(u => {
      if (!rep.has(u)) return;  // a param: drawn inside its op
      const a = rep.get(u), b = rep.get(n.name), key = a + ">" + b;
      if (a === b || seenEdge.has(key)) return;
      seenEdge.add(key);
      edges.push({from: a, to: b, value: u, miss: misses.get(u + ">" + n.name) || null,
                  inner: isInner(ctx, u, n.name)});
    });
  }
  if (ctx.view === "plan" && ctx.backward && ctx.plan.mode === "train") addBackward(ctx, rep, items, edges);
  return {items, edges, clusters};
}

// A value passed inside one fused kernel is never stored: its edge is drawn dashed.
function isInner(ctx, u, v) {
  if (ctx.view !== "plan") return false;
  const a = ctx.stepOf.get(u), b = ctx.stepOf.get(v);
  return !!a && a === b && !!a.pattern;
}

function missEdges(ctx) {
  const out = new Map();
  if (ctx.view !== "plan") return out;
  for (const g of ctx.groups.values()) {
    if (!g.edges_only) continue;
    const nm = ctx.plan.near_misses[g.miss];
    for (let i = 1; i < nm.nodes.length; i++) out.set(nm.nodes[i - 1] + ">" + nm.nodes[i], nm);
  }
  return out;
}

function nodeBox(ctx, n) {
  const lines = [];
  const marks = [];
  let fill = null, klass = "fam-" + n.family;
  if (n.op === "input") lines.push({text: `input · ${n.attrs.dtype}`});
  else {
    lines.push({text: n.op});
    for (const t of wrapText(attrText(n.attrs), 40)) if (t) lines.push({text: t});
  }
  lines.push({text: shapeText(n.shape)});
  if (n.params) lines.push({text: `${countText(n.params)} params`});
  if (ctx.view === "plan") {
    const step = ctx.stepOf.get(n.name);
    if (ctx.pruned.has(n.name)) { klass += " pruned"; lines.push({text: "pruned: no output needs it"}); }
    if (step && !step.pattern) marks.push({text: `#${step.index}`, color: ctx.styles.step});
    if (step && step.inplace) marks.push({text: "↺", color: ctx.styles.inplace});
    if (step && !step.pattern && ctx.timings) {
      const t = ctx.timings.steps[step.name];
      lines.push({text: timeLine(t), color: "#7a2b0c"});
      if (ctx.heat) fill = t.heat;
    }
  }
  return Object.assign(boxSize(n.name, lines, marks), {kind: "node", title: n.name, lines, marks, fill, klass});
}

function timeLine(t) {
  if (!t) return "not timed";
  const parts = [];
  if (t.forward) parts.push(`fwd ${secondsText(t.forward)}`);
  if (t.backward) parts.push(`bwd ${secondsText(t.backward)}`);
  return parts.join(" · ") || "not timed";
}

function groupBox(ctx, g) {
  const lines = [], marks = [];
  let fill = null, klass = "group kind-" + g.kind;
  if (g.kind === "fused") {
    const step = ctx.plan.steps[g.step];
    marks.push({text: `#${step.index}`, color: ctx.styles.step});
    lines.push({text: step.pattern});
    if (step.kernel) lines.push({text: step.kernel});
    lines.push({text: shapeText(step.shape)});
    if (step.params) lines.push({text: `${countText(step.params)} params`});
    if (ctx.timings) {
      const t = ctx.timings.steps[step.name];
      lines.push({text: timeLine(t), color: "#7a2b0c"});
      if (ctx.heat) fill = t.heat;
    }
    const title = fitText(step.name, TITLE, 360);  // imported models' names are long
    return Object.assign(widen(boxSize(title, lines, marks)), {kind: "group", title, lines, marks, fill, klass: klass + " fam-fused"});
  }
  for (const t of g.lines) lines.push({text: t});
  return Object.assign(widen(boxSize(g.label, lines, marks)), {kind: "group", title: g.label, lines, marks, fill, klass, stack: true});
}

function widen(size) { size.w += 16; return size; }  // room for the ⊞ in the corner

// One ∇ box per backward step beside its forward box (folded runs share one), gradient edges.
function addBackward(ctx, rep, items, edges) {
  const plan = ctx.plan, byName = ctx.stepByName;
  const gradOf = step => "b:" + rep.get(step.members[step.members.length - 1]);
  const made = new Map(), seen = new Set();
  for (const name of plan.backward.order) {
    const step = byName.get(name), id = gradOf(step);
    if (!made.has(id)) {
      const host = id.slice(2);
      made.set(id, {id, host, kind: "grad", steps: [], cluster: null});
      items.push(made.get(id));
    }
    made.get(id).steps.push(step);
  }
  for (const item of made.values()) {
    const steps = item.steps, lines = [], marks = [];
    let title;
    if (steps.length === 1) {
      const s = steps[0];
      title = `∇ ${s.name}`;
      lines.push({text: `${s.op} backward`});
      if (plan.backward.seeds.includes(s.name)) lines.push({text: "seed: d loss = 1"});
      if (plan.backward.fan_in[s.name]) lines.push({text: `sums ${plan.backward.fan_in[s.name]} incoming gradients`});
      const params = s.grads.filter(p => ctx.params[p]);
      if (params.length) for (const t of wrapText("→ grads of " + params.join(", "), 44)) lines.push({text: t});
      for (const p of s.skips) lines.push({text: `skips d${p} (nothing needs it)`});
      marks.push({text: `#${plan.backward.order.indexOf(s.name)}`, color: ctx.styles.gradient});
    } else {
      title = `∇ ${steps.length} steps`;
      lines.push({text: `backward of ${steps[steps.length - 1].name} … ${steps[0].name}`});
    }
    let fill = null;
    if (ctx.timings) {
      const spent = steps.reduce((s, st) => s + ctx.timings.steps[st.name].backward, 0);
      lines.push({text: secondsText(spent), color: "#7a2b0c"});
      if (ctx.heat && steps.length === 1) fill = ctx.timings.steps[steps[0].name].heat_backward;
    }
    Object.assign(item, boxSize(title, lines, marks), {title, lines, marks, fill, klass: "grad fam-backward"});
  }
  for (const name of plan.backward.order) {
    const s = byName.get(name), to = gradOf(s);
    for (const p of s.grads) {
      if (!byName.has(p)) continue;
      const from = gradOf(byName.get(p)), key = from + ">" + to;
      if (from === to || seen.has(key)) continue;
      seen.add(key);
      edges.push({from, to, grad: true});
    }
    if (plan.backward.seeds.includes(name)) edges.push({from: to.slice(2), to, seed: true});
  }
}

// Whether a box (centre x, y, size w, h) meets the window {x0, y0, x1, y1}.
function meets(p, win) {
  return !win || (p.x + p.w / 2 >= win.x0 && p.x - p.w / 2 <= win.x1 && p.y + p.h / 2 >= win.y0 && p.y - p.h / 2 <= win.y1);
}

function edgeMeets(points, win) {
  if (!win) return true;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const q of points) { x0 = Math.min(x0, q.x); x1 = Math.max(x1, q.x); y0 = Math.min(y0, q.y); y1 = Math.max(y1, q.y); }
  return x1 >= win.x0 && x0 <= win.x1 && y1 >= win.y0 && y0 <= win.y1;
}

// The SVG markup of a laid-out view: only what meets the window `win` (the screen and a margin
// around it; all when null), and without text when it is zoomed out too far to read (win.low).
function drawGraph(g, lay, ctx, win) {
  const st = ctx.styles, parts = [], heads = [], low = win && win.low;
  const clusterIds = [...lay.clusters.keys()].filter(id => meets(lay.clusters.get(id), win))
    .sort((a, b) => chainDepth(g.clusters, a) - chainDepth(g.clusters, b));
  for (const id of clusterIds) {
    const box = lay.clusters.get(id), cl = g.clusters[id], grp = cl.group;
    const look = st.clusters[grp.kind];
    const x = box.x - box.w / 2, y = box.y - box.h / 2;
    const dash = look.dashed ? ' stroke-dasharray="6,4"' : look.dotted ? ' stroke-dasharray="2,3"' : "";
    const fill = ctx.heat && ctx.timings && grp.kind === "fused" ? ctx.timings.steps[ctx.plan.steps[grp.step].name].heat : look.fill;
    parts.push(`<g class="cluster kind-${grp.kind}" data-id="${esc(id)}"><rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${box.w.toFixed(1)}" height="${box.h.toFixed(1)}" rx="8" fill="${fill}" stroke="${look.stroke}" stroke-width="${look.bold ? 1.6 : 1.1}"${dash}/></g>`);
    if (low) continue;
    // headers go above the edges (drawn later): an edge into the box passes behind its title
    const head = [`<g class="chead" data-cluster="${esc(id)}"${grp.collapsible ? ' data-toggle="1"' : ""}>`];
    const texts = cl.label.map((l, i) => i ? fitText(l.text, LINE, box.w - 14) : (grp.collapsible ? "⊟ " : "") + l.text);
    const wide = Math.min(box.w - 4, Math.max(...texts.map((t, i) => textWidth(t, i ? LINE : 11, !i))) + 12);
    head.push(`<rect x="${(x + 2).toFixed(1)}" y="${(y + 2).toFixed(1)}" width="${wide.toFixed(1)}" height="${cl.head}" rx="6" fill="${fill}" opacity="0.9"/>`);
    let ty = y + 14;
    texts.forEach((text, i) => {
      head.push(`<text x="${(x + 8).toFixed(1)}" y="${ty.toFixed(1)}" class="${i ? "cline" : "ctitle"}" fill="${i ? "#555" : look.text}">${esc(text)}</text>`);
      ty += i ? LINE_H : TITLE_H - 2;
    });
    heads.push(head.join("") + "</g>");
  }
  for (const e of lay.edges) if (edgeMeets(e.points, win)) parts.push(edgeMarkup(e, ctx));
  for (const e of g.edges.filter(e => e.seed)) {
    const a = lay.items.get(e.from), b = lay.items.get(e.to);
    if (!a || !b) continue;
    parts.push(`<path class="edge seed" d="M${(a.x + a.w / 2).toFixed(1)},${a.y.toFixed(1)}L${(b.x - b.w / 2).toFixed(1)},${b.y.toFixed(1)}" stroke="${st.gradient}" stroke-dasharray="2,3" marker-end="url(#arrow-grad)"/>`);
  }
  parts.push(...heads);
  for (const it of g.items) {
    const p = lay.items.get(it.id);
    if (p && meets(p, win)) parts.push(boxMarkup(it, p, ctx, low));
  }
  return parts.join("");
}

// The text cut (with …) to fit a width in pixels.
function fitText(text, size, width) {
  if (textWidth(text, size, false) <= width) return text;
  let lo = 0, hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (textWidth(text.slice(0, mid) + "…", size, false) <= width) lo = mid; else hi = mid - 1;
  }
  return lo ? text.slice(0, lo) + "…" : "";
}

function chainDepth(clusters, id) {
  let d = 0;
  for (let c = id; c && clusters[c]; c = clusters[c].parent) d++;
  return d;
}

function edgeMarkup(e, ctx) {
  const st = ctx.styles, src = e.edge;
  let cls = "edge", attrs = `stroke="${st.edge}"`, marker = "arrow";
  if (src.grad) { cls += " grad"; attrs = `stroke="${st.gradient}"`; marker = null; }
  if (src.inner) { cls += " inner"; attrs = `stroke="#A09ACC" stroke-dasharray="4,3"`; }
  if (src.miss) { cls += " miss"; attrs = `stroke="${st.clusters.miss.stroke}" stroke-dasharray="6,4" stroke-width="1.6"`; }
  if (ctx.pruned && (ctx.pruned.has(src.value) || ctx.pruned.has(nameOf(src.to)))) { cls += " pruned"; attrs = `stroke="#BBBBBB" stroke-dasharray="4,3"`; }
  const ends = marker ? ` marker-end="url(#${marker})"` : ' marker-start="url(#arrow-grad-start)"';
  const title = src.miss ? `<title>✗ ${esc(src.miss.pattern)}: ${esc(src.miss.reason)}</title>` : "";
  return `<path class="${cls}" data-from="${esc(src.from)}" data-to="${esc(src.to)}" d="${edgePath(e.points)}" ${attrs}${ends}>${title}</path>`;
}

function nameOf(id) { return id && id.startsWith("n:") ? id.slice(2) : null; }

function boxMarkup(it, p, ctx, low) {
  const st = ctx.styles;
  const fam = it.kind === "grad" ? st.families.backward
    : it.kind === "group" ? (it.stack ? st.clusters.folded : st.families.fused)
    : st.families[(it.klass.match(/fam-(\w+)/) || [])[1]] || st.families.op;
  const pruned = it.klass.includes("pruned");
  const look = pruned ? st.pruned : fam;
  const x = p.x - p.w / 2, y = p.y - p.h / 2;
  const fill = it.fill || look.fill;
  const dash = look.dashed ? ' stroke-dasharray="5,3"' : "";
  const out = [`<g class="box ${it.klass}" data-id="${esc(it.id)}" transform="translate(${x.toFixed(1)},${y.toFixed(1)})">`];
  if (it.stack) out.push(`<rect x="5" y="-5" width="${p.w}" height="${p.h}" rx="3" fill="${fill}" stroke="${look.stroke}" opacity="0.7"/>`);
  out.push(`<rect class="frame" width="${p.w}" height="${p.h}" rx="${it.kind === "group" && !it.stack ? 8 : 5}" fill="${fill}" stroke="${look.stroke}" stroke-width="${look.bold || it.kind === "group" ? 1.8 : 1.2}"${dash}/>`);
  if (low) return out.join("") + "</g>";
  let tx = PADX;
  for (const m of it.marks) {
    out.push(`<text x="${tx.toFixed(1)}" y="${PADY + 12}" class="title" fill="${m.color}">${esc(m.text)}</text>`);
    tx += textWidth(m.text, TITLE, true) + 4;
  }
  if (it.kind === "group") out.push(`<text x="${(p.w - 14).toFixed(1)}" y="${PADY + 11}" class="toggle">⊞</text>`);
  out.push(`<text x="${tx.toFixed(1)}" y="${PADY + 12}" class="title"${pruned ? ' fill="#999"' : ""}>${esc(it.title)}</text>`);
  it.lines.forEach((l, i) => {
    out.push(`<text x="${PADX}" y="${PADY + TITLE_H + LINE_H * i + 9}" class="line"${l.color ? ` fill="${l.color}"` : ""}>${esc(l.text)}</text>`);
  });
  out.push("</g>");
  return out.join("");
}
