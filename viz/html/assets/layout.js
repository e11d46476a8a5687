// A layered layout of a DAG drawn top to bottom (the Sugiyama scheme that graphviz's dot also
// follows): ranks by longest path, long edges cut into dummy nodes, orders by barycentres kept
// contiguous per cluster, x by weighted isotonic regression (each rank's nodes as near their
// neighbours as the minimum gaps allow), y by rank with room for the clusters' headers.
//
//   layoutGraph(items, edges, clusters) -> {items: Map id -> {x, y, w, h, rank}, edges: [{from,
//     to, points}], clusters: Map id -> {x, y, w, h}, width, height}
// items: [{id, w, h, cluster (innermost cluster id or null), host (id of the item this one
// sits beside, to its right, on the same rank; or null)}]; edges: [{from, to}];
// clusters: {id: {parent, head (header height), minWidth}}. x, y are box centres.

function layoutGraph(items, edges, clusters, options) {
  const opt = Object.assign({nodesep: 22, ranksep: 30, pad: 9, gap: 14, iterations: 8}, options || {});
  const chainOf = new Map();  // cluster id -> [outermost ... itself]
  const chain = c => {
    if (!c || !clusters[c]) return [];
    if (!chainOf.has(c)) chainOf.set(c, chain(clusters[c].parent).concat([c]));
    return chainOf.get(c);
  };
  const byId = new Map(items.map(it => [it.id, it]));
  const hostOf = id => { const it = byId.get(id); return it.host && byId.has(it.host) ? it.host : id; };

  // -- super nodes: an item with the items beside it -------------------------------------------
  const nodes = new Map();
  for (const it of items) {
    if (hostOf(it.id) !== it.id) continue;
    nodes.set(it.id, {id: it.id, items: [it], w: it.w, h: it.h, cluster: it.cluster, up: [], down: [], dummy: false});
  }
  for (const it of items) {
    const host = hostOf(it.id);
    if (host === it.id) continue;
    const n = nodes.get(host);
    it.offset = n.w + opt.gap + opt.pad * chain(n.cluster).length;  // clear of the host's boxes
    n.w = it.offset + it.w;
    n.h = Math.max(n.h, it.h);
    n.items.push(it);
  }
  const links = [];
  for (const e of edges) {
    const a = hostOf(e.from), b = hostOf(e.to);
    if (a !== b && nodes.has(a) && nodes.has(b)) links.push({a, b, edge: e});
  }
  for (const l of links) { nodes.get(l.a).down.push(l.b); nodes.get(l.b).up.push(l.a); }

  // -- ranks: longest path, then sources pulled down next to their first consumer --------------
  const rank = new Map(), order = [];
  const indeg = new Map([...nodes.keys()].map(k => [k, 0]));
  for (const l of links) indeg.set(l.b, indeg.get(l.b) + 1);
  const queue = [...nodes.keys()].filter(k => indeg.get(k) === 0);
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q];
    order.push(v);
    for (const w of nodes.get(v).down) { indeg.set(w, indeg.get(w) - 1); if (indeg.get(w) === 0) queue.push(w); }
  }
  const ordered = new Set(order);
  for (const k of nodes.keys()) if (!ordered.has(k)) order.push(k);  // only on a cycle, never in a DAG
  for (const v of order) {
    let r = 0;
    for (const u of nodes.get(v).up) if (rank.has(u)) r = Math.max(r, rank.get(u) + 1);
    rank.set(v, r);
  }
  for (const v of order) {
    const n = nodes.get(v);
    if (!n.up.length && n.down.length) rank.set(v, Math.min(...n.down.map(w => rank.get(w))) - 1);
  }

  // -- dummies along edges that span several ranks ---------------------------------------------
  const common = (c1, c2) => {
    const a = chain(c1), b = chain(c2);
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i ? a[i - 1] : null;
  };
  for (const n of nodes.values()) { n.up = []; n.down = []; }
  let dummies = 0;
  for (const l of links) {
    const ra = rank.get(l.a), rb = rank.get(l.b);
    l.path = [l.a];
    const cl = common(nodes.get(l.a).cluster, nodes.get(l.b).cluster);
    // between two items that sit beside others (∇ boxes) the edge runs straight down their side
    // column: dummies would be placed among the hosts and pull it across them
    const beside = l.edge.from !== l.a && l.edge.to !== l.b;
    for (let r = ra + 1; r < rb && !beside; r++) {
      const id = `~${dummies++}`;
      nodes.set(id, {id, items: [], w: 4, h: 0, cluster: cl, up: [], down: [], dummy: true});
      rank.set(id, r);
      l.path.push(id);
    }
    l.path.push(l.b);
    for (let i = 1; i < l.path.length; i++) {
      nodes.get(l.path[i - 1]).down.push(l.path[i]);
      nodes.get(l.path[i]).up.push(l.path[i - 1]);
    }
  }

  // -- order within ranks ----------------------------------------------------------------------
  const minRank = Math.min(0, ...rank.values());
  const layers = [];
  const seq = new Map();
  let counter = 0;
  const visit = v => {  // depth-first from the sources: a tree's branches start side by side
    if (seq.has(v)) return;
    seq.set(v, counter++);
    for (const w of nodes.get(v).down) visit(w);
  };
  for (const v of order) if (!nodes.get(v).up.length) visit(v);
  for (const v of nodes.keys()) visit(v);
  for (const [v, r] of rank) (layers[r - minRank] = layers[r - minRank] || []).push(v);
  for (let r = 0; r < layers.length; r++) layers[r] = (layers[r] || []).sort((a, b) => seq.get(a) - seq.get(b));
  const pos = new Map();
  const index = () => layers.forEach(layer => layer.forEach((v, i) => pos.set(v, i)));
  index();
  const sortLayer = (layer, key) => {  // by key, each cluster's nodes kept together
    const root = {kids: new Map(), leaves: []};
    for (const v of layer) {
      let t = root;
      for (const c of chain(nodes.get(v).cluster)) {
        if (!t.kids.has(c)) t.kids.set(c, {kids: new Map(), leaves: []});
        t = t.kids.get(c);
      }
      t.leaves.push(v);
    }
    const flat = t => {
      const parts = t.leaves.map(v => ({k: key.get(v), vs: [v]}));
      for (const kid of t.kids.values()) {
        const vs = flat(kid);
        parts.push({k: vs.reduce((s, v) => s + key.get(v), 0) / vs.length, vs});
      }
      parts.sort((a, b) => a.k - b.k);
      return [].concat(...parts.map(p => p.vs));
    };
    return flat(root);
  };
  for (let it = 0; it < opt.iterations; it++) {
    const down = it % 2 === 0;
    const range = down ? [...layers.keys()].slice(1) : [...layers.keys()].reverse().slice(1);
    for (const r of range) {
      const key = new Map();
      for (const v of layers[r]) {
        const nb = down ? nodes.get(v).up : nodes.get(v).down;
        key.set(v, nb.length ? nb.reduce((s, u) => s + pos.get(u), 0) / nb.length : pos.get(v));
      }
      layers[r] = sortLayer(layers[r], key);
      layers[r].forEach((v, i) => pos.set(v, i));
    }
  }

  // -- x: as near the neighbours as the gaps allow ---------------------------------------------
  const sep = (a, b) => {
    const na = nodes.get(a), nb = nodes.get(b);
    const ca = chain(na.cluster), cb = chain(nb.cluster);
    let shared = 0;
    while (shared < ca.length && shared < cb.length && ca[shared] === cb[shared]) shared++;
    const space = na.dummy && nb.dummy ? 8 : na.dummy || nb.dummy ? opt.nodesep / 2 : opt.nodesep;
    return (na.w + nb.w) / 2 + space + opt.pad * (ca.length + cb.length - 2 * shared);
  };
  const x = new Map();
  for (const layer of layers) {
    let at = 0;
    layer.forEach((v, i) => { if (i) at += sep(layer[i - 1], v); x.set(v, at); });
    layer.forEach(v => x.set(v, x.get(v) - at / 2));
  }
  const place = (layer, want) => {  // weighted isotonic regression with minimum gaps (PAVA)
    const n = layer.length, off = [0];
    for (let i = 1; i < n; i++) off.push(off[i - 1] + sep(layer[i - 1], layer[i]));
    const blocks = [];
    for (let i = 0; i < n; i++) {
      const [target, weight] = want(layer[i]);
      blocks.push({sum: weight * (target - off[i]), w: weight, n: 1});
      while (blocks.length > 1) {
        const b = blocks[blocks.length - 1], a = blocks[blocks.length - 2];
        if (a.sum / a.w <= b.sum / b.w) break;
        blocks.pop();
        a.sum += b.sum; a.w += b.w; a.n += b.n;
      }
    }
    let i = 0;
    for (const b of blocks) for (let k = 0; k < b.n; k++, i++) x.set(layer[i], b.sum / b.w + off[i]);
  };
  const wish = which => v => {
    const n = nodes.get(v);
    const nb = which === "up" ? n.up : which === "down" ? n.down : n.up.concat(n.down);
    if (!nb.length) return [x.get(v), 0.05];
    const centre = nb.reduce((s, u) => s + x.get(u) + shift(u, v), 0) / nb.length;
    return [centre, n.dummy ? 4 : 1];
  };
  // an item's host box is left of its super node's centre when items sit beside it
  const shift = (u, v) => hostShift(nodes.get(u)) - hostShift(nodes.get(v));
  const hostShift = n => n.items.length > 1 ? n.items[0].w / 2 - n.w / 2 : 0;
  for (let it = 0; it < opt.iterations; it++) {
    for (let r = 1; r < layers.length; r++) place(layers[r], wish("up"));
    for (let r = layers.length - 2; r >= 0; r--) place(layers[r], wish("down"));
  }
  for (let it = 0; it < 2; it++) for (const layer of layers) place(layer, wish("both"));
  clearClusters(layers, nodes, rank, minRank, chain, clusters, opt, x);

  // -- y: ranks, with room above for cluster headers and below for their padding --------------
  const top = new Map(), bottom = new Map();  // cluster -> first and last rank it holds
  for (const [v, r] of rank) for (const c of chain(nodes.get(v).cluster)) {
    top.set(c, Math.min(top.has(c) ? top.get(c) : Infinity, r));
    bottom.set(c, Math.max(bottom.has(c) ? bottom.get(c) : -Infinity, r));
  }
  const y = [], heights = [];
  let at = 0;
  layers.forEach((layer, i) => {
    const r = i + minRank;
    let above = 0, below = 0, height = 0;
    for (const v of layer) {
      const cs = chain(nodes.get(v).cluster);
      above = Math.max(above, cs.filter(c => top.get(c) === r).reduce((s, c) => s + clusters[c].head + opt.pad, 0));
      below = Math.max(below, cs.filter(c => bottom.get(c) === r).length * opt.pad);
      height = Math.max(height, nodes.get(v).h);
    }
    at += (i ? opt.ranksep : 0) + above + height / 2;
    y.push(at);
    heights.push(height);
    at += height / 2 + below;
  });

  // -- results ---------------------------------------------------------------------------------
  const out = new Map();
  for (const n of nodes.values()) {
    const cy = y[rank.get(n.id) - minRank];
    n.x = x.get(n.id);
    n.y = cy;
    const left = n.x - n.w / 2;
    for (const it of n.items) {
      out.set(it.id, {x: left + (it.offset || 0) + it.w / 2, y: cy, w: it.w, h: it.h, rank: rank.get(n.id)});
    }
  }
  const boxes = new Map();
  const depth = c => chain(c).length;
  const grow = (c, x0, y0, x1, y1) => {
    const b = boxes.get(c) || {x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity};
    boxes.set(c, {x0: Math.min(b.x0, x0), y0: Math.min(b.y0, y0), x1: Math.max(b.x1, x1), y1: Math.max(b.y1, y1)});
  };
  for (const n of nodes.values()) {
    if (!n.cluster || !clusters[n.cluster]) continue;
    const host = n.items[0];
    const w = n.dummy ? 0 : host.w, h = n.dummy ? 0 : host.h;
    const cx = n.dummy ? n.x : out.get(host.id).x;
    grow(n.cluster, cx - w / 2, n.y - h / 2, cx + w / 2, n.y + h / 2);
  }
  const result = new Map();
  for (const c of [...boxes.keys(), ...Object.keys(clusters)].filter((c, i, a) => a.indexOf(c) === i)
    .sort((a, b) => depth(b) - depth(a))) {
    if (!boxes.has(c)) continue;
    const b = boxes.get(c), cl = clusters[c];
    let x0 = b.x0 - opt.pad, x1 = b.x1 + opt.pad;
    const extra = (cl.minWidth || 0) - (x1 - x0);
    if (extra > 0) { x0 -= extra / 2; x1 += extra / 2; }
    const box = {x0, y0: b.y0 - opt.pad - cl.head, x1, y1: b.y1 + opt.pad};
    result.set(c, {x: (box.x0 + box.x1) / 2, y: (box.y0 + box.y1) / 2, w: box.x1 - box.x0, h: box.y1 - box.y0});
    if (cl.parent && clusters[cl.parent]) grow(cl.parent, box.x0, box.y0, box.x1, box.y1);
  }
  const routed = links.map(l => {
    const a = out.get(l.edge.from), b = out.get(l.edge.to);
    const points = [{x: a.x, y: a.y + a.h / 2}];
    for (const d of l.path.slice(1, -1)) points.push({x: nodes.get(d).x, y: nodes.get(d).y});
    points.push({x: b.x, y: b.y - b.h / 2});
    return {from: l.edge.from, to: l.edge.to, points, edge: l.edge};
  });
  spreadPorts(routed, out);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const v of out.values()) { x0 = Math.min(x0, v.x - v.w / 2); x1 = Math.max(x1, v.x + v.w / 2); y0 = Math.min(y0, v.y - v.h / 2); y1 = Math.max(y1, v.y + v.h / 2); }
  for (const v of result.values()) { x0 = Math.min(x0, v.x - v.w / 2); x1 = Math.max(x1, v.x + v.w / 2); y0 = Math.min(y0, v.y - v.h / 2); }
  if (!isFinite(x0)) { x0 = x1 = y0 = y1 = 0; }
  // the picture starts at (0, 0), whatever the ranks' centring made of the coordinates
  for (const v of [...out.values(), ...result.values()]) { v.x -= x0; v.y -= y0; }
  for (const e of routed) for (const q of e.points) { q.x -= x0; q.y -= y0; }
  return {items: out, edges: routed, clusters: result, x0: 0, y0: 0, width: x1 - x0, height: y1 - y0};
}

// Edges into (out of) one box arrive side by side across its top (bottom), ordered by where
// they come from, instead of all at its centre.
function spreadPorts(routed, boxes) {
  const spread = (list, end, next) => {
    const groups = new Map();
    for (const e of list) {
      const key = end === "in" ? e.to : e.from;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(e);
    }
    for (const [key, es] of groups) {
      if (es.length < 2) continue;
      const box = boxes.get(key), span = Math.min(box.w * 0.6, 18 * (es.length - 1));
      es.sort((a, b) => next(a).x - next(b).x);
      es.forEach((e, i) => {
        const p = end === "in" ? e.points[e.points.length - 1] : e.points[0];
        p.x = box.x - span / 2 + span * i / (es.length - 1);
      });
    }
  };
  spread(routed, "in", e => e.points[e.points.length - 2]);
  spread(routed, "out", e => e.points[1]);
}

// An SVG path through the points: vertical cubic Béziers between consecutive points.
function edgePath(points) {
  let d = `M${points[0].x.toFixed(1)},${points[0].y.toFixed(1)}`;
  for (let i = 1; i < points.length; i++) {
    const p = points[i - 1], q = points[i], dy = (q.y - p.y) / 2;
    d += `C${p.x.toFixed(1)},${(p.y + dy).toFixed(1)} ${q.x.toFixed(1)},${(q.y - dy).toFixed(1)} ${q.x.toFixed(1)},${q.y.toFixed(1)}`;
  }
  return d;
}

// A cluster's box is a rectangle over all its ranks: push every node that is not in it out of
// that rectangle, on the side where the ordering put it (with all the nodes beyond it on that
// rank, so the order stays). Innermost clusters first, a few rounds, since outer boxes move.
function clearClusters(layers, nodes, rank, minRank, chain, clusters, opt, x) {
  const depth = c => chain(c).length;
  const ids = Object.keys(clusters).sort((a, b) => depth(b) - depth(a));
  const members = new Map(ids.map(c => [c, []]));  // cluster -> [[node, levels inside it]]
  for (const n of nodes.values()) {
    const cs = chain(n.cluster);
    cs.forEach((c, i) => { if (members.has(c)) members.get(c).push([n, cs.length - i]); });
  }
  for (let round = 0; round < 3; round++) {
    let moved = false;
    for (const c of ids) {
      let L = Infinity, R = -Infinity, top = Infinity, bottom = -Infinity;
      for (const [n, levels] of members.get(c)) {
        const margin = n.dummy ? 0 : opt.pad * levels;
        L = Math.min(L, x.get(n.id) - n.w / 2 - margin);
        R = Math.max(R, x.get(n.id) + n.w / 2 + margin);
        top = Math.min(top, rank.get(n.id));
        bottom = Math.max(bottom, rank.get(n.id));
      }
      if (!isFinite(L)) continue;
      const extra = (clusters[c].minWidth || 0) - (R - L);  // a wide title widens the box both ways
      if (extra > 0) { L -= extra / 2; R += extra / 2; }
      const centre = (L + R) / 2;
      for (let r = top; r <= bottom; r++) {
        const layer = layers[r - minRank];
        const inside = layer.map(v => chain(nodes.get(v).cluster).includes(c));
        const first = inside.indexOf(true);
        layer.forEach((v, i) => {
          if (inside[i]) return;
          const n = nodes.get(v), left = first >= 0 ? i < first : x.get(v) < centre;
          const room = n.w / 2 + (n.dummy ? 4 : opt.nodesep / 2);
          const over = left ? x.get(v) + room - L : R - (x.get(v) - room);
          if (over <= 0.5) return;
          moved = true;
          const from = left ? 0 : i, to = left ? i : layer.length - 1;
          for (let k = from; k <= to; k++) x.set(layer[k], x.get(layer[k]) + (left ? -over : over));
        });
      }
    }
    if (!moved) break;
  }
}
