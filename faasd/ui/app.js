// faasd's dashboard: hand-written, no build step, no third-party code.
// Every value from the API reaches the page as text (textContent, createElement),
// never as HTML. The admin token lives in this tab's sessionStorage only and is
// sent with each request for data; function calls from the invoke form never carry it.

const TOKEN_KEY = "faasd.token";
const REFRESH_MS = 5000;
const LOG_LINES = 1000;
const BODY_CHARS = 100000;
const SVG_NS = "http://www.w3.org/2000/svg";
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

// -- DOM ---------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const fnLink = (name) => h("a", { href: `#/functions/${enc(name)}`, text: name });
const errorLine = () => h("p", { class: "error", role: "alert" });

function fmt(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (digits === "ms") return value < 10 ? value.toFixed(1) : String(Math.round(value));
  return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

const clock = (unix) => new Date(unix * 1000).toTimeString().slice(0, 5);
const sum = (values) => values.reduce((a, v) => a + (v || 0), 0);
const lastOf = (values) => [...values].reverse().find((v) => v !== null && v !== undefined) ?? null;

// -- API ---------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

// One readable line: the API answers {"error": {"code", "message"}}.
function errorText(err) {
  if (err instanceof ApiError) {
    const where = err.status ? ` (HTTP ${err.status}${err.code ? " " + err.code : ""})` : "";
    return `${err.message}${where}`.replace(/\s+/g, " ");
  }
  return String(err && err.message ? err.message : err).replace(/\s+/g, " ");
}

async function api(path, { login, ...options } = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("Authorization", `Bearer ${login ?? token()}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers, credentials: "omit", cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "", `faasd did not answer: ${err.message}`);
  }
  if (response.ok) return response;
  let code = "";
  let message = `${options.method || "GET"} ${path.split("?")[0]}: ${response.statusText || "failed"}`;
  try {
    const doc = JSON.parse(await response.text());
    code = String(doc.error.code || "");
    message = String(doc.error.message || message);
  } catch {
    // not faasd's JSON error: the status line says it
  }
  if (response.status === 401 && login === undefined) logout("the token was refused");
  throw new ApiError(response.status, code, message);
}

const getJson = async (path, ctx) => (await api(path, { signal: ctx && ctx.signal })).json();

async function postJson(path, body) {
  const response = await api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

// -- charts (SVG) -------------------------------------------------------------

// A bar chart (counts) or a line chart (latencies, with gaps where a minute had no call).
function chart(values, { kind = "line", width = 120, height = 28, label = "", unit = "", start, step, axes } = {}) {
  const pad = axes ? 14 : 2;
  const top = axes ? 10 : 2;
  const numbers = values.filter((v) => v !== null && v !== undefined);
  const max = numbers.length ? Math.max(...numbers) : 0;
  const scale = max > 0 ? max : 1;
  const dx = width / Math.max(values.length, 1);
  const y = (v) => height - pad - (v / scale) * (height - pad - top);
  const digits = unit === "ms" ? "ms" : 0;
  const el = s("svg", { class: `chart ${kind}`, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  el.append(s("title", {}, `${label}: latest ${fmt(lastOf(values), digits)}, max ${fmt(max, digits)} ${unit}`));
  el.append(s("line", { class: "base", x1: 0, x2: width, y1: height - pad + 0.5, y2: height - pad + 0.5 }));
  const at = (i) => (start !== undefined ? `${clock(start + i * step)} ` : "");
  if (kind === "bar") {
    values.forEach((v, i) => {
      if (!v) return;
      const bar = s("rect", { x: i * dx + 0.5, y: y(v), width: Math.max(dx - 1, 1), height: height - pad - y(v) });
      if (axes) bar.append(s("title", {}, `${at(i)}${fmt(v, digits)} ${unit}`));
      el.append(bar);
    });
  } else {
    let d = "";
    values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const x = (i + 0.5) * dx;
      const prev = values[i - 1];
      const next = values[i + 1];
      d += `${prev === null || prev === undefined || i === 0 ? "M" : "L"}${x.toFixed(1)} ${y(v).toFixed(1)} `;
      if ((prev === null || prev === undefined) && (next === null || next === undefined)) {
        el.append(s("circle", { cx: x, cy: y(v), r: 1.5 }));
      }
      if (axes) {
        const dot = s("circle", { class: "hover", cx: x, cy: y(v), r: 3 });
        dot.append(s("title", {}, `${at(i)}${fmt(v, digits)} ${unit}`));
        el.append(dot);
      }
    });
    if (d) el.append(s("path", { d }));
  }
  if (axes) {
    el.append(s("text", { x: 2, y: 8 }, unit === "ms" ? `${fmt(max, digits)} ms` : `max ${fmt(max)}`));
    if (start !== undefined) {
      el.append(s("text", { x: 2, y: height - 2 }, clock(start)));
      el.append(s("text", { x: width - 2, y: height - 2, "text-anchor": "end" }, "now"));
    }
  }
  return el;
}

const SERIES = [
  { key: "calls", title: "Calls/min", kind: "bar", unit: "calls" },
  { key: "p50_ms", title: "p50 latency", kind: "line", unit: "ms" },
  { key: "p99_ms", title: "p99 latency", kind: "line", unit: "ms" },
  { key: "errors", title: "Errors", kind: "bar", unit: "errors" },
  { key: "cold_starts", title: "Cold starts", kind: "bar", unit: "cold starts" },
];

function emptySeries(stats) {
  const n = stats && stats.functions ? Object.values(stats.functions)[0]?.calls.length || 60 : 60;
  const zeros = Array(n).fill(0);
  const nulls = Array(n).fill(null);
  return { calls: zeros, errors: zeros, cold_starts: zeros, p50_ms: nulls, p99_ms: nulls };
}

// -- tables -------------------------------------------------------------------

// columns: [title, (row) => text or Node, optional class]
function table(id, columns, rows, empty) {
  const head = h("tr", {}, columns.map(([title, , cls]) => h("th", { class: cls, text: title })));
  const body = rows.map((row) =>
    h("tr", { "data-name": row.name }, columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row) ?? "–"))),
  );
  if (!rows.length) body.push(h("tr", {}, h("td", { class: "empty", colspan: columns.length, text: empty })));
  return h("table", { id, class: "grid" }, h("thead", {}, head), h("tbody", {}, body));
}

const when = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "–");

// -- pages ----------------------------------------------------------------------

async function functionsPage(page, ctx) {
  const err = errorLine();
  const holder = h("div", { class: "card" });
  const note = h("p", { class: "muted", text: "The last hour, by minute." });
  page.append(h("h1", { text: "Functions" }), note, err, holder);
  ctx.every(err, async () => {
    const [fns, stats] = await Promise.all([getJson("/v1/functions", ctx), getJson("/v1/stats", ctx)]);
    const row = (fn) => ({ ...fn, stats: (stats.functions || {})[fn.name] || emptySeries(stats) });
    const spark = (key, kind, unit, total) => (fn) => {
      const values = fn.stats[key];
      const shown = total ? fmt(sum(values)) : fmt(lastOf(values), unit === "ms" ? "ms" : 0);
      const opts = { kind, unit, label: key, start: stats.start, step: stats.step };
      return h("span", { class: "cell-chart" }, chart(values, opts), h("span", { class: `num ${key}`, text: shown }));
    };
    const columns = [
      ["Function", (fn) => fnLink(fn.name)],
      ["Environment", (fn) => fn.environment],
      ["Calls/min", spark("calls", "bar", "calls", false)],
      ["Calls", (fn) => h("span", { class: "total-calls", text: fmt(sum(fn.stats.calls)) }), "right"],
      ["p50 ms", spark("p50_ms", "line", "ms", false)],
      ["p99 ms", spark("p99_ms", "line", "ms", false)],
      ["Errors", spark("errors", "bar", "errors", true)],
      ["Cold starts", spark("cold_starts", "bar", "cold starts", true)],
    ];
    const rows = fns.items.map(row);
    const grid = table("functions", columns, rows, "No functions yet: create one with New function.");
    const total = (key) => sum(rows.map((r) => sum(r.stats[key])));
    const count = (n, one, many) => `${fmt(n)} ${n === 1 ? one : many}`;
    grid.append(h("tfoot", {}, h("tr", {}, h("th", { text: count(rows.length, "function", "functions") }),
      h("th"), h("th"), h("th", { class: "right", text: fmt(total("calls")) }), h("th"), h("th"),
      h("th", { text: count(total("errors"), "error", "errors") }),
      h("th", { text: count(total("cold_starts"), "cold start", "cold starts") }))));
    holder.replaceChildren(grid);
  });
}

async function functionPage(page, ctx, [name]) {
  const base = `/v1/functions/${enc(name)}`;
  const head = h("h1", {}, h("a", { href: "#/functions", text: "Functions" }), " / ", name);
  const charts = h("div", { class: "charts" });
  const instances = h("div");
  const [chartErr, instErr, settingsErr, codeErr] = [errorLine(), errorLine(), errorLine(), errorLine()];
  const settings = h("div");
  const code = h("pre", { id: "code", class: "code" });
  page.append(
    head,
    h("section", { class: "card" }, h("h2", { text: "Last hour" }), chartErr, charts),
    h("div", { class: "columns" }, invokeCard(name, ctx), logCard(name, ctx)),
    h("section", { class: "card" }, h("h2", { text: "Instances" }), instErr, instances),
    h("div", { class: "columns" },
      h("section", { class: "card" }, h("h2", { text: "Settings" }), settingsErr, settings),
      h("section", { class: "card" }, h("h2", { text: "Code" }), codeErr, code)),
  );
  ctx.every(chartErr, async () => {
    const stats = await getJson(`/v1/stats?function=${enc(name)}`, ctx);
    const series = (stats.functions || {})[name] || emptySeries(stats);
    charts.replaceChildren(
      ...SERIES.map(({ key, title, kind, unit }) => {
        const values = series[key];
        const digits = unit === "ms" ? "ms" : 0;
        const caption = kind === "bar" ? `total ${fmt(sum(values))}` : `latest ${fmt(lastOf(values), digits)} ms`;
        const opts = { kind, unit, label: title, start: stats.start, step: stats.step, axes: true };
        return h("figure", { "data-series": key },
          h("figcaption", {}, h("b", { text: title }), " ", h("span", { class: "muted", text: caption })),
          chart(values, { ...opts, width: 236, height: 90 }));
      }),
    );
  });
  ctx.every(instErr, async () => {
    const doc = await getJson(`${base}/instances`, ctx);
    const columns = [
      ["Instance", (i) => h("code", { text: i.id })],
      ["State", (i) => h("span", { class: `state ${i.state}`, text: i.state })],
      ["In flight", (i) => fmt(i.inflight), "right"],
      ["Calls", (i) => fmt(i.calls), "right"],
      ["Age", (i) => fmtSeconds(i.age_seconds), "right"],
      ["Idle for", (i) => (i.state === "idle" ? fmtSeconds(i.idle_seconds) : "–"), "right"],
    ];
    const empty = "No instance now: the next call specializes one from the environment's pool.";
    instances.replaceChildren(table("instances", columns, doc.instances, empty));
  });
  try {
    const routesOf = `/v1/triggers/http?function=${enc(name)}`;
    const [fn, routes] = await Promise.all([getJson(base, ctx), getJson(routesOf, ctx)]);
    const value = (v) => (v === null || v === "" ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
    const rows = Object.entries(fn).map(([k, v]) => [h("dt", { text: k }), h("dd", { text: value(v) })]);
    const urls = routes.items.map((r) => `${r.method} ${r.url}`).join(", ") || "none";
    rows.push([h("dt", { text: "routes" }), h("dd", { text: urls })]);
    rows.push([h("dt", { text: "direct URL" }), h("dd", { text: `${location.origin}/function/${name}` })]);
    settings.replaceChildren(h("dl", { id: "settings" }, rows));
  } catch (err) {
    if (err.name !== "AbortError") settingsErr.textContent = errorText(err);
  }
  try {
    code.textContent = await (await api(`${base}/code`, { signal: ctx.signal })).text();
  } catch (err) {
    if (err.name !== "AbortError") codeErr.textContent = errorText(err);
  }
}

function invokeCard(name, ctx) {
  const method = h("select", { id: "invoke-method" }, METHODS.map((m) => h("option", { text: m })));
  const path = h("input", { id: "invoke-path", placeholder: "/optional/path?query=1", spellcheck: "false" });
  const headers = h("textarea", { id: "invoke-headers", rows: 2, placeholder: "Name: value", spellcheck: "false" });
  const body = h("textarea", { id: "invoke-body", rows: 4, placeholder: "request body", spellcheck: "false" });
  const err = errorLine();
  const status = h("span", { id: "invoke-status" });
  const requestId = h("code", { id: "invoke-request-id" });
  const took = h("span", { class: "muted" });
  const output = h("pre", { id: "invoke-output", class: "code" });
  const send = h("button", { type: "submit", text: "Send" });
  const result = h("div", { id: "invoke-result", hidden: true },
    h("p", {}, status, " ", took), h("p", {}, "X-Request-Id: ", requestId), output);
  const form = h("form", { id: "invoke", class: "card" },
    h("h2", { text: "Invoke" }),
    h("div", { class: "row" }, method, h("code", { class: "prefix", text: `/function/${name}` }), path),
    h("label", { for: "invoke-headers", text: "Headers, one a line" }), headers,
    h("label", { for: "invoke-body", text: "Body" }), body, send, err, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    err.textContent = "";
    result.hidden = true;
    send.disabled = true;
    try {
      const sent = new Headers();
      headers.value.split("\n").forEach((line, i) => {
        if (!line.trim()) return;
        const colon = line.indexOf(":");
        if (colon < 1) throw new Error(`header line ${i + 1} is not 'Name: value'`);
        sent.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      });
      let suffix = path.value.trim();
      if (suffix && !suffix.startsWith("/") && !suffix.startsWith("?")) suffix = "/" + suffix;
      const hasBody = !["GET", "HEAD"].includes(method.value);
      const started = performance.now();
      // A function call: public, on the same origin, and never with the admin token.
      const response = await fetch(`/function/${enc(name)}${suffix}`, {
        method: method.value, headers: sent, body: hasBody ? body.value : undefined,
        credentials: "omit", cache: "no-store", signal: ctx.signal,
      });
      const text = await response.text();
      status.textContent = `${response.status} ${response.statusText}`;
      status.className = response.ok ? "ok" : "bad";
      const type = response.headers.get("Content-Type") || "no content type";
      took.textContent = `${Math.round(performance.now() - started)} ms, ${type}`;
      requestId.textContent = response.headers.get("X-Request-Id") || "(none)";
      output.textContent = text.length > BODY_CHARS ? text.slice(0, BODY_CHARS) + "\n… (cut)" : text;
      result.hidden = false;
    } catch (e) {
      if (e.name !== "AbortError") err.textContent = errorText(e);
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

function logCard(name, ctx) {
  const lines = [];
  const pre = h("pre", { id: "log", class: "code log" });
  const filter = h("input", { id: "log-filter", placeholder: "filter, e.g. a request id", spellcheck: "false" });
  const state = h("span", { id: "log-state", class: "muted" });
  const err = errorLine();
  const again = h("button", { type: "button", hidden: true, text: "Follow again" });
  const show = () => {
    const needle = filter.value.trim();
    pre.textContent = (needle ? lines.filter((l) => l.includes(needle)) : lines).join("\n");
    pre.scrollTop = pre.scrollHeight;
  };
  filter.addEventListener("input", show);
  const follow = async () => {
    again.hidden = true;
    err.textContent = "";
    lines.length = 0;
    state.textContent = "connecting…";
    try {
      const response = await api(`/v1/functions/${enc(name)}/logs?follow=true&tail=50`, { signal: ctx.signal });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let rest = "";
      state.textContent = "following";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parts = (rest + decoder.decode(value, { stream: true })).split("\n");
        rest = parts.pop();
        lines.push(...parts);
        lines.splice(0, Math.max(0, lines.length - LOG_LINES));
        show();
      }
      if (rest) lines.push(rest);
      show();
      state.textContent = "the log stream ended";
    } catch (e) {
      if (e.name === "AbortError") return;
      err.textContent = errorText(e);
      state.textContent = "";
    }
    again.hidden = false;
  };
  again.addEventListener("click", follow);
  follow();
  return h("section", { class: "card" },
    h("h2", {}, "Log ", state), h("div", { class: "row" }, filter, again), err, pre);
}

async function createPage(page, ctx) {
  const err = errorLine();
  const name = h("input", { id: "create-name", placeholder: "from the file's name", spellcheck: "false" });
  const env = h("select", { id: "create-env", required: true });
  const file = h("input", { id: "create-file", type: "file", required: true });
  const route = h("input", { id: "create-route", type: "checkbox", checked: true });
  const submit = h("button", { type: "submit", text: "Create" });
  // As `faas deploy` names it: the file's stem, lower-case, "_" as "-".
  const stem = () => (file.files[0] ? file.files[0].name.replace(/\.[^.]*$/, "") : "");
  const nameFor = () => name.value.trim() || stem().toLowerCase().replace(/_/g, "-");
  const routeText = h("span");
  const update = () => { routeText.textContent = ` Also route GET /${nameFor() || "NAME"} to it`; };
  name.addEventListener("input", update);
  file.addEventListener("change", () => {
    const ext = (file.files[0]?.name.match(/\.[^.]*$/) || [""])[0];
    const guess = { ".py": "python", ".js": "nodejs", ".mjs": "nodejs", ".cjs": "nodejs" }[ext];
    if (guess && [...env.options].some((o) => o.value === guess)) env.value = guess;
    update();
  });
  update();
  const form = h("form", { id: "create", class: "card narrow" },
    h("label", { for: "create-file", text: "Source file" }), file,
    h("label", { for: "create-name", text: "Name" }), name,
    h("label", { for: "create-env", text: "Environment" }), env,
    h("label", { class: "check" }, route, routeText), submit, err);
  page.append(h("h1", { text: "New function" }),
    h("p", { class: "muted", text: "One source file, as `faas deploy FILE --env ENV` sends it." }), form);
  try {
    const envs = await getJson("/v1/environments", ctx);
    env.replaceChildren(...envs.items.map((e) => h("option", { value: e.name, text: `${e.name} (${e.image})` })));
  } catch (e) {
    if (e.name !== "AbortError") err.textContent = errorText(e);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    err.textContent = "";
    submit.disabled = true;
    try {
      const upload = file.files[0];
      if (!upload) throw new Error("choose a source file");
      let code;
      try {
        code = new TextDecoder("utf-8", { fatal: true }).decode(await upload.arrayBuffer());
      } catch {
        throw new Error(`${upload.name} is not UTF-8 text`);
      }
      const body = { name: nameFor(), environment: env.value, code, filename: upload.name };
      const fn = await postJson("/v1/functions", body);
      if (route.checked) {
        try {
          await postJson("/v1/triggers/http", { method: "GET", url: `/${fn.name}`, function: fn.name });
        } catch (e) {
          err.textContent = `function '${fn.name}' created, but not its route: ${errorText(e)}`;
          return;
        }
      }
      location.hash = `#/functions/${enc(fn.name)}`;
    } catch (e) {
      err.textContent = errorText(e);
    } finally {
      submit.disabled = false;
    }
  });
}

async function listPage(page, ctx, title, sections) {
  page.append(h("h1", { text: title }));
  for (const [heading, path, columns, empty, id] of sections) {
    const err = errorLine();
    const holder = h("div");
    page.append(h("section", { class: "card" }, h("h2", { text: heading }), err, holder));
    ctx.every(err, async () => {
      const doc = await getJson(path, ctx);
      holder.replaceChildren(table(id, columns, doc.items, empty));
    });
  }
}

const routesPage = (page, ctx) =>
  listPage(page, ctx, "Routes", [
    ["HTTP routes", "/v1/triggers/http", [
      ["Method", (r) => r.method], ["URL", (r) => h("code", { text: r.url })], ["Function", (r) => fnLink(r.function)],
      ["Async", (r) => (r.async ? "yes" : "no")], ["Name", (r) => r.name], ["Updated", (r) => when(r.updated_at)],
    ], "No routes. Every function still answers at /function/NAME.", "routes"],
  ]);

const triggersPage = (page, ctx) =>
  listPage(page, ctx, "Triggers", [
    ["Timers", "/v1/timers", [
      ["Name", (t) => t.name], ["Function", (t) => fnLink(t.function)], ["Cron", (t) => h("code", { text: t.cron })],
      ["Time zone", (t) => t.timezone], ["Next run", (t) => when(t.next_run_at)],
      ["Last run", (t) => when(t.last_tick_at)],
    ], "No timers.", "timers"],
    ["Watches", "/v1/watches", [
      ["Name", (w) => w.name], ["Function", (w) => fnLink(w.function)], ["Type", (w) => w.type],
      ["Events", (w) => w.events.join(", ")],
      ["Labels", (w) => Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
    ], "No watches.", "watches"],
    ["Message queues", "/v1/triggers/mq", [
      ["Name", (m) => m.name], ["Function", (m) => fnLink(m.function)], ["Type", (m) => m.mqtype],
      ["Topic", (m) => m.topic], ["Status", (m) => m.status], ["Delivered", (m) => fmt(m.delivered), "right"],
      ["Failed", (m) => fmt(m.failed), "right"], ["Error", (m) => m.error],
    ], "No message-queue triggers.", "mqtriggers"],
  ]);

async function environmentsPage(page, ctx) {
  const err = errorLine();
  const envs = h("div");
  const fns = h("div");
  const more = h("div");
  const version = h("span", { class: "muted" });
  page.append(h("h1", {}, "Environments and pools ", version), err,
    h("section", { class: "card" }, h("h2", { text: "Environments" }), envs),
    h("section", { class: "card" }, h("h2", { text: "Functions' instances" }), fns), more);
  ctx.every(err, async () => {
    const [list, status] = await Promise.all([getJson("/v1/environments", ctx), getJson("/v1/status", ctx)]);
    const pools = Object.fromEntries(status.environments.map((e) => [e.name, e]));
    const rows = list.items.map((e) => ({ ...e, ...(pools[e.name] || {}) }));
    version.textContent = `faasd ${status.version}`;
    envs.replaceChildren(table("environments", [
      ["Name", (e) => e.name], ["Image", (e) => h("code", { text: e.image })], ["Builder", (e) => e.builder || "–"],
      ["Pool size", (e) => fmt(e.poolsize), "right"], ["Ready", (e) => fmt(e.pool_ready), "right"],
      ["Starting", (e) => fmt(e.pool_starting), "right"], ["Specialized", (e) => fmt(e.specialized), "right"],
      ["Last error", (e) => e.last_error || "–"],
    ], rows, "No environments."));
    fns.replaceChildren(table("function-status", [
      ["Function", (f) => fnLink(f.name)], ["Environment", (f) => f.environment],
      ["Instances", (f) => fmt(f.instances), "right"], ["Starting", (f) => fmt(f.starting), "right"],
      ["In flight", (f) => fmt(f.inflight), "right"], ["Waiting", (f) => fmt(f.waiting), "right"],
    ], status.functions, "No functions."));
    const known = new Set(["version", "environments", "functions"]);
    more.replaceChildren(...Object.entries(status).filter(([k, v]) => !known.has(k) && v !== null).map(([k, v]) =>
      h("details", { class: "card" }, h("summary", { text: k }),
        h("pre", { class: "code", text: JSON.stringify(v, null, 2) }))));
  });
}

async function usagePage(page, ctx) {
  const err = errorLine();
  const periods = [["1h", "1 hour"], ["24h", "24 hours"], ["7d", "7 days"], ["30d", "30 days"]];
  const since = h("select", { id: "usage-since" }, periods.map(([v, t]) => h("option", { value: v, text: t })));
  since.value = "24h";
  const holder = h("div", { class: "card" });
  const note = h("span", { class: "muted" });
  page.append(h("h1", { text: "Usage" }), h("p", { class: "row" }, "Since", since, note), err, holder);
  const load = async () => {
    const doc = await getJson(`/v1/usage?since=${enc(since.value)}`, ctx);
    note.textContent = `(from ${when(doc.since)})`;
    const columns = [
      ["Function", (u) => fnLink(u.function)], ["Hour", (u) => when(u.hour)], ["Calls", (u) => fmt(u.calls), "right"],
      ["Billed ms", (u) => fmt(u.billed_ms), "right"], ["GB-seconds", (u) => fmt(u.gb_seconds, 4), "right"],
      ["Instance seconds", (u) => fmt(u.instance_seconds, 1), "right"],
    ];
    const rows = doc.usage.map((u) => ({ ...u, name: u.function }));
    const t = table("usage", columns, rows, "No calls in this period.");
    const total = doc.totals;
    t.append(h("tfoot", {}, h("tr", {}, h("th", { text: "Total" }), h("th"),
      ...[fmt(total.calls), fmt(total.billed_ms), fmt(total.gb_seconds, 4), fmt(total.instance_seconds, 1)].map(
        (v) => h("th", { class: "right", text: v })))));
    holder.replaceChildren(t);
  };
  since.addEventListener("change", () => load().catch((e) => { err.textContent = errorText(e); }));
  ctx.every(err, load);
}

// -- routing, log-in and log-out -------------------------------------------------

const PAGES = {
  functions: (page, ctx, rest) => (rest.length ? functionPage(page, ctx, rest) : functionsPage(page, ctx)),
  new: createPage,
  routes: routesPage,
  triggers: triggersPage,
  environments: environmentsPage,
  usage: usagePage,
};

let current = null; // the shown page's AbortController: stops its refreshes and its log stream

function context(controller) {
  return {
    signal: controller.signal,
    // Run `task` now and again REFRESH_MS after each run ends, until the page goes.
    every(err, task) {
      const run = async () => {
        if (controller.signal.aborted) return;
        try {
          await task();
          err.textContent = "";
        } catch (e) {
          if (e.name === "AbortError" || controller.signal.aborted) return;
          err.textContent = errorText(e);
        }
        if (!controller.signal.aborted) setTimeout(run, REFRESH_MS);
      };
      run();
    },
  };
}

function render() {
  if (current) current.abort();
  current = null;
  if (!token()) {
    $("top").hidden = true;
    $("page").hidden = true;
    $("login-page").hidden = false;
    $("token").focus();
    return;
  }
  $("login-page").hidden = true;
  $("top").hidden = false;
  const page = $("page");
  page.hidden = false;
  page.replaceChildren();
  let parts;
  try {
    parts = (location.hash || "#/functions").replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = ["?"];
  }
  const [name = "functions", ...rest] = parts;
  page.dataset.page = rest.length ? `${name}-one` : name;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  }
  current = new AbortController();
  const show = PAGES[name];
  if (!show) {
    const back = h("a", { href: "#/functions", text: "Functions" });
    page.append(h("h1", { text: "Not found" }), h("p", {}, "No page here. ", back));
    return;
  }
  show(page, context(current), rest);
}

function logout(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  render();
  $("login-error").textContent = message;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("token");
  const given = input.value.trim();
  $("login-error").textContent = "";
  try {
    await api("/v1/status", { login: given });
  } catch (err) {
    $("login-error").textContent = err.status === 401 ? "the token was refused" : errorText(err);
    return;
  }
  input.value = "";
  sessionStorage.setItem(TOKEN_KEY, given);
  render();
});
$("logout").addEventListener("click", () => logout());
window.addEventListener("hashchange", render);
render();
