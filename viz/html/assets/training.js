// The training tab of a report: loss and accuracy curves, the recipe the run was trained with
// and its final metrics, all from the run folder.

function lineChart(title, series, opt) {
  const W = opt.width || 470, H = opt.height || 250, L = 52, R = 16, T = 30, B = 38;
  const xs = [].concat(...series.map(s => s.x)), ys = [].concat(...series.map(s => s.y)).filter(Number.isFinite);
  const x0 = opt.xmin !== undefined ? opt.xmin : Math.min(...xs), x1 = Math.max(...xs, x0 + 1e-9);
  let y0 = opt.ymin !== undefined ? opt.ymin : Math.min(...ys), y1 = opt.ymax !== undefined ? opt.ymax : Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.06;
  if (opt.ymin === undefined) y0 -= pad;
  if (opt.ymax === undefined) y1 += pad;
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R), Y = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const p = [`<svg class="chart" width="${W}" height="${H}" xmlns="${SVGNS}"><text x="${L}" y="16" class="ctitle2">${esc(title)}</text>`];
  for (const t of niceTicks(y0, y1, 5)) p.push(`<line x1="${L}" x2="${W - R}" y1="${Y(t).toFixed(1)}" y2="${Y(t).toFixed(1)}" stroke="#eee"/><text x="${L - 6}" y="${(Y(t) + 4).toFixed(1)}" text-anchor="end" class="tick">${+t.toFixed(4)}</text>`);
  const xt = opt.integerX ? integerTicks(x0, x1, 8) : niceTicks(x0, x1, 6);
  for (const t of xt) p.push(`<line x1="${X(t).toFixed(1)}" x2="${X(t).toFixed(1)}" y1="${H - B}" y2="${H - B + 4}" stroke="#777"/><text x="${X(t).toFixed(1)}" y="${H - B + 16}" text-anchor="middle" class="tick">${+t.toFixed(2)}</text>`);
  p.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#777"/><text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle" class="tick">${esc(opt.xlabel || "")}</text>`);
  let lx = L + textWidth(title, 12, true) + 18;
  for (const s of series) {  // the legend, after the title
    if (!s.label) continue;
    p.push(`<line x1="${lx}" x2="${lx + 14}" y1="12" y2="12" stroke="${s.color}" stroke-width="2.5"/><text x="${lx + 18}" y="16" class="tick">${esc(s.label)}</text>`);
    lx += 26 + textWidth(s.label, 10, false);
  }
  for (const s of series) {
    const pts = s.x.map((x, i) => [x, s.y[i]]).filter(q => Number.isFinite(q[1]));
    if (!pts.length) continue;
    p.push(`<path d="${pts.map((q, i) => `${i ? "L" : "M"}${X(q[0]).toFixed(1)},${Y(q[1]).toFixed(1)}`).join("")}" fill="none" stroke="${s.color}" stroke-width="${s.width || 1.6}" opacity="${s.opacity || 1}"/>`);
    if (s.dots) for (const q of pts) p.push(`<circle cx="${X(q[0]).toFixed(1)}" cy="${Y(q[1]).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  p.push("</svg>");
  const box = h("div", {class: "chartbox"});
  box.innerHTML = p.join("");
  return box;
}

function niceTicks(a, b, n) {
  const step0 = (b - a) / n, mag = Math.pow(10, Math.floor(Math.log10(step0 || 1)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= step0) || mag * 10;
  const out = [];
  for (let t = Math.ceil(a / step) * step; t <= b + 1e-12; t += step) out.push(t);
  return out;
}

function integerTicks(a, b, n) {
  const step = Math.max(1, Math.ceil((b - a) / n));
  const out = [];
  for (let t = Math.ceil(a); t <= b + 1e-9; t += step) out.push(t);
  return out;
}

function movingMean(ys, k) {
  const out = [];
  let s = 0;
  for (let i = 0; i < ys.length; i++) {
    s += ys[i];
    if (i >= k) s -= ys[i - k];
    out.push(s / Math.min(i + 1, k));
  }
  return out;
}

function trainingView(run) {
  const hist = run.history, parts = [h("h2", {}, "training")];
  const loss = hist.loss_history || [], epochs = (hist.train_acc_history || []).length;
  const per = epochs ? loss.length / epochs : 1;
  const charts = h("div", {class: "charts"});
  if (loss.length) {
    const x = loss.map((_, i) => (i + 1) / per);
    charts.appendChild(lineChart("loss per iteration", [
      {x, y: loss, color: "#9ecae1", width: 1, opacity: 0.8, label: "loss"},
      {x, y: movingMean(loss, Math.max(1, Math.round(loss.length / 40))), color: "#08519c", width: 2, label: "moving mean"}],
      {xlabel: "epoch", xmin: 0, integerX: true}));
  }
  if (epochs) {
    const x = hist.train_acc_history.map((_, i) => i + 1);
    const series = [{x, y: hist.train_acc_history, color: "#e6550d", dots: true, label: "train"}];
    if ((hist.val_acc_history || []).length) series.push({x, y: hist.val_acc_history, color: "#31a354", dots: true, label: "val"});
    charts.appendChild(lineChart("accuracy per epoch", series, {xlabel: "epoch", integerX: true, xmin: epochs > 1 ? 1 : 0}));
  }
  if (!loss.length && !epochs) charts.appendChild(h("p", {class: "hint"}, "no epoch finished yet: history.json holds no curves"));
  parts.push(charts);
  const tables = h("div", {class: "tables"});
  tables.appendChild(h("div", {}, [h("h3", {}, "final metrics"), keyTable(run.metrics)]));
  if (run.evaluation) {
    const splits = Object.keys(run.evaluation);
    tables.appendChild(h("div", {}, [h("h3", {}, "evaluated now (best-validation params)"), h("table", {class: "grid"},
      [h("tr", {}, ["split", "loss", "accuracy"].map(t => h("th", {}, t)))].concat(splits.map(s => h("tr", {}, [
        h("td", {}, s), h("td", {class: "num"}, run.evaluation[s].loss.toFixed(4)), h("td", {class: "num"}, run.evaluation[s].accuracy.toFixed(4))]))))]));
  }
  tables.appendChild(h("div", {}, [h("h3", {}, "recipe"), keyTable(run.recipe)]));
  parts.push(tables);
  for (const note of run.notes || []) parts.push(h("p", {class: "hint"}, note));
  return h("div", {class: "training"}, parts);
}
