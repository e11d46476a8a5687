// The explorer: tabs (training, declared graph, compiled plan, passes), search, details, the
// memory chart, and the glue between them. Reads the JSON in <script id="dagnet-data">.

const LOW_ZOOM = 0.3;  // below this scale boxes are drawn without text

function startExplorer(root, data) {
  const started = performance.now();
  const styles = data.styles, plan = data.plan, nodes = data.graph.nodes;
  const byName = new Map(nodes.map(n => [n.name, n]));
  const consumers = new Map();
  for (const n of nodes) for (const u of n.inputs) if (byName.has(u)) {
    if (!consumers.has(u)) consumers.set(u, []);
    consumers.get(u).push(n.name);
  }
  const stepOf = new Map(), stepByName = new Map();
  if (plan) for (const s of plan.steps) { stepByName.set(s.name, s); for (const m of s.members) stepOf.set(m, s); }
  const views = {graph: indexGroups(data.groups.graph), plan: indexGroups(data.groups.plan || [])};
  const collapsed = {};
  for (const v of ["graph", "plan"]) collapsed[v] = new Set((data.groups[v] || []).filter(g => g.collapsed).map(g => g.id));
  const strip = data.passes ? filmStrip(data.passes) : null;
  const state = {view: data.run ? "training" : plan ? "plan" : "graph", backward: false, heat: !!(plan && plan.timings),
                 selected: null, frame: strip ? strip.count - 1 : 0, matches: [], matchAt: -1, g: null, lay: null};
  const tabs = [data.run && ["training", "Training"], ["graph", "Declared graph"], plan && ["plan", "Compiled plan"],
                strip && ["passes", "Passes"]].filter(Boolean);

  // -- the page ------------------------------------------------------------------------------
  const tabBar = h("nav", {class: "tabs"}, tabs.map(([id, label]) =>
    h("button", {class: "tab", "data-view": id, onclick: () => switchView(id)}, label)));
  const search = h("input", {type: "search", id: "search", placeholder: "search name or op  ( / )", autocomplete: "off"});
  const results = h("div", {id: "results", class: "results"});
  const backwardBox = h("input", {type: "checkbox", id: "show-backward", onchange: ev => { state.backward = ev.target.checked; render(); }});
  const heatBox = h("input", {type: "checkbox", id: "show-heat", checked: state.heat, onchange: ev => { state.heat = ev.target.checked; render(); }});
  const tools = h("div", {class: "tools"}, [
    h("button", {title: "fit the picture to the window (f)", onclick: () => fit(), id: "fit"}, "fit"),
    h("button", {title: "zoom in", onclick: () => pz.zoom(1.25)}, "+"), h("button", {title: "zoom out", onclick: () => pz.zoom(0.8)}, "−"),
    h("button", {id: "expand-all", onclick: () => { collapsed[state.view] && collapsed[state.view].clear(); render(); }}, "expand all"),
    h("button", {id: "collapse-all", onclick: () => { collapseAll(); render(); fit(); }}, "collapse all"),
    h("label", {class: "opt plan-only"}, [backwardBox, " backward"]),
    plan && plan.timings ? h("label", {class: "opt plan-only"}, [heatBox, " time heat"]) : null]);
  const header = h("header", {}, [
    h("div", {class: "titles"}, [h("h1", {}, data.title), h("div", {class: "sub", id: "subtitle"}, data.subtitle)]),
    tabBar, h("div", {class: "searchbox"}, [search, results]), tools]);
  const svg = svgEl("svg", {id: "stage-svg"});
  svg.innerHTML = `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="${styles.edge}"/></marker>` +
    `<marker id="arrow-grad" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="${styles.gradient}"/></marker>` +
    `<marker id="arrow-grad-start" viewBox="0 0 10 10" refX="1" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="${styles.gradient}"/></marker></defs>`;
  const scene = svgEl("g", {id: "scene"});
  svg.appendChild(scene);
  const slider = h("input", {type: "range", id: "pass-slider", min: 0, max: strip ? strip.count - 1 : 0, value: state.frame,
                             oninput: ev => { state.frame = +ev.target.value; render(); }});
  const passLabel = h("span", {id: "pass-label"});
  const passBar = h("div", {class: "passbar"}, [h("button", {onclick: () => stepFrame(-1)}, "◀"), slider,
                                                h("button", {onclick: () => stepFrame(1)}, "▶"), passLabel]);
  const stage = h("div", {class: "stage"}, [svg, passBar, legend()]);
  const side = h("aside", {id: "details"}, [h("p", {class: "hint"}, "Click a box for its details; click a group's title to fold it, a folded box to open it. Drag to pan, wheel to zoom.")]);
  const memHost = h("div", {id: "memory", class: "memory"});
  const training = h("div", {id: "training", class: "trainhost"}, data.run ? [trainingView(data.run)] : []);
  root.append(header, h("div", {class: "main"}, [h("div", {class: "centre"}, [stage, training, memHost]), side]));
  const pz = panZoom(svg, scene, viewMoved);
  let chart = null;

  // -- drawing -------------------------------------------------------------------------------
  function ctx() {
    return {view: state.view, nodes, byName, consumers, params: data.graph.params, plan, styles, stepOf, stepByName,
            groups: views[state.view] ? views[state.view].byId : new Map(), inner: views[state.view] ? views[state.view].inner : new Map(),
            collapsed: collapsed[state.view] || new Set(), pruned: new Set(plan ? plan.pruned : []),
            timings: plan && plan.timings, heat: state.heat, backward: state.backward, memory: data.memory, go};
  }
  function render() {
    const t0 = performance.now();
    root.dataset.view = state.view;
    for (const b of tabBar.children) b.classList.toggle("active", b.dataset.view === state.view);
    if (state.view === "training") { state.g = state.lay = null; return; }
    let g, lay;
    if (state.view === "passes") {
      g = frameGraph(strip, state.frame, data.pass_families, styles);
      lay = layoutGraph(g.items, g.edges, g.clusters);
      const counts = strip.counts(state.frame);
      passLabel.textContent = `${state.frame}. ${state.frame ? "after " : ""}${strip.name(state.frame)}` +
        (state.frame ? " · " + (Object.entries(counts).map(([k, v]) => `${MARKS[k]} ${v}`).join(" · ") || "no changes") : "");
      slider.value = state.frame;
    } else {
      g = visibleGraph(ctx());
      lay = layoutGraph(g.items, g.edges, g.clusters);
    }
    state.g = g;
    state.lay = lay;
    state.itemById = new Map(g.items.map(it => [it.id, it]));
    paint();
    window.__dagnet.renders += 1;
    window.__dagnet.lastRenderMs = performance.now() - t0;
    window.__dagnet.visibleBoxes = g.items.length;
  }
  // Draw what the screen shows, and a screen's worth around it; again when a pan or zoom leaves
  // that margin or crosses the zoom below which text is not drawn.
  function paint() {
    const t0 = performance.now();
    const r = svg.getBoundingClientRect(), k = pz.state.k;
    const x0 = -pz.state.x / k, y0 = -pz.state.y / k, w = r.width / k, hh = r.height / k;
    state.win = {x0: x0 - w, y0: y0 - hh, x1: x0 + 2 * w, y1: y0 + 2 * hh, low: k < LOW_ZOOM};
    scene.innerHTML = state.view === "passes" ? drawFrame(state.g, state.lay, styles, state.win)
      : drawGraph(state.g, state.lay, ctx(), state.win);
    markSearch();
    markSelection();
    window.__dagnet.paints += 1;
    window.__dagnet.lastPaintMs = performance.now() - t0;
  }
  let pending = false;
  function viewMoved(s) {
    const win = state.win;
    if (!win || !state.lay || pending || state.view === "training") return;
    const r = svg.getBoundingClientRect(), x0 = -s.x / s.k, y0 = -s.y / s.k;
    const inside = x0 >= win.x0 && y0 >= win.y0 && x0 + r.width / s.k <= win.x1 && y0 + r.height / s.k <= win.y1;
    if (inside && (s.k < LOW_ZOOM) === win.low) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; paint(); });
  }
  function fit() {
    if (!state.lay) return;
    const r = svg.getBoundingClientRect();
    const k = Math.min((r.width - 48) / Math.max(state.lay.width, 1), (r.height - 48) / Math.max(state.lay.height, 1));
    if (k < 0.3) pz.top(state.lay, 0.3);  // tall graphs: readable from the top
    else pz.fit(state.lay, 1.2, state.view === "passes" ? 70 : 24);  // clear of the slider, the legend
  }
  function switchView(view) {
    state.view = view;
    render();
    if (view === "plan" && data.memory && !chart) chart = memoryChart(memHost, data.memory, plan.steps, styles, hoverTime);
    fit();
  }
  function collapseAll() {
    const c = collapsed[state.view];
    if (!c) return;
    for (const g of views[state.view].byId.values()) if (g.collapsible) c.add(g.id);
  }
  function stepFrame(d) { state.frame = Math.max(0, Math.min(strip.count - 1, state.frame + d)); render(); }

  // -- selection, search, linking ------------------------------------------------------------
  function itemFor(name) {  // the visible box that shows node `name`
    if (state.view === "passes") return "f:" + name;
    return state.g ? repOf(ctx(), name) : null;
  }
  function reveal(name) {
    const c = collapsed[state.view];
    if (!c || !views[state.view]) return;
    for (let g = views[state.view].inner.get(name); g; g = views[state.view].byId.get(g).parent) c.delete(g);
  }
  function go(name) {
    if (name.startsWith("step:")) {
      const step = plan.steps[+name.slice(5)];
      if (state.view !== "plan") switchView("plan");
      reveal(step.members[0]);
      render();
      select({kind: "group", id: "step" + step.index});
      centreOn("c:step" + step.index);
      return;
    }
    if (state.view === "training") switchView(plan ? "plan" : "graph");
    reveal(name);
    render();
    const id = itemFor(name);
    select(id && id.startsWith("g:") ? {kind: "group", id: id.slice(2)} : {kind: "node", name});
    centreOn(id);
  }
  function centreOn(id) {
    const p = state.lay && (state.lay.items.get(id) || state.lay.clusters.get(id));
    if (p) pz.centre(p.x, p.y, Math.max(pz.state.k, 0.8));
  }
  function select(sel) {
    state.selected = sel;
    side.innerHTML = "";
    const c = ctx();
    let parts = [];
    if (!sel) parts = [h("p", {class: "hint"}, "Nothing selected.")];
    else if (sel.kind === "node") parts = nodeDetails(c, sel.name);
    else if (sel.kind === "group") parts = groupDetails(c, c.groups.get(sel.id));
    else if (sel.kind === "grad") parts = gradDetails(c, state.itemById.get(sel.id));
    else if (sel.kind === "frame") parts = frameDetails(c, state.itemById.get("f:" + sel.name).frameNode);
    for (const p of parts) if (p) side.appendChild(p);
    markSelection();
  }
  function selectedItem() {
    const s = state.selected;
    if (!s) return null;
    if (s.kind === "node") return itemFor(s.name);
    if (s.kind === "group") return state.itemById && state.itemById.has("g:" + s.id) ? "g:" + s.id : "c:" + s.id;
    if (s.kind === "grad") return s.id;
    return "f:" + s.name;
  }
  function markSelection() {
    for (const e of scene.querySelectorAll(".selected")) e.classList.remove("selected");
    const id = selectedItem();
    const e = id && scene.querySelector(`[data-id="${CSS.escape(id)}"]`);
    if (e) e.classList.add("selected");
  }
  function runSearch() {
    const q = search.value.trim().toLowerCase();
    results.innerHTML = "";
    state.matches = q ? nodes.filter(n => n.name.toLowerCase().includes(q) || n.op.toLowerCase().includes(q)).map(n => n.name) : [];
    state.matchAt = -1;
    if (q) {
      const shown = state.matches.slice(0, 40).map(name => h("div", {class: "hit", onclick: () => { results.classList.remove("open"); go(name); }},
        [h("b", {}, name), ` ${byName.get(name).op}`]));
      results.append(h("div", {class: "count"}, `${state.matches.length} match${state.matches.length === 1 ? "" : "es"}` + (state.matches.length ? " · Enter: next" : "")), ...shown);
      results.classList.add("open");
    } else results.classList.remove("open");
    markSearch();
  }
  function markSearch() {
    svg.classList.toggle("searching", state.matches.length > 0);
    for (const e of scene.querySelectorAll(".match")) e.classList.remove("match");
    for (const name of state.matches) {
      const id = itemFor(name), e = id && scene.querySelector(`[data-id="${CSS.escape(id)}"]`);
      if (e) e.classList.add("match");
    }
  }
  search.addEventListener("input", runSearch);
  search.addEventListener("keydown", ev => {
    if (ev.key === "Enter" && state.matches.length) {
      state.matchAt = (state.matchAt + 1) % state.matches.length;
      results.classList.remove("open");
      go(state.matches[state.matchAt]);
    } else if (ev.key === "Escape") { search.value = ""; runSearch(); search.blur(); }
  });
  document.addEventListener("keydown", ev => {
    if (ev.target === search) return;
    if (ev.key === "/") { ev.preventDefault(); search.focus(); }
    else if (ev.key === "f") fit();
  });

  // hovering a step highlights what is alive at its time step; hovering the chart, the step
  function timeOf(id) {
    const it = state.itemById && state.itemById.get(id);
    if (!it || !plan) return null;
    const S = plan.steps.length;
    if (it.kind === "grad") return 2 * S - 1 - it.steps[0].index;
    const name = id.startsWith("n:") ? id.slice(2) : null;
    const step = name ? stepOf.get(name) : it.group && views.plan.byId.get(it.group).step !== null ? plan.steps[views.plan.byId.get(it.group).step] : null;
    return step ? step.index : null;
  }
  function hoverTime(t) {
    for (const e of scene.querySelectorAll(".hot, .alive")) e.classList.remove("hot", "alive");
    svg.classList.toggle("timing", t !== null);
    if (t === null || !plan) return;
    const S = plan.steps.length, step = t < S ? plan.steps[t] : plan.steps[2 * S - 1 - t];
    const rep = itemFor(step.members[step.members.length - 1]);
    const hot = t >= S && state.backward ? scene.querySelector(`[data-id="${CSS.escape("b:" + rep)}"]`) : scene.querySelector(`[data-id="${CSS.escape(rep)}"]`);
    if (hot) hot.classList.add("hot");
    for (const bar of chart ? chart.aliveAt(t) : []) {
      if (bar.kind !== "value") continue;
      const s = plan.steps[bar.step], e = scene.querySelector(`[data-id="${CSS.escape(itemFor(s.members[s.members.length - 1]))}"]`);
      if (e) e.classList.add("alive");
    }
  }
  scene.addEventListener("mouseover", ev => {
    if (state.view !== "plan" || !chart) return;
    const box = ev.target.closest(".box");
    const t = box ? timeOf(box.dataset.id) : null;
    chart.show(t);
    hoverTime(t);
  });
  svg.addEventListener("click", ev => {
    if (pz.state.justDragged) return;
    const head = ev.target.closest("[data-toggle]");
    if (head) {
      const id = head.dataset.cluster.slice(2);
      const before = state.lay.clusters.get("c:" + id);
      collapsed[state.view].add(id);
      keepInPlace(before, "g:" + id);
      select({kind: "group", id});
      return;
    }
    const box = ev.target.closest(".box");
    if (!box) {
      const cluster = ev.target.closest(".cluster"), header = ev.target.closest(".chead");
      const id = header ? header.dataset.cluster : cluster ? cluster.dataset.id : null;
      select(id ? {kind: "group", id: id.slice(2)} : null);
      return;
    }
    const id = box.dataset.id;
    if (id.startsWith("g:")) {
      const before = state.lay.items.get(id);
      collapsed[state.view].delete(id.slice(2));
      keepInPlace(before, "c:" + id.slice(2));
      select({kind: "group", id: id.slice(2)});
    } else if (id.startsWith("n:")) select({kind: "node", name: id.slice(2)});
    else if (id.startsWith("b:")) select({kind: "grad", id});
    else if (id.startsWith("f:")) select({kind: "frame", name: id.slice(2)});
  });
  // after a fold or unfold, the box under the pointer stays where it was on the screen
  function keepInPlace(before, afterId) {
    render();
    const after = state.lay.items.get(afterId) || state.lay.clusters.get(afterId);
    if (before && after) pz.move(pz.state.k * (before.x - after.x), pz.state.k * ((before.y - before.h / 2) - (after.y - after.h / 2)));
  }

  function legend() {
    const fam = styles.families;
    const chip = (look, text, extra) => h("span", {class: "chip"}, [h("i", {style: `background:${look.fill};border-color:${look.stroke}${extra || ""}`}), text]);
    const items = [chip(fam.conv, "conv"), chip(fam.pool, "pool"), chip(fam.dense, "dense"), chip(fam.activation, "activation"),
      chip(fam.norm, "norm"), chip(fam.merge, "merge"), chip(fam.loss, "loss"), chip(styles.clusters.fused, "fused step"),
      chip(styles.clusters.miss, "near miss", ";border-style:dashed"), chip(styles.clusters.folded, "folded run")];
    for (const [status, text] of Object.entries(MARKS)) {
      const c = styles.diff[status];
      items.push(h("span", {class: "chip passes-only"}, [h("i", {style: `background:#fff;border:2px ${status === "removed" ? "dashed" : "solid"} ${c}`}), text]));
    }
    if (plan && plan.timings) items.push(h("span", {class: "chip heat"}, ["fast ", ...styles.heat.map(c => h("i", {style: `background:${c};border-color:${c}`})), " slow"]));
    return h("div", {class: "legend"}, items);
  }

  window.__dagnet = {renders: 0, paints: 0, lastRenderMs: 0, go, select, switchView, state};
  switchView(state.view);
  window.__dagnet.firstRenderMs = performance.now() - started;
  window.__dagnet.readyAt = performance.now();
  root.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", () => {
  const data = JSON.parse(document.getElementById("dagnet-data").textContent);
  startExplorer(document.getElementById("app"), data);
});
