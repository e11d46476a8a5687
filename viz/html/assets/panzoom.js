// Pan and zoom of an SVG scene: drag to pan, wheel (or pinch) to zoom about the pointer,
// fit() to show it whole; a transform on one <g>, so the browser only recomposites.
function panZoom(svg, scene, onChange) {
  const state = {k: 1, x: 0, y: 0, bounds: null};
  const apply = () => {
    scene.setAttribute("transform", `translate(${state.x.toFixed(1)},${state.y.toFixed(1)}) scale(${state.k.toFixed(4)})`);
    if (onChange) onChange(state);
  };
  const zoomAt = (factor, px, py) => {
    const k = Math.min(4, Math.max(0.02, state.k * factor));
    state.x = px - (px - state.x) * k / state.k;
    state.y = py - (py - state.y) * k / state.k;
    state.k = k;
    apply();
  };
  svg.addEventListener("wheel", ev => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * (ev.ctrlKey ? 0.01 : 0.0015)), ev.clientX - r.left, ev.clientY - r.top);
  }, {passive: false});
  let drag = null;
  svg.addEventListener("pointerdown", ev => {
    if (ev.button !== 0) return;
    drag = {x: ev.clientX, y: ev.clientY, sx: state.x, sy: state.y, moved: false};
  });
  window.addEventListener("pointermove", ev => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true;
    svg.classList.add("dragging");
    state.x = drag.sx + dx;
    state.y = drag.sy + dy;
    apply();
  });
  window.addEventListener("pointerup", () => {
    if (drag && drag.moved) state.justDragged = true;  // the click that ends a drag selects nothing
    drag = null;
    svg.classList.remove("dragging");
    setTimeout(() => { state.justDragged = false; }, 0);
  });
  return {
    state,
    fit(bounds, maxScale, below) {  // below: pixels at the bottom that something covers
      const r = svg.getBoundingClientRect(), m = 24;
      const k = Math.min((r.width - 2 * m) / Math.max(bounds.width, 1), (r.height - 2 * m - (below || 0)) / Math.max(bounds.height, 1), maxScale || 1.2);
      state.k = Math.max(k, 0.02);
      state.x = (r.width - bounds.width * state.k) / 2 - bounds.x0 * state.k;
      state.y = m - bounds.y0 * state.k;
      apply();
    },
    // Readable from the top: a tall graph starts at its first rank, not shrunk to a line.
    top(bounds, minScale) {
      const r = svg.getBoundingClientRect(), m = 24;
      state.k = Math.max(Math.min((r.width - 2 * m) / Math.max(bounds.width, 1), 0.85), minScale);
      state.x = (r.width - bounds.width * state.k) / 2 - bounds.x0 * state.k;
      state.y = m - bounds.y0 * state.k;
      apply();
    },
    centre(x, y, k) {
      const r = svg.getBoundingClientRect();
      if (k) state.k = k;
      state.x = r.width / 2 - x * state.k;
      state.y = r.height / 2 - y * state.k;
      apply();
    },
    move(dx, dy) { state.x += dx; state.y += dy; apply(); },
    zoom(factor) { const r = svg.getBoundingClientRect(); zoomAt(factor, r.width / 2, r.height / 2); },
  };
}
