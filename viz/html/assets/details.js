// The details panel: everything known about the node, fused step, folded run, ∇ step or pass
// change that was clicked. Names in it are links that select that node.

function link(ctx, name, text) {
  return h("a", {href: "#", class: "nlink", onclick: ev => { ev.preventDefault(); ctx.go(name); }}, text || name);
}

function paramTable(ctx, names) {
  if (!names.length) return null;
  return h("table", {class: "grid"}, [h("tr", {}, ["param", "shape", "count", "init"].map(t => h("th", {}, t)))].concat(
    names.map(p => { const q = ctx.params[p]; return h("tr", {}, [h("td", {}, p), h("td", {}, shapeText(q.shape)),
      h("td", {class: "num"}, countText(q.count)), h("td", {}, (q.init || "") + (q.users.length > 1 ? " · shared" : ""))]); })));
}

function nodeDetails(ctx, name) {
  const n = ctx.byName.get(name);
  const params = n.inputs.filter(u => ctx.params[u]);
  const ins = n.inputs.filter(u => !ctx.params[u]).map(u => {
    const src = ctx.byName.get(u), port = n.ports ? n.ports[n.inputs.indexOf(u)] : null;
    return h("div", {}, [port ? h("span", {class: "port"}, port + " ← ") : null, link(ctx, u), ` ${shapeText(src.shape)}`]);
  });
  const users = ctx.consumers.get(name) || [];
  const rows = [
    ["op", n.op === "input" ? `input (${n.attrs.dtype})` : n.op],
    n.op !== "input" && attrText(n.attrs) ? ["attrs", attrText(n.attrs)] : null,
    ins.length ? ["inputs", h("div", {}, ins)] : null,
    ["output", `${shapeText(n.shape)} per example`],
    ["params", n.params ? `${countText(n.params)}` : "none"],
    n.op !== "input" ? ["FLOPs", `${flopsText(n.flops)} per example`] : null,
    users.length ? ["feeds", h("div", {}, users.map(u => h("div", {}, [link(ctx, u)])))] : null,
  ];
  const parts = [h("h2", {}, name), keyTable(rows), paramTable(ctx, params)];
  if (ctx.view === "plan") parts.push(planSection(ctx, name));
  return parts;
}

function planSection(ctx, name) {
  const plan = ctx.plan, step = ctx.stepOf.get(name), out = [h("h3", {}, "in the compiled plan")];
  if (ctx.pruned.has(name)) out.push(h("p", {class: "warn"}, "pruned: no requested output needs this node, so the plan never runs it"));
  if (step) {
    const last = step.members[step.members.length - 1] === name;
    out.push(keyTable([
      ["step", h("span", {}, [`#${step.index} `, step.pattern ? link(ctx, "step:" + step.index, step.name) : step.name])],
      step.pattern ? ["fused", `${step.pattern}: one kernel call for ${step.members.join(", ")}`] : null,
      step.kernel ? ["kernel", step.kernel] : null,
      step.pattern && !last ? ["value", "never stored: it stays inside the fused kernel"] : ["buffer", bufferText(ctx, step)],
      step.inplace ? ["in place", `overwrites ${step.inputs[0]}`] : null,
      ctx.timings ? ["time", stepTime(ctx, step)] : null,
    ]));
    if (step.grads) out.push(gradText(ctx, step));
  }
  const misses = plan.near_misses.filter(nm => nm.nodes.includes(name));
  for (const nm of misses) out.push(h("div", {class: "miss"}, [h("b", {}, `✗ not fused: ${nm.pattern}`), h("div", {}, nm.reason)]));
  return h("div", {}, out);
}

function bufferText(ctx, step) {
  const mem = ctx.memory;
  const size = bytesText(step.bytes);
  if (step.buffer < 0) return `${size} (fixed, not batched)`;
  const [a, b] = step.live || [0, 0];
  const S = ctx.plan.steps.length;
  const at = t => t < S ? ctx.plan.steps[t].name : "∇" + ctx.plan.steps[2 * S - 1 - t].name;
  const cap = mem && mem.buffers[step.buffer] !== step.bytes ? ` (the buffer holds ${bytesText(mem.buffers[step.buffer])})` : "";
  return h("span", {}, [h("span", {class: "swatch", style: `background:${ctx.styles.buffers[step.buffer % 10]}`}),
    ` buffer ${step.buffer}: ${size} per example${cap}, live from ${at(a)} to ${at(b)} (t ${a}–${b})`]);
}

function stepTime(ctx, step) {
  const t = ctx.timings.steps[step.name];
  if (!t) return "not timed";
  const share = ctx.timings.total ? ` · ${(100 * t.total / ctx.timings.total).toFixed(1)}% of the step time` : "";
  return `forward ${secondsText(t.forward)} · backward ${secondsText(t.backward)}${share}`;
}

function gradText(ctx, step) {
  const params = step.grads.filter(p => ctx.params[p]);
  const rows = [["backward", `#${ctx.plan.backward.order.indexOf(step.name)} of ${ctx.plan.backward.order.length}`],
    params.length ? ["grads of", params.join(", ")] : null,
    step.skips.length ? ["skips", step.skips.map(p => `d${p}`).join(", ") + " (nothing needs it)"] : null,
    ctx.plan.backward.fan_in[step.name] ? ["sums", `${ctx.plan.backward.fan_in[step.name]} incoming gradients`] : null];
  return keyTable(rows);
}

function stepDetails(ctx, step) {
  const memberLinks = h("div", {}, step.members.map(m => h("div", {}, [link(ctx, m), ` ${ctx.byName.get(m).op}`])));
  const params = [].concat(...step.members.map(m => ctx.byName.get(m).inputs.filter(u => ctx.params[u])));
  const parts = [h("h2", {}, `#${step.index} ${step.name}`), keyTable([
    ["pattern", step.pattern],
    ["members", memberLinks],
    step.kernel ? ["kernel", step.kernel] : null,
    ["attrs", attrText(step.attrs) || "none"],
    ["inputs", h("div", {}, step.inputs.filter(u => !ctx.params[u]).map(u => h("div", {}, [link(ctx, u)])))],
    ["output", `${shapeText(step.shape)} per example`],
    ["params", countText(step.params)],
    ["FLOPs", `${flopsText(step.flops)} per example`],
    ["buffer", bufferText(ctx, step)],
    ctx.timings ? ["time", stepTime(ctx, step)] : null,
  ]), paramTable(ctx, params)];
  if (step.grads) parts.push(gradText(ctx, step));
  return parts;
}

function groupDetails(ctx, g) {
  if (g.kind === "fused") return stepDetails(ctx, ctx.plan.steps[g.step]);
  if (g.kind === "miss") {
    const nm = ctx.plan.near_misses[g.miss];
    return [h("h2", {}, `✗ not fused: ${nm.pattern}`), h("p", {}, nm.reason),
      keyTable([["nodes", h("div", {}, nm.nodes.map(m => h("div", {}, [link(ctx, m)])))]])];
  }
  const params = g.members.reduce((s, m) => s + ctx.byName.get(m).params, 0);
  const flops = g.members.reduce((s, m) => s + ctx.byName.get(m).flops, 0);
  return [h("h2", {}, g.label), keyTable([
    ["what", g.kind === "run" ? "a run of structurally identical blocks (found by viz.find_repeats)" : "one block of a run"],
    ["ops", `${g.members.length}`], ["params", countText(params)], ["FLOPs", `${flopsText(flops)} per example`],
    ["first", link(ctx, g.members[0])], ["last", link(ctx, g.members[g.members.length - 1])],
  ]), h("p", {class: "hint"}, g.lines.join(" · "))];
}

function gradDetails(ctx, item) {
  const parts = [h("h2", {}, item.title)];
  for (const s of item.steps) {
    parts.push(h("h3", {}, [`backward of #${s.index} `, link(ctx, s.members[s.members.length - 1], s.name)]));
    parts.push(gradText(ctx, s));
    if (ctx.timings) parts.push(h("p", {}, `backward ${secondsText(ctx.timings.steps[s.name].backward)}`));
  }
  return parts;
}

function frameDetails(ctx, node) {
  const rows = [["op", node.op], ["status", node.status || "unchanged"],
    node.inputs.length ? ["inputs", node.inputs.join(", ")] : null];
  const meta = node.meta ? Object.entries(node.meta).map(([k, v]) => [k, v]) : [];
  return [h("h2", {}, node.name), keyTable(rows), meta.length ? h("h3", {}, "meta this pass added or changed") : null,
    meta.length ? keyTable(meta) : null];
}
