// Helpers shared by every part of the page: formats, escaping, text widths, DOM building.
const SVGNS = "http://www.w3.org/2000/svg";  // a namespace name, never fetched

function esc(text) {
  return String(text).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function countText(n) { return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }  // toLocaleString is slow

function shapeText(shape) { return shape && shape.length ? shape.join("×") : "scalar"; }

function bytesText(n) {
  if (Math.abs(n) < 1024) return `${Math.round(n)} B`;
  if (Math.abs(n) < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function secondsText(s) { return s < 1e-3 ? `${Math.round(s * 1e6)} µs` : `${(s * 1e3).toFixed(2)} ms`; }

function flopsText(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GFLOPs`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MFLOPs`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kFLOPs`;
  return `${n} FLOPs`;
}

function attrText(attrs) {
  const parts = [];
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null) continue;
    if (v === true) parts.push(k);
    else parts.push(`${k} ${Array.isArray(v) ? v.join("×") : typeof v === "object" ? JSON.stringify(v) : v}`);
  }
  return parts.join(", ");
}

function wrapText(text, width) {
  const words = String(text).split(" "), lines = [];
  let line = "";
  for (const w of words) {
    if (line && (line + " " + w).length > width) { lines.push(line); line = w; }
    else line = line ? line + " " + w : w;
  }
  if (line || !lines.length) lines.push(line);
  return lines;
}

const FONT = "Helvetica, Arial, sans-serif";
const measureCanvas = document.createElement("canvas").getContext("2d");
const widthCache = new Map();
let lastFont = "";

// Pixel width of text at a size (px) and weight, measured once per string.
function textWidth(text, size, bold) {
  const key = `${size}${bold ? "b" : ""}|${text}`;
  let w = widthCache.get(key);
  if (w === undefined) {
    const font = `${bold ? "bold " : ""}${size}px ${FONT}`;
    if (font !== lastFont) measureCanvas.font = lastFont = font;  // parsing a font is not free
    w = measureCanvas.measureText(text).width;
    widthCache.set(key, w);
  }
  return w;
}

// An HTML element: h("div", {class: "x", onclick: f}, [children or text]).
function h(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of [].concat(children || [])) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

// A table of [key, value] rows; a value may be a string or an element.
function keyTable(rows, cls) {
  return h("table", {class: cls || "kv"}, rows.filter(r => r).map(([k, v]) =>
    h("tr", {}, [h("th", {}, k), h("td", {}, v)])));
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
