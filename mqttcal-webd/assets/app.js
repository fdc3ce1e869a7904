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

/** A time as `YYYY-MM-DD hh:mm:ss`, local: read the same way in every country. */
const when = (secs) => secs ? new Date(secs * 1000).toLocaleString("sv-SE") : "";

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

/** Whether a value of schema `s` may be a plain string (then unquoted text is sent as one). */
function allowsText(s) {
  const types = [s.type, ...(s.anyOf || []).map((a) => a.type), ...(s.oneOf || []).map((a) => a.type)].flat();
  return types.includes("string");
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
    const text = allowsText(s);
    const example = Array.isArray(s.examples) && s.examples.length ? JSON.stringify(s.examples[0]) : null;
    input = el("textarea", { id, name, rows: 2, placeholder: example ? "for example " + example : text ? "text, or JSON" : "JSON" });
    if (text) input.dataset.text = "1";
    if (example) input.dataset.example = example;
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
  const label = el("label", { for: id }, el("span", { class: "name", text: name.replace(/_/g, " ") + (required ? " *" : "") }));
  let use = null;
  if (input.dataset.example) {
    use = el("button", { type: "button", class: "small example", text: "Use the example" });
    use.addEventListener("click", () => { input.value = input.dataset.example; });
  }
  return el("div", { class: "field", "data-field": name },
    label, input, use,
    s.description ? el("small", { class: "help", text: s.description.replace(/`/g, "") }) : null,
    el("span", { class: "field-error", role: "alert" }));
}

/** The form's parameters, or throws the list of what is wrong: [{field, message}]. */
function paramsOf(form) {
  const params = {}, wrong = [];
  for (const input of form.querySelectorAll("[data-kind]")) {
    const name = input.name, kind = input.dataset.kind;
    const bad = (message) => wrong.push({ field: name, message });
    const raw = input.value;
    if (raw === "") {
      if (input.required) bad("required");
      continue;
    }
    if (kind === "boolean") { params[name] = raw === "true"; continue; }
    const text = raw.trim();
    if (kind === "integer" || kind === "number") {
      const n = Number(text);
      if (text === "" || !Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) bad(`not ${kind === "integer" ? "an integer" : "a number"}`);
      else if (kind === "integer" && !Number.isSafeInteger(n)) bad("not an integer this page can send exactly (at most 2^53)");
      else if (input.min !== "" && n < Number(input.min)) bad(`at least ${input.min}`);
      else if (input.max !== "" && n > Number(input.max)) bad(`at most ${input.max}`);
      else params[name] = n;
    } else if (kind === "json") {
      try { params[name] = JSON.parse(text); } catch (e) {
        if (input.dataset.text) params[name] = raw; else bad("not JSON: " + e.message);
      }
    } else params[name] = raw;
  }
  if (wrong.length) throw wrong;
  return params;
}

function showError(form, error) {
  const name = error.details && error.details.field;
  const spot = name && form.querySelector(`.field[data-field="${CSS.escape(String(name))}"] .field-error`);
  const text = `${error.code}: ${error.message}`;
  if (spot) { spot.textContent = text; spot.closest(".field").classList.add("bad"); }
  else form.querySelector(".form-error").textContent = text;
}

/** Download links for the documents a reply carries (`documents`: `{kind, media_type, content}` in base64). */
function documentsOf(reply) {
  const docs = reply && Array.isArray(reply.documents) ? reply.documents : [];
  const ext = { dcc: "dcc.xml", html: "html", pdf: "pdf" };
  const name = String((reply && reply.number) || "document").replace(/[^A-Za-z0-9._-]/g, "_");
  return docs.filter((d) => typeof d.content === "string").map((d) => {
    const bytes = Uint8Array.from(atob(d.content), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    return el("a", { class: "download", href: url, download: `${name}.${ext[d.kind] || "bin"}`, "data-kind": d.kind, text: `Download ${d.kind}` });
  });
}

/** The reply with long strings (documents' content) cut, to be read on the page. */
function shortened(v) {
  if (typeof v === "string") return v.length > 2000 ? v.slice(0, 200) + `… (${v.length} characters)` : v;
  if (Array.isArray(v)) return v.map(shortened);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shortened(x)]));
  return v;
}

/** Capabilities whose call cannot be taken back: the page asks first. */
const IRREVERSIBLE = ["stop", "cancel", "checkout", "issue", "amend", "authorise"];

/** The capabilities of `node` this person's role may call, or null when ctrld cannot say. */
async function allowedOn(node) {
  const r = await api("/api/allowed/" + encodeURIComponent(node));
  return r.ok && Array.isArray(r.body.reply) ? new Set(r.body.reply) : null;
}

function capabilityForm(node, cap, allowed) {
  const root = cap.params || {};
  const schema = resolve(root, root);
  const required = new Set(schema.required || []);
  // The page checks the values itself, so that every error shows beside its field.
  const form = el("form", { class: "capability", id: "cap-" + cap.id, "data-capability": cap.id, novalidate: true });
  // Required fields first, each group in the schema's order.
  const props = Object.entries(schema.properties || {});
  for (const [name, s] of [...props.filter(([n]) => required.has(n)), ...props.filter(([n]) => !required.has(n))]) {
    form.append(field(cap.id, name, s, root, required.has(name)));
  }
  const reply = el("pre", { class: "reply", hidden: true });
  form.append(el("div", { class: "actions" }, el("button", { type: "submit", text: "Call " + cap.id })),
    el("p", { class: "form-error", role: "alert" }), reply);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll(".field-error, .form-error")) e.textContent = "";
    for (const f of form.querySelectorAll(".field.bad")) f.classList.remove("bad");
    reply.hidden = true;
    let params;
    try { params = paramsOf(form); } catch (wrong) {
      for (const e of wrong) showError(form, { code: "invalid_params", message: e.message, details: { field: e.field } });
      return;
    }
    if (IRREVERSIBLE.includes(cap.id) && !confirm(`${cap.id} on ${node}: this cannot be undone. Go on?`)) return;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const r = await api("/api/call", { node, capability: cap.id, params });
      if (r.ok) {
        const docs = documentsOf(r.body.reply);
        reply.replaceChildren(...docs, document.createTextNode(JSON.stringify(shortened(r.body.reply), null, 2)));
        reply.hidden = false;
        form.dispatchEvent(new Event("called"));
      }
      else showError(form, r.body.error || { code: "http", message: String(r.status) });
    } finally { button.disabled = false; }
  });
  const card = el("section", { class: "card" },
    el("h2", { text: cap.id }), el("p", { class: "hint", text: (cap.description || "").replace(/`/g, "") }), form);
  if (allowed && !allowed.has(cap.id)) {
    // Shown, so that one knows it exists; ctrld would refuse it anyway.
    card.classList.add("not-allowed");
    form.querySelector("button[type=submit]").disabled = true;
    form.before(el("p", { class: "form-error", text: `Your role (${document.body.dataset.role}) may not call this.` }));
  }
  return card;
}

async function nodePage() {
  const node = document.body.dataset.node;
  const r = await api("/api/map/" + encodeURIComponent(node));
  const problem = document.getElementById("problem");
  if (!r.ok) { problem.textContent = `${r.body.error.code}: ${r.body.error.message}`; problem.hidden = false; return; }
  const caps = Array.isArray(r.body.reply) ? r.body.reply : (r.body.reply.capabilities || []);
  const allowed = await allowedOn(node);
  document.getElementById("capabilities").replaceChildren(...caps.map((c) => capabilityForm(node, c, allowed)));
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
    if (pts.length === 0) {
      const t = svgEl("text", { x: 300, y: 150, class: "empty", "text-anchor": "middle" });
      t.textContent = "Waiting for readings on meas…";
      svg.append(t);
      return;
    }
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
    // The time axis: the first and the last reading's time.
    for (const [tt, xx, anchor] of [[t0, pad, "start"], [t1, w - pad, "end"]]) {
      const t = svgEl("text", { x: xx, y: h - pad + 16, class: "axis", "text-anchor": anchor });
      t.textContent = when(tt).slice(11);
      svg.append(t);
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
    const units = { temperature: "°C", humidity: "%", pressure: "hPa" };
    const body = document.querySelector("#environment tbody");
    body.replaceChildren(...Object.entries(env).filter(([, v]) => typeof v === "number")
      .map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: units[k] ? `${v} ${units[k]}` : String(v) }))));
  }

  draw();
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
    latest(std, m.unit ? `${v} ${m.unit}` : v, s.length);
    if (m.environment && typeof m.environment === "object") environment(m.environment);
    if (std === shown) redraw();
  });
  events.addEventListener("lost", (ev) => {
    lost += Number(ev.data) || 0;
    document.getElementById("lost").textContent = `${lost} readings went by while this page was behind.`;
  });
}

// ---- the lab's records --------------------------------------------------------------

/** Calls a node's capability through webd (and so through ctrld). */
const call = (node, capability, params) => api("/api/call", { node, capability, params: params || {} });

/** Shows a failed call in the page's problem line; returns whether the call went well. */
function shown(r) {
  const problem = document.getElementById("problem");
  if (r.ok) return true;
  if (problem) { problem.textContent = `${r.body.error.code}: ${r.body.error.message}`; problem.hidden = false; }
  return false;
}

const date = (secs) => secs ? new Date(secs * 1000).toISOString().slice(0, 10) : "";
const num = (v) => (typeof v === "number" ? String(v) : v === null || v === undefined ? "" : String(v));

/** A table body made of `rows`, each a list of cells (text, or an element). */
function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c instanceof Node ? c : document.createTextNode(num(c)))))));
}

function facts(list) {
  document.getElementById("facts").replaceChildren(...list.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : document.createTextNode(num(v)))]));
}

/** Puts the forms of some of `node`'s capabilities in `holder`; `after` runs after a call that went well. */
async function formsOf(node, ids, holder, after) {
  const r = await api("/api/map/" + encodeURIComponent(node));
  if (!r.ok) { holder.replaceChildren(el("p", { class: "problem", text: `${r.body.error.code}: ${r.body.error.message}` })); return; }
  const caps = (Array.isArray(r.body.reply) ? r.body.reply : []).filter((c) => ids.includes(c.id));
  const allowed = await allowedOn(node);
  holder.replaceChildren(...caps.map((c) => {
    const card = capabilityForm(node, c, allowed);
    if (after) card.querySelector("form").addEventListener("called", after);
    return card;
  }));
}

async function standardsPage() {
  const load = async () => {
    const r = await call("datad", "register", { limit: 1000 });
    if (!shown(r)) return;
    fill(document.querySelector("#register tbody"), r.body.reply.map((e) => {
      const inLab = e.owner === "the lab" || !e.checked_in ? "" : e.checked_out ? "out " + date(e.checked_out) : "in since " + date(e.checked_in);
      let action = "";
      if (e.checked_in && !e.checked_out) {
        action = el("button", { type: "button", class: "small", "data-checkout": e.id, text: "Check out" });
        action.addEventListener("click", async () => {
          if (!confirm(`Check ${e.id} out: it leaves the lab. Go on?`)) return;
          if (shown(await call("cald", "checkout", { id: e.id }))) load();
        });
      }
      return [el("a", { href: "/standards/" + encodeURIComponent(e.id), text: e.id }), e.kind,
        [e.manufacturer, e.model, e.serial && "s/n " + e.serial].filter(Boolean).join(" "), e.owner, date(e.calibration_due), inLab, action];
    }));
  };
  await load();
  formsOf("cald", ["checkin"], document.getElementById("checkin"), load);
}

async function standardPage() {
  const id = document.body.dataset.item;
  const [e, h] = await Promise.all([call("datad", "equipment", { id }), call("datad", "history", { id })]);
  if (!shown(e)) return;
  const x = e.body.reply;
  facts([["Kind", x.kind], ["Item", [x.manufacturer, x.model].filter(Boolean).join(" ")], ["Serial", x.serial], ["Owner", x.owner],
    ["Nominal", x.nominal_value !== undefined && x.nominal_value !== null ? `${x.nominal_value} ${x.unit || ""}` : ""], ["Calibration due", date(x.calibration_due)]]);
  if (!shown(h)) return;
  const hist = h.body.reply;
  fill(document.querySelector("#history tbody"), hist.map((c) => {
    const [value, u] = reported(c.value, c.uncertainty);
    return [date(c.calibrated_at), `${value} ${c.unit}`, `${u} ${c.unit} (k = ${Number(c.coverage_factor).toFixed(2)})`, c.certificate, c.laboratory];
  }));
  drift(document.getElementById("drift"), hist);
}

/** The history with ± U bars and the weighted least-squares line through it. */
function drift(svg, hist) {
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  svg.replaceChildren();
  svg.dataset.points = String(hist.length);
  const caption = document.getElementById("drift-caption");
  if (hist.length === 0) { caption.textContent = "No calibration yet."; svg.hidden = true; return; }
  const [w, h, pad] = [600, 300, 50];
  const ts = hist.map((c) => c.calibrated_at), lo = hist.map((c) => c.value - c.uncertainty), hi = hist.map((c) => c.value + c.uncertainty);
  let [t0, t1, v0, v1] = [Math.min(...ts), Math.max(...ts), Math.min(...lo), Math.max(...hi)];
  if (t1 === t0) { t0 -= 86400; t1 += 86400; }
  if (v1 === v0) { v0 -= 1e-9; v1 += 1e-9; }
  const x = (t) => pad + (t - t0) / (t1 - t0) * (w - 2 * pad), y = (v) => h - pad - (v - v0) / (v1 - v0) * (h - 2 * pad);
  svg.append(mk("rect", { x: pad, y: pad, width: w - 2 * pad, height: h - 2 * pad, class: "frame" }));
  for (const c of hist) {
    svg.append(mk("line", { x1: x(c.calibrated_at), x2: x(c.calibrated_at), y1: y(c.value - c.uncertainty), y2: y(c.value + c.uncertainty), class: "bar" }));
    svg.append(mk("circle", { cx: x(c.calibrated_at), cy: y(c.value), r: 3, class: "point" }));
  }
  if (hist.length >= 2) {
    // Weights 1/u², u = U/k.
    let [sw, st, sv, stt, stv] = [0, 0, 0, 0, 0];
    for (const c of hist) {
      const u = c.uncertainty / (c.coverage_factor || 2), wt = 1 / (u * u), t = (c.calibrated_at - t0) / 86400 / 365.25;
      sw += wt; st += wt * t; sv += wt * c.value; stt += wt * t * t; stv += wt * t * c.value;
    }
    const slope = (sw * stv - st * sv) / (sw * stt - st * st), icept = (sv - slope * st) / sw;
    const at = (t) => icept + slope * ((t - t0) / 86400 / 365.25);
    svg.append(mk("line", { x1: x(t0), x2: x(t1), y1: y(at(t0)), y2: y(at(t1)), class: "line" }));
    caption.textContent = `Drift ${slope.toPrecision(3)} ${hist[0].unit} a year (weighted least squares; tpld's standard report gives its uncertainty).`;
  }
  for (const [v, yy] of [[v1, pad], [v0, h - pad]]) { const t = mk("text", { x: 2, y: yy + 4, class: "axis" }); t.textContent = v.toPrecision(9); svg.append(t); }
}

async function jobsPage() {
  const bars = new Map();
  let reloading = null;
  const load = async () => {
    const [running, all] = await Promise.all([call("cald", "jobs"), call("datad", "jobs", { limit: 100 })]);
    if (shown(running)) {
      fill(document.querySelector("#running tbody"), running.body.reply.map((j) => {
        const bar = el("progress", { max: j.n || 1, value: j.i || 0, "data-job": j.job });
        const label = el("span", { class: "progress-text" });
        bars.set(j.job, [bar, label]);
        const cancel = el("button", { type: "button", class: "small", "data-cancel": j.job, text: j.cancelling ? "Cancelling" : "Cancel" });
        cancel.addEventListener("click", async () => {
          if (!confirm(`Cancel ${j.job}? It stops between readings and stores no result.`)) return;
          if (shown(await call("cald", "cancel", { job: j.job }))) load();
        });
        return [el("a", { href: "/jobs/" + encodeURIComponent(j.job), text: j.job }), j.item, new Date(j.at * 1000).toLocaleString(), el("span", {}, bar, label), cancel];
      }));
    }
    if (shown(all)) {
      fill(document.querySelector("#jobs tbody"), [...all.body.reply].reverse().map((j) =>
        [el("a", { href: "/jobs/" + encodeURIComponent(j.id), text: j.id }), j.item, j.customer, j.procedure, j.status]));
    }
  };
  await load();
  formsOf("cald", ["start"], document.getElementById("start"), load);
  const events = new EventSource("/events?topics=progress");
  events.addEventListener("progress", (ev) => {
    let m; try { m = JSON.parse(ev.data); } catch (e) { return; }
    const b = bars.get(m.job);
    // The lists follow (a new job, a status), at most every 3 s: anyone may publish on
    // `progress`, and a flood of unknown jobs must not become a flood of calls.
    if (!reloading) { reloading = setTimeout(() => { reloading = null; load(); }, b ? 3000 : 500); }
    if (!b) return;
    b[0].max = m.n || 1; b[0].value = m.i || 0;
    b[1].textContent = ` ${m.i}/${m.n} ${m.text || ""}`;
    if (["done", "failed", "cancelled"].includes(m.text)) setTimeout(load, 500);
  });
}

/** A value and its U as stated: U to two significant digits, the value to the same place. */
function reported(value, U) {
  if (!(U > 0) || !Number.isFinite(U) || !Number.isFinite(value)) return [String(value), String(U)];
  let places = 1 - Math.floor(Math.log10(U));
  // 0.0995 rounds to 0.10: two digits, one place fewer.
  if (Math.round(U * Math.pow(10, places)) >= 100) places -= 1;
  if (places >= 0 && places <= 100) return [value.toFixed(places), U.toFixed(places)];
  const step = Math.pow(10, -places);
  return [String(Math.round(value / step) * step), String(Math.round(U / step) * step)];
}

async function jobPage() {
  const job = document.body.dataset.item;
  const [j, r] = await Promise.all([call("datad", "job", { id: job }), call("datad", "results", { id: job })]);
  if (shown(j)) {
    const x = j.body.reply;
    facts([["Item", x.item], ["Customer", x.customer], ["Procedure", x.procedure], ["Status", x.status]]);
  }
  if (shown(r)) {
    document.getElementById("results").replaceChildren(...r.body.reply.map((res) => {
      const [value, u] = reported(res.value, res.expanded_uncertainty);
      const dof = res.effective_dof ? `, ν_eff = ${res.effective_dof > 1e4 ? "more than 10⁴" : Math.floor(res.effective_dof)}` : "";
      const head = el("p", { class: "result", text: `${res.quantity}: ${value} ${res.unit}, U = ${u} ${res.unit} (k = ${res.coverage_factor.toFixed(2)}${dof}; coverage probability about 95 %)` });
      const t = el("table", { class: "budget" }, el("thead", {}, el("tr", {}, ...["Source", "Evaluation", "Value", "u", "Sensitivity", "ν"].map((c) => el("th", { text: c })))), el("tbody"));
      const sig = (x, n) => (typeof x !== "number" ? "" : x === 0 ? "0" : x.toPrecision(n));
      const unit = (b) => (b.unit && b.unit !== "1" ? " " + b.unit : "");
      fill(t.querySelector("tbody"), (res.budget || []).map((b) => [b.source, b.evaluation || "", b.value === undefined || b.value === null ? "" : sig(b.value, 10) + unit(b), sig(b.u, 3) + unit(b), sig(b.sensitivity, 4), b.dof]));
      return el("section", { class: "card" }, head, el("div", { class: "table" }, t));
    }));
    if (r.body.reply.length === 0) document.getElementById("results").textContent = "No result stored (yet).";
  }
  const draft = document.getElementById("draft");
  await formsOf("tpld", ["certificate", "review", "authorise", "issue"], draft);
  // This job, and the person logged in as who reviews or authorises (ctrld forwards a
  // step only in its caller's name).
  for (const cap of ["certificate", "review", "authorise", "issue"]) {
    const field = document.getElementById(`f-${cap}-job`);
    if (field) field.value = job;
    const by = document.getElementById(`f-${cap}-by`);
    if (by) { by.value = document.body.dataset.user; by.readOnly = true; }
  }
}

async function logbookPage() {
  const search = async (ev) => {
    if (ev) ev.preventDefault();
    const params = { limit: 200 };
    const text = document.getElementById("search-text").value, kind = document.getElementById("search-kind").value;
    if (text) params.text = text;
    if (kind) params.kind = kind;
    const r = await call("logd", "search", params);
    if (!shown(r)) return;
    fill(document.querySelector("#entries tbody"), [...r.body.reply].reverse().map((e) => [e.seq, new Date(e.at * 1000).toLocaleString(), e.kind, e.node || e.author || "", e.text]));
  };
  document.getElementById("search").addEventListener("submit", search);
  const write = document.getElementById("write");
  write.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = document.getElementById("entry-text");
    const r = await call("logd", "add", { author: document.body.dataset.user, text: text.value });
    if (r.ok) { text.value = ""; search(); } else showError(write, r.body.error);
  });
  search();
}

async function certificatesPage() {
  const now = Date.now() / 1000;
  const r = await call("datad", "certificates", { since: now - 366 * 86400, until: now + 86400, limit: 1000 });
  if (!shown(r)) return;
  fill(document.querySelector("#certificates tbody"), [...r.body.reply].reverse().map((c) => {
    const links = el("span");
    for (const [kind, label, ext] of [["pdf", "PDF", "pdf"], ["html", "HTML", "html"], ["dcc", "DCC", "dcc.xml"]]) {
      const a = el("a", { class: "download", href: `/download/certificate/${encodeURIComponent(c.number)}/${kind}`, "data-kind": kind, text: label });
      // Fetched first: a document the certificate lacks is said on this page, not shown
      // as an error page of its own.
      a.addEventListener("click", async (ev) => {
        ev.preventDefault();
        const got = await fetch(a.href);
        if (!got.ok) {
          let body; try { body = await got.json(); } catch (e) { body = { error: { code: "http", message: String(got.status) } }; }
          shown({ ok: false, body });
          return;
        }
        const url = URL.createObjectURL(await got.blob());
        const save = el("a", { href: url, download: `${c.number.replace(/[^A-Za-z0-9._-]/g, "_")}.${ext}` });
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      });
      links.append(a, " ");
    }
    return [c.number, date(c.issued_at), el("a", { href: "/jobs/" + encodeURIComponent(c.job), text: c.job }), c.authorised_by, c.replaces || "", links];
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  const pages = { nodes: nodesPage, node: nodePage, readings: readingsPage, standards: standardsPage, standard: standardPage, jobs: jobsPage, job: jobPage, logbook: logbookPage, certificates: certificatesPage };
  const page = pages[document.body.dataset.page];
  if (page) page();
});
