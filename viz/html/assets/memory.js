// The memory chart under the plan: live bytes per example over the timeline (forward steps,
// then their backward in reverse) and one row per buffer with the lifetime of every value and
// workspace it holds. Linked both ways: hover(t) highlights what is alive at time t, and
// hovering the chart calls onHover(t) so the plan can highlight the step that runs at t.

function memoryChart(host, mem, steps, styles, onHover) {
  const S = mem.steps, T = mem.timeline;
  const timeName = t => t < S ? steps[t].name : "∇" + steps[2 * S - 1 - t].name;
  const rows = Object.keys(mem.buffers).map(Number).sort((a, b) => a - b);
  const rowOf = bar => bar.buffer === null ? "scratch" : bar.buffer < 0 ? "fixed" : bar.buffer;
  const rowKeys = rows.slice();
  if (mem.bars.some(b => rowOf(b) === "fixed")) rowKeys.push("fixed");
  if (mem.bars.some(b => rowOf(b) === "scratch")) rowKeys.push("scratch");
  const rowLabel = key => key === "fixed" ? "fixed (not batched)" : key === "scratch" ? "scratch (not planned)" : `buffer ${key} · ${bytesText(mem.buffers[key])}`;
  const left = Math.max(60, ...rowKeys.map(k => textWidth(rowLabel(k), 10, false))) + 14;
  const right = 14, top = 44, curveH = 70, rowH = 12, gap = 3;
  const width = Math.max(host.clientWidth - 4, 480);
  const dx = (width - left - right) / Math.max(T, 1);
  const X = t => left + (t + 0.5) * dx;
  const gTop = top + curveH + 22;
  const height = gTop + rowKeys.length * (rowH + gap) + 8;
  const maxY = Math.max(mem.no_reuse, mem.peak, 1) * 1.12;
  const Y = v => top + curveH - v / maxY * curveH;
  const color = b => b === "fixed" ? "#BBBBBB" : b === "scratch" ? "#FDAE6B" : styles.buffers[b % styles.buffers.length];
  const p = [];
  p.push(`<svg class="memsvg" data-left="${left}" width="${width}" height="${height}" xmlns="${SVGNS}">`);
  // the stacked curve: values, then workspace on top
  const area = (lo, hi) => {
    let d = `M${X(-0.5).toFixed(1)},${Y(lo[0]).toFixed(1)}`;
    for (let t = 0; t < T; t++) d += `L${X(t - 0.5).toFixed(1)},${Y(hi[t]).toFixed(1)}L${X(t + 0.5).toFixed(1)},${Y(hi[t]).toFixed(1)}`;
    for (let t = T - 1; t >= 0; t--) d += `L${X(t + 0.5).toFixed(1)},${Y(lo[t]).toFixed(1)}L${X(t - 0.5).toFixed(1)},${Y(lo[t]).toFixed(1)}`;
    return d + "Z";
  };
  const zero = mem.values.map(() => 0), stacked = mem.values.map((v, t) => v + mem.work[t]);
  p.push(`<path d="${area(zero, mem.values)}" fill="#6BAED6" opacity="0.85"/>`);
  p.push(`<path d="${area(mem.values, stacked)}" fill="#FDAE6B" opacity="0.85"/>`);
  p.push(`<line x1="${left}" x2="${width - right}" y1="${Y(mem.no_reuse).toFixed(1)}" y2="${Y(mem.no_reuse).toFixed(1)}" stroke="#777" stroke-dasharray="4,3"/>`);
  p.push(`<line x1="${left}" x2="${width - right}" y1="${top + curveH}" y2="${top + curveH}" stroke="#999"/>`);
  const px = X(mem.peak_step), py = Y(mem.peak);
  p.push(`<path d="M${(px - 5).toFixed(1)},${(py - 9).toFixed(1)}h10l-5,8z" fill="${styles.peak}"/>`);
  p.push(`<text x="8" y="13" class="mlabel"><tspan font-weight="bold">live bytes per example</tspan>  <tspan fill="#3182bd">■</tspan> values  <tspan fill="#e6550d">■</tspan> workspace  <tspan fill="${styles.peak}">▼ peak ${bytesText(mem.peak)} at ${esc(timeName(mem.peak_step))}</tspan>  - - - no reuse: ${bytesText(mem.no_reuse)}</text>`);
  p.push(`<text x="${left - 6}" y="${top + 8}" class="mlabel" text-anchor="end">${bytesText(maxY / 1.12)}</text>`);
  p.push(`<text x="${left - 6}" y="${top + curveH}" class="mlabel" text-anchor="end">0</text>`);
  if (T > S) {
    p.push(`<line x1="${(left + S * dx).toFixed(1)}" x2="${(left + S * dx).toFixed(1)}" y1="${top - 4}" y2="${height}" stroke="#444"/>`);
    p.push(`<text x="${(left + S * dx - 6).toFixed(1)}" y="${top + 2}" class="mlabel" text-anchor="end">forward ◀</text>`);
    p.push(`<text x="${(left + S * dx + 6).toFixed(1)}" y="${top + 2}" class="mlabel">▶ backward</text>`);
  }
  rowKeys.forEach((key, i) => {
    const y = gTop + i * (rowH + gap);
    p.push(`<text x="${left - 6}" y="${y + rowH - 2}" class="mrow" text-anchor="end">${esc(rowLabel(key))}</text>`);
  });
  mem.bars.forEach((bar, i) => {
    const row = rowKeys.indexOf(rowOf(bar)), y = gTop + row * (rowH + gap);
    const x0 = X(bar.start - 0.45 + (bar.inplace ? 0.5 : 0)), x1 = X(bar.end + 0.45);
    const ws = bar.kind === "workspace";
    p.push(`<rect class="mbar${ws ? " ws" : ""}" data-i="${i}" x="${x0.toFixed(1)}" y="${y}" width="${Math.max(x1 - x0, 1).toFixed(1)}" height="${rowH}" rx="2" fill="${color(rowOf(bar))}"${ws ? ' fill-opacity="0.45" stroke="' + color(rowOf(bar)) + '"' : ""}><title>${esc((ws ? "workspace of " : "") + bar.name)}: ${esc(timeName(bar.start))} → ${esc(timeName(bar.end))}${bar.bytes ? " · " + bytesText(bar.bytes) : ""}</title></rect>`);
  });
  p.push(`<line class="mcursor" x1="0" x2="0" y1="${top - 4}" y2="${height}" stroke="#222" stroke-width="1" visibility="hidden"/>`);
  p.push(`<text class="mreadout" x="8" y="28"></text>`);
  p.push(`<rect class="mhit" x="${left}" y="0" width="${width - left - right}" height="${height}" fill="transparent"/>`);
  p.push("</svg>");
  host.innerHTML = p.join("");
  const svg = host.querySelector("svg"), cursor = svg.querySelector(".mcursor"), readout = svg.querySelector(".mreadout");
  const rects = [...svg.querySelectorAll(".mbar")];
  const hit = svg.querySelector(".mhit");
  const timeAt = ev => Math.floor((ev.clientX - svg.getBoundingClientRect().left - left) / dx);
  hit.addEventListener("mousemove", ev => { const t = timeAt(ev); if (t >= 0 && t < T) { show(t); onHover(t); } });
  hit.addEventListener("mouseleave", () => { show(null); onHover(null); });
  function show(t) {
    if (t === null || t === undefined) {
      cursor.setAttribute("visibility", "hidden");
      readout.textContent = "";
      svg.classList.remove("focus");
      rects.forEach(r => r.classList.remove("alive"));
      return;
    }
    cursor.setAttribute("x1", X(t));
    cursor.setAttribute("x2", X(t));
    cursor.setAttribute("visibility", "visible");
    svg.classList.add("focus");
    let alive = 0;
    mem.bars.forEach((bar, i) => {
      const on = bar.start <= t && t <= bar.end;
      rects[i].classList.toggle("alive", on);
      if (on) alive++;
    });
    readout.textContent = `t ${t} · ${timeName(t)} · values ${bytesText(mem.values[t])} + workspace ${bytesText(mem.work[t])} · ${alive} alive`;
  }
  return {show, aliveAt: t => mem.bars.filter(b => b.start <= t && t <= b.end)};
}
