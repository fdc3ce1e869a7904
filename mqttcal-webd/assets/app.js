// mqttcal webd: the pages' script. No library: DOM, fetch and EventSource only.
// Every value from the lab is put in the page as text (textContent), never as markup.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf"]') || {}).content || "";

/** Calls webd's JSON API; resolves to {ok, status, body}. */
async function api(path, payload) {
  const init = payload === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    body: JSON.stringify(payload),
  };
  const r = await fetch(path, init);
  if (r.status === 401) { location.href = "/login"; }
  let body;
  try { body = await r.json(); } catch (e) { body = { error: { code: "http", message: r.status + " " + r.statusText } }; }
  return { ok: r.ok, status: r.status, body };
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v; else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const when = (secs) => secs ? new Date(secs * 1000).toLocaleString() : "";

// ---- nodes ---------------------------------------------------------------------------

function nodeRow(n) {
  const tr = el("tr", { "data-node": n.name, class: n.status });
  tr.append(
    el("td", {}, el("a", { href: "/nodes/" + encodeURIComponent(n.name), text: n.name })),
    el("td", { class: "status", text: n.status }),
    el("td", { class: "since", text: when(n.since) }),
    el("td", { class: "caps", text: (n.capabilities || []).join(", ") }));
  return tr;
}

async function refreshNodes() {
  const r = await api("/api/nodes");
  if (!r.ok) return;
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...r.body.reply.map(nodeRow));
}

function nodesPage() {
  for (const td of document.querySelectorAll("td.since")) td.textContent = when(Number(td.dataset.time));
  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; refreshNodes(); }, 250); };
  const events = new EventSource("/events?topics=announce");
  events.addEventListener("announce", soon);
  setInterval(refreshNodes, 5000);
}

// ---- a node's capabilities as forms --------------------------------------------------

/** Follows a local `$ref` (`#/$defs/X`) in `root`. */
function resolve(schema, root) {
  let s = schema || {};
  for (let i = 0; i < 8 && s.$ref && s.$ref.startsWith("#/"); i++) {
    const target = s.$ref.slice(2).split("/").reduce((o, k) => (o || {})[k], root) || {};
    // What is written beside the reference (its description, its default) wins.
    const { $ref, ...beside } = s;
    s = Object.assign({}, target, beside);
  }
  // Option<T> comes as anyOf [T, null] or a type list with "null".
  if (Array.isArray(s.anyOf)) {
    const some = s.anyOf.filter((x) => x.type !== "null");
    if (some.length === 1) return Object.assign({}, resolve(some[0], root), { description: s.description || some[0].description });
  }
  return s;
}

/** The choices of an enumeration of strings (`enum`, or `oneOf` of `const`), if it is one. */
function choicesOf(s) {
  if (Array.isArray(s.enum) && s.enum.every((x) => typeof x === "string")) return s.enum;
  const alts = s.oneOf || s.anyOf;
  if (Array.isArray(alts) && alts.length && alts.every((a) => typeof a.const === "string" || (Array.isArray(a.enum) && a.enum.length === 1))) {
    return alts.map((a) => (typeof a.const === "string" ? a.const : a.enum[0]));
  }
  return null;
}

function kindOf(s) {
  let t = s.type;
  if (Array.isArray(t)) t = t.filter((x) => x !== "null")[0];
  if (choicesOf(s)) return "enum";
  if (t === "integer" || t === "number" || t === "boolean" || t === "string") return t;
  return "json";
}

function field(cap, name, schema, root, required) {
  const s = resolve(schema, root);
  const kind = kindOf(s);
  const id = `f-${cap}-${name}`;
  let input;
  if (kind === "boolean" || kind === "enum") {
    // A choice (false can be sent, and left out when not required).
    input = el("select", { id, name });
    if (!required) {
      const dflt = s.default !== undefined && s.default !== null ? ` (${s.default})` : "";
      input.append(el("option", { value: "", text: "default" + dflt }));
    }
    for (const v of kind === "boolean" ? ["true", "false"] : choicesOf(s)) input.append(el("option", { value: v, text: v }));
  } else if (kind === "json") {
    input = el("textarea", { id, name, rows: 2, placeholder: "JSON" });
  } else {
    input = el("input", {
      id, name, type: kind === "string" ? "text" : "number",
      step: kind === "integer" ? "1" : "any",
      min: s.minimum, max: s.maximum,
      placeholder: s.default !== undefined && s.default !== null ? String(s.default) : "",
    });
  }
  input.dataset.kind = kind;
  if (required) input.required = true;
  const label = el("label", { for: id }, el("span", { class: "name", text: name + (required ? " *" : "") }));
  return el("div", { class: "field", "data-field": name },
    label, input,
    s.description ? el("small", { class: "help", text: s.description }) : null,
    el("span", { class: "field-error", role: "alert" }));
}

/** The form's parameters, or throws {field, message}. */
function paramsOf(form) {
  const params = {};
  for (const input of form.querySelectorAll("[data-kind]")) {
    const name = input.name, kind = input.dataset.kind;
    const raw = input.value;
    if (raw === "") continue;
    if (kind === "boolean") { params[name] = raw === "true"; continue; }
    const text = raw.trim();
    if (kind === "integer" || kind === "number") {
      if (text === "") continue;
      const n = Number(text);
      if (kind === "integer" && !Number.isSafeInteger(n)) throw { field: name, message: "not an integer this page can send exactly (at most 2^53)" };
      if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) throw { field: name, message: `not ${kind === "integer" ? "an integer" : "a number"}` };
      params[name] = n;
    } else if (kind === "json") {
      if (text === "") continue;
      try { params[name] = JSON.parse(text); } catch (e) { throw { field: name, message: "not JSON: " + e.message }; }
    } else params[name] = raw;
  }
  return params;
}

function showError(form, error) {
  const name = error.details && error.details.field;
  const spot = name && form.querySelector(`.field[data-field="${CSS.escape(String(name))}"] .field-error`);
  const text = `${error.code}: ${error.message}`;
  if (spot) { spot.textContent = text; spot.closest(".field").classList.add("bad"); }
  else form.querySelector(".form-error").textContent = text;
}

function capabilityForm(node, cap) {
  const root = cap.params || {};
  const schema = resolve(root, root);
  const required = new Set(schema.required || []);
  const form = el("form", { class: "capability", id: "cap-" + cap.id, "data-capability": cap.id });
  for (const [name, s] of Object.entries(schema.properties || {})) form.append(field(cap.id, name, s, root, required.has(name)));
  const reply = el("pre", { class: "reply", hidden: true });
  form.append(el("div", { class: "actions" }, el("button", { type: "submit", text: "Call " + cap.id })),
    el("p", { class: "form-error", role: "alert" }), reply);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll(".field-error, .form-error")) e.textContent = "";
    for (const f of form.querySelectorAll(".field.bad")) f.classList.remove("bad");
    reply.hidden = true;
    let params;
    try { params = paramsOf(form); } catch (e) { showError(form, { code: "invalid_params", message: e.message, details: { field: e.field } }); return; }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const r = await api("/api/call", { node, capability: cap.id, params });
      if (r.ok) { reply.textContent = JSON.stringify(r.body.reply, null, 2); reply.hidden = false; }
      else showError(form, r.body.error || { code: "http", message: String(r.status) });
    } finally { button.disabled = false; }
  });
  return el("section", { class: "card" },
    el("h2", { text: cap.id }), el("p", { class: "hint", text: cap.description || "" }), form);
}

async function nodePage() {
  const node = document.body.dataset.node;
  const r = await api("/api/map/" + encodeURIComponent(node));
  const problem = document.getElementById("problem");
  if (!r.ok) { problem.textContent = `${r.body.error.code}: ${r.body.error.message}`; problem.hidden = false; return; }
  const caps = Array.isArray(r.body.reply) ? r.body.reply : (r.body.reply.capabilities || []);
  document.getElementById("capabilities").replaceChildren(...caps.map((c) => capabilityForm(node, c)));
}

// ---- live readings -------------------------------------------------------------------

const KEEP = 300;

function readingsPage() {
  const series = new Map(); // standard -> [[t, v], ...]
  let shown = null, drawing = false, lost = 0;
  const svg = document.getElementById("plot");
  const ns = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };

  function draw() {
    drawing = false;
    const pts = series.get(shown) || [];
    svg.replaceChildren();
    svg.dataset.points = String(pts.length);
    svg.dataset.standard = shown || "";
    if (pts.length === 0) return;
    const [w, h, pad] = [600, 300, 40];
    const ts = pts.map((p) => p[0]), vs = pts.map((p) => p[1]);
    let [t0, t1, v0, v1] = [Math.min(...ts), Math.max(...ts), Math.min(...vs), Math.max(...vs)];
    if (t1 === t0) t1 = t0 + 1;
    if (v1 === v0) { v0 -= Math.abs(v0) * 1e-9 || 1e-9; v1 += Math.abs(v1) * 1e-9 || 1e-9; }
    const x = (t) => pad + (t - t0) / (t1 - t0) * (w - 2 * pad), y = (v) => h - pad - (v - v0) / (v1 - v0) * (h - 2 * pad);
    svg.append(svgEl("rect", { x: pad, y: pad, width: w - 2 * pad, height: h - 2 * pad, class: "frame" }));
    svg.append(svgEl("polyline", { points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "), class: "line" }));
    for (const [v, yy] of [[v1, pad], [v0, h - pad]]) {
      const t = svgEl("text", { x: 2, y: yy + 4, class: "axis" }); t.textContent = v.toPrecision(9); svg.append(t);
    }
  }
  const redraw = () => { if (!drawing) { drawing = true; requestAnimationFrame(draw); } };

  function legend() {
    const fig = document.getElementById("legend");
    fig.replaceChildren(...[...series.keys()].map((s) => {
      const b = el("button", { type: "button", class: s === shown ? "on" : "", text: s });
      b.addEventListener("click", () => { shown = s; legend(); redraw(); });
      return b;
    }));
  }

  function latest(std, v, n) {
    const body = document.querySelector("#latest tbody");
    let row = body.querySelector(`tr[data-standard="${CSS.escape(std)}"]`);
    if (!row) { row = el("tr", { "data-standard": std }, el("td", { text: std }), el("td"), el("td")); body.append(row); }
    row.children[1].textContent = String(v);
    row.children[2].textContent = String(n);
  }

  function environment(env) {
    const body = document.querySelector("#environment tbody");
    body.replaceChildren(...Object.entries(env).filter(([, v]) => typeof v === "number")
      .map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: String(v) }))));
  }

  const events = new EventSource("/events?topics=meas");
  events.addEventListener("meas", (ev) => {
    let m; try { m = JSON.parse(ev.data); } catch (e) { return; }
    const v = m["DC-measurement"];
    if (typeof v !== "number" || m.cmd) return;
    const std = String(Array.isArray(m.src) ? m.src[0] : (m.src || m.from));
    const t = typeof m.timestamp === "number" ? m.timestamp : Date.now() / 1000;
    if (!series.has(std)) { series.set(std, []); if (shown === null) shown = std; legend(); }
    const s = series.get(std);
    s.push([t, v]);
    if (s.length > KEEP) s.splice(0, s.length - KEEP);
    latest(std, v, s.length);
    if (m.environment && typeof m.environment === "object") environment(m.environment);
    if (std === shown) redraw();
  });
  events.addEventListener("lost", (ev) => {
    lost += Number(ev.data) || 0;
    document.getElementById("lost").textContent = `${lost} readings went by while this page was behind.`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "nodes") nodesPage();
  else if (page === "node") nodePage();
  else if (page === "readings") readingsPage();
});
