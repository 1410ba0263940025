// app.js — the dashboard: four pages over the control API of the
// supervisor that serves it (overview, workflows, one workflow, checker).
// No library and no build step; every text from the API goes into the
// page as text (textContent), never as markup. Live figures are polled
// (see docs/dashboard.md for why not server-sent events).
"use strict";

const POLL_MS = 1000;      // the overview's refresh
const PANEL_MS = 5000;     // the app's panels' refresh
const PAGE = 50;           // workflows per page
const SVGNS = "http://www.w3.org/2000/svg";
const FAULT_KINDS = ["kill", "async_kill", "error", "delay", "peer"];

// ---- small helpers ---------------------------------------------------------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

function fmtInt(n) { return n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"); }

function fmtMs(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function fmtTime(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").replace("Z", "").slice(0, 23);
}

function compact(v) { return v === null || v === undefined ? "" : JSON.stringify(v); }

// A link to a workflow's page; ns null takes "NS/ID" (the checker's way
// of naming one) apart, else the id is in the supervisor's namespace.
function wfLink(ns, id, text) {
  const shown = text || id;
  if (ns === null && id.includes("/")) [ns, id] = [id.slice(0, id.indexOf("/")), id.slice(id.indexOf("/") + 1)];
  const q = ns && ns !== state.namespace ? `?namespace=${encodeURIComponent(ns)}` : "";
  return el("a", { href: `#/workflow/${encodeURIComponent(id)}${q}`, text: shown });
}

function statusBadge(s) { return el("span", { class: `status ${s}`, "data-status": s, text: s }); }

async function api(path, options) {
  const r = await fetch(path, Object.assign({ headers: { Accept: "application/json" },
    cache: "no-store" }, options || {}));
  let body;
  try { body = await r.json(); } catch (e) { throw new Error(`${path}: ${r.status}, not JSON`); }
  if (r.status === 401 && path !== "/v1/login") showLogin();
  if (!r.ok) throw new Error(body && body.error ? body.error : `${path}: ${r.status}`);
  return body;
}

// Over TCP the supervisor asks for its token (API_TOKEN_FILE) once: it
// comes back as an HttpOnly cookie, which this script never sees.
function showLogin() {
  const form = document.getElementById("login");
  if (!form.hidden) return;
  state.locked = true;
  state.page++; // stops the page's polling
  clearTimers();
  form.hidden = false;
  document.getElementById("main").hidden = true;
  document.getElementById("banner").hidden = true;
  setLive(false, "token needed");
  document.getElementById("token").focus();
}

async function login(ev) {
  ev.preventDefault();
  const input = document.getElementById("token"), why = document.getElementById("login-error");
  try {
    await api("/v1/login", { method: "POST", headers: { "Content-Type": "application/json",
      Accept: "application/json" }, body: JSON.stringify({ token: input.value.trim() }) });
  } catch (e) {
    why.textContent = e.message;
    return;
  }
  input.value = "";
  why.textContent = "";
  state.locked = false;
  document.getElementById("login").hidden = true;
  document.getElementById("main").hidden = false;
  await loadApp();
  route();
}

function legend(items) {
  return el("div", { class: "legend" },
    ...items.map(([cls, label]) => el("span", {}, el("i", { class: cls }), label)));
}

// ---- the frame: navigation, liveness, who this is -------------------------

const state = { namespace: "default", app: null, timers: [], page: 0, uptime: 0 };

function setLive(ok, text) {
  if (state.locked) text = "token needed";
  const l = document.getElementById("live");
  l.className = `live ${ok ? "up" : "down"}`;
  l.textContent = text;
  const b = document.getElementById("banner");
  if (ok || state.locked) { b.hidden = true; return; }
  b.hidden = false;
  b.textContent = "The supervisor does not answer (" + text + "). Retrying every second: " +
    "a supervisor killed in a crash test comes back with its workflows.";
}

// Calls fn now and every ms while this page is shown (not while the tab
// is hidden); stops when fn returns false or another page is shown.
function every(ms, fn) {
  const page = state.page, loop = { handle: null };
  state.timers.push(loop);
  const run = async () => {
    if (page !== state.page) return;
    const more = document.hidden ? true : await fn();
    if (more !== false && page === state.page) loop.handle = setTimeout(run, ms);
  };
  run();
}

function clearTimers() {
  for (const loop of state.timers) clearTimeout(loop.handle);
  state.timers = [];
}

async function loadApp() {
  try {
    state.app = await api("/v1/app");
    state.namespace = state.app.namespace;
    document.getElementById("whoami").textContent =
      `app ${state.app.app} · namespace ${state.app.namespace} · ${state.app.state_store}` +
      ` · ${state.app.activity_mode} activities`;
  } catch (e) {
    setLive(false, e.message);
  }
}

function route() {
  clearTimers();
  if (state.locked) return;
  state.page++;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = hash.split("?");
  const q = new URLSearchParams(qs || "");
  const main = document.getElementById("main");
  main.replaceChildren();
  const parts = path.split("/").filter(Boolean);
  const nav = parts[0] === "workflow" ? "workflows" : (parts[0] || "overview");
  for (const a of document.querySelectorAll("header nav a"))
    a.classList.toggle("active", a.dataset.nav === nav);
  main.dataset.page = parts[0] || "overview";
  if (parts[0] === "workflows") return workflowsPage(main, q);
  if (parts[0] === "workflow" && parts[1]) return workflowPage(main, decodeURIComponent(parts[1]), q);
  if (parts[0] === "checker") return checkerPage(main);
  return overviewPage(main);
}

// ---- charts ------------------------------------------------------------------

const CW = 560, CH = 170, PL = 40, PB = 22, PT = 8;

// Stacked bars over time: series = [[cssClass, values[]], ...], one bar
// per second; line = [cssClass, values[]] drawn over them.
const SLOTS = 300; // seconds on a chart's axis, the newest at the right

function timeChart(label, t, series, line) {
  const n = t.length, off = Math.max(SLOTS - n, 0);
  const s = svg("svg", { width: "100%", viewBox: `0 0 ${CW} ${CH}`, role: "img",
    "aria-label": label, "data-chart": label });
  let top = 2;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (const [, v] of series) sum += v[i] || 0;
    top = Math.max(top, sum, line ? line[1][i] || 0 : 0);
  }
  const w = (CW - PL - 6) / Math.max(n, SLOTS), h = CH - PB - PT;
  for (const f of [0.5, 1]) {
    const y = PT + h - h * f;
    s.append(svg("line", { x1: PL, x2: CW - 4, y1: y, y2: y, class: "grid" }));
    s.append(svg("text", { x: PL - 4, y: y + 4, "text-anchor": "end",
      text: fmtInt(Math.round(top * f)) }));
  }
  s.append(svg("line", { x1: PL, x2: CW - 4, y1: PT + h, y2: PT + h, class: "axis" }));
  s.append(svg("line", { x1: PL, x2: PL, y1: PT, y2: PT + h, class: "axis" }));
  for (let i = 0; i < n; i++) {
    let y = PT + h;
    for (const [cls, v] of series) {
      const bh = h * (v[i] || 0) / top;
      if (bh <= 0) continue;
      y -= bh;
      s.append(svg("rect", { x: PL + (off + i) * w, y, width: Math.max(w - 0.5, 1), height: bh,
        class: cls, "data-t": t[i], "data-v": v[i] }));
    }
  }
  if (line) {
    const pts = line[1].map((v, i) => `${PL + (off + i) * w + w / 2},${PT + h - h * (v || 0) / top}`);
    if (pts.length) s.append(svg("polyline", { points: pts.join(" "), class: line[0] }));
  }
  s.append(svg("text", { x: PL, y: CH - 6, text: `${Math.max(n, SLOTS)} s ago` }));
  s.append(svg("text", { x: CW - 4, y: CH - 6, "text-anchor": "end", text: "now" }));
  return s;
}

// ---- overview ------------------------------------------------------------------

function card(key, label, value, cls) {
  return el("div", { class: `card ${cls || ""}` },
    el("div", { class: "n", "data-testid": `count-${key}`, text: fmtInt(value) }),
    el("div", { class: "k", text: label }));
}

function slotsTable(pool) {
  const rows = pool.slots.map((s) => el("tr", { "data-slot": s.slot },
    el("td", { text: s.slot }), el("td", { text: s.state }), el("td", { text: s.pid || "–" }),
    el("td", { text: s.restarts }),
    el("td", {}, s.task ? el("span", {}, wfLink(null, s.task.workflow_id),
      ` step ${s.task.step} ${s.task.activity}, attempt ${s.task.attempt}, ` +
      `${fmtMs(s.task.running_ms)}`) : el("span", { class: "muted", text: "idle" }))));
  const extra = [];
  if (pool.spare) extra.push(`spare worker: ${pool.spare.state}, pid ${pool.spare.pid}, ` +
    `${pool.spare.spawns} started`);
  for (const [k, v] of Object.entries(pool))
    if (k.endsWith("_pid") && v) extra.push(`${k.replace(/_pid$/, "").replace(/_/g, " ")}: pid ${v}`);
  return el("div", {},
    el("table", { "data-testid": "slots" },
      el("thead", {}, el("tr", {}, ...["slot", "state", "pid", "restarts", "current task"]
        .map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows)),
    el("p", { class: "muted", text: extra.join(" · ") }));
}

function faultTable(stats) {
  const kinds = stats.faults.by_kind, pts = stats.faults.kills_by_point;
  return el("table", { "data-testid": "fault-totals" },
    el("thead", {}, el("tr", {}, el("th", { text: "fault" }), el("th", { text: "since start" }))),
    el("tbody", {},
      ...Object.entries(kinds).map(([k, v]) => el("tr", {}, el("td", { text: k }),
        el("td", { "data-fault": k, text: fmtInt(v) }))),
      ...Object.entries(pts).map(([k, v]) => el("tr", {}, el("td", { text: `kill at ${k}` }),
        el("td", { "data-point": k, text: fmtInt(v) })))));
}

// A cell of an app's panel: JSON as compact text, a time (a key ending
// in _at holding Unix milliseconds) as a date.
function cell(key, v) {
  if (typeof v === "object" && v !== null) return el("td", { class: "json", text: compact(v) });
  if (/_at$/.test(key) && typeof v === "number" && v > 1e12) return el("td", { text: fmtTime(v) });
  return el("td", { text: String(v ?? "") });
}

function renderPanel(box, data) {
  box.replaceChildren();
  if (Array.isArray(data)) {
    if (!data.length) return box.append(el("p", { class: "muted", text: "nothing yet" }));
    const cols = Object.keys(data[0]);
    box.append(el("table", {},
      el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { text: c })))),
      el("tbody", {}, ...data.map((row) => el("tr", {}, ...cols.map((c) => cell(c, row[c])))))));
  } else if (data && typeof data === "object") {
    box.append(el("dl", { class: "kv" }, ...Object.entries(data).flatMap(([k, v]) =>
      [el("dt", { text: k }), el("dd", { text: typeof v === "object" ? compact(v) : String(v) })])));
  } else {
    box.append(el("pre", { text: compact(data) }));
  }
}

function overviewPage(main) {
  const cards = el("div", { class: "cards", "data-testid": "cards" });
  const about = el("p", { class: "muted", "data-testid": "about" });
  const charts = el("div", { class: "grid" });
  const tput = el("div", { class: "panel" }, el("h2", { text: "Throughput: workflows closed and attempts per second" }),
    legend([["completed", "completed"], ["lost", "failed"], ["attempts", "attempts (line)"]]),
    el("div", { "data-testid": "chart-throughput" }));
  const faults = el("div", { class: "panel" }, el("h2", { text: "Faults per second, by kind" }),
    legend(FAULT_KINDS.map((k) => [k, k])), el("div", { "data-testid": "chart-faults" }));
  const points = el("div", { class: "panel" }, el("h2", { text: "Kills per second, by crash point" }),
    legend([["before_effect", "before_effect"], ["after_effect", "after_effect"],
      ["after_commit", "after_commit"], ["mid_reply", "mid_reply"]]),
    el("div", { "data-testid": "chart-points" }));
  const totals = el("div", { class: "panel" }, el("h2", { text: "Faults since start" }), el("div"));
  charts.append(tput, faults, points, totals);
  const slots = el("div", { class: "panel" }, el("h2", { text: "Worker slots" }), el("div"));
  const panels = el("div", { class: "grid", "data-testid": "app-panels" });
  main.append(el("h1", { text: "Overview" }), about, cards, el("h2", { text: "The last five minutes" }),
    charts, el("div", { class: "grid" }, slots), panels);

  every(POLL_MS, async () => {
    try {
      const [st, se] = await Promise.all([api("/v1/stats"), api("/v1/series?seconds=300")]);
      const w = st.workflows || {}, since = st.since_start || {};
      cards.replaceChildren(
        card("running", "running", w.running || 0, "running"),
        card("completed", "completed", w.completed || 0, "completed"),
        card("failed", "failed", w.failed || 0, "failed"),
        card("attempts", "attempts (all time)", st.attempts),
        card("retries", "retries since start", since.retries),
        card("restarts", "worker restarts", st.worker_restarts),
        card("queue", "ready, waiting for a worker", st.queue_depth));
      // A new supervisor (a restart, a crash test's kill): its plan anew;
      // and the app, if the first ask failed.
      if (!state.app || st.uptime_ms < state.uptime) {
        await loadApp();
        if (state.app && !panels.childElementCount) addPanels(panels);
      }
      state.uptime = st.uptime_ms;
      const seed = state.app ? state.app.faults.seed : st.fault_seed;
      const plan = { config: "the config's", set: "set at runtime (idemctl faults)",
        off: "off at runtime (idemctl faults)" }[st.faults.plan] || st.faults.plan;
      about.textContent = `up ${fmtMs(st.uptime_ms)} · fault seed ${seed} · fault plan ${plan} · ` +
        `${st.activity_mode} activities · task queue ${st.task_queue}` +
        (st.pruned ? ` · ${fmtInt(st.pruned)} pruned` : "") + (st.stopping ? " · stopping" : "");
      tput.lastChild.replaceChildren(timeChart("throughput", se.t,
        [["s-completed", se.completed], ["s-failed", se.failed]], ["s-attempts", se.attempts]));
      faults.lastChild.replaceChildren(timeChart("faults", se.t,
        FAULT_KINDS.map((k) => [`f-${k}`, se.faults[k] || []])));
      points.lastChild.replaceChildren(timeChart("kill points", se.t,
        Object.keys(se.kills_by_point).map((p) => [`p-${p}`, se.kills_by_point[p]])));
      totals.lastChild.replaceChildren(faultTable(st));
      slots.lastChild.replaceChildren(slotsTable(st.pool));
      setLive(true, `updated ${new Date().toLocaleTimeString("en-GB")}`);
    } catch (e) {
      setLive(false, e.message);
    }
  });

  addPanels(panels);
}

// The app's panels, each refreshed every PANEL_MS.
function addPanels(panels) {
  for (const p of (state.app && state.app.panels) || []) {
    const box = el("div");
    panels.append(el("div", { class: "panel", "data-panel": p.path }, el("h2", { text: p.title }),
      el("p", { class: "muted", text: p.about || p.path }), box));
    every(PANEL_MS, async () => {
      try { renderPanel(box, await api(p.path)); } catch (e) {
        box.replaceChildren(el("p", { class: "error", text: e.message }));
      }
    });
  }
}

// ---- workflows ------------------------------------------------------------------

function workflowsPage(main, q) {
  const status = q.get("status") || "", prefix = q.get("prefix") || "";
  const cursor = q.get("after") || q.get("after_id") || "";
  // The cursors of the pages before this one, "/"-separated: no
  // workflow id holds a "/" (a comma it may).
  const back = (q.get("back") || "").split("/").filter(Boolean);
  const go = (params) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) u.set(k, v);
    location.hash = `#/workflows${u.toString() ? "?" + u : ""}`;
  };
  const filters = ["", "running", "completed", "failed"].map((s) =>
    el("button", { class: !prefix && s === status ? "on" : "", "data-filter": s || "all",
      text: s || "all", onclick: () => go({ status: s }) }));
  const search = el("input", { type: "search", placeholder: "workflow id, or its start",
    value: prefix, "data-testid": "search" });
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") go({ prefix: search.value.trim() });
  });
  const table = el("tbody");
  const info = el("span", { class: "muted" });
  const prev = el("button", { text: "← previous", disabled: back.length === 0 && !cursor,
    "data-testid": "prev" });
  const next = el("button", { text: "next →", disabled: true, "data-testid": "next" });
  main.append(el("h1", { text: "Workflows" }),
    el("div", { class: "toolbar" }, ...filters, search,
      el("button", { text: "search", onclick: () => go({ prefix: search.value.trim() }) })),
    el("table", { "data-testid": "workflows" }, el("thead", {}, el("tr", {},
      ...["workflow", "type", "status", "created", "took", "input", "result or error"]
        .map((h) => el("th", { text: h })))), table),
    el("div", { class: "toolbar" }, prev, next, info));
  prev.addEventListener("click", () => {
    const b = back.slice(0, -1);
    const key = prefix ? "after_id" : "after";
    go({ status, prefix, [key]: back[back.length - 1] || "", back: b.join("/") });
  });

  (async () => {
    const u = new URLSearchParams({ limit: PAGE });
    if (prefix) { u.set("prefix", prefix); if (cursor) u.set("after_id", cursor); }
    else { if (status) u.set("status", status); if (cursor) u.set("after", cursor); }
    try {
      const t0 = performance.now();
      const r = await api(`/v1/workflows?${u}`);
      const ms = performance.now() - t0;
      table.replaceChildren(...r.workflows.map((w) => el("tr", { "data-workflow": w.workflow_id },
        el("td", {}, wfLink(w.namespace, w.workflow_id)), el("td", { text: w.type }),
        el("td", {}, statusBadge(w.status)), el("td", { class: "nowrap", text: fmtTime(w.created_at) }),
        el("td", { class: "nowrap", text: w.closed_at ? fmtMs(w.closed_at - w.created_at) : "–" }),
        el("td", { class: "json", title: compact(w.input), text: compact(w.input) }),
        el("td", { class: "json", title: compact(w.result ?? w.error),
          text: compact(w.result ?? w.error) }))));
      if (!r.workflows.length)
        table.append(el("tr", {}, el("td", { colspan: 7, class: "muted",
          text: prefix ? `no workflow id starts with "${prefix}"` : "no workflows" })));
      info.textContent = `${r.workflows.length} shown · answered in ${Math.round(ms)} ms`;
      const more = prefix ? r.next_after_id : (r.workflows.length === PAGE ? String(r.next_after) : "");
      if (more) {
        next.disabled = false;
        next.addEventListener("click", () => go({ status, prefix,
          [prefix ? "after_id" : "after"]: more, back: [...back, cursor].join("/") }));
      }
    } catch (e) {
      info.textContent = e.message;
      info.className = "error";
    }
  })();
}

// ---- one workflow ---------------------------------------------------------------

const ENDS = new Set(["completed", "failed", "worker_lost", "worker_killed", "timed_out", "attempt_lost"]);

function faultText(d) {
  if (!d) return "";
  let t = d.kind || "fault";
  if (d.point) t += ` at ${d.point}`;
  else if (d.when) t += ` ${d.when}`;
  else if (d.mode) t += ` ${d.mode}`;
  else if (typeof d.ms === "number") t += ` ${fmtMs(d.ms)}`;
  return t;
}

// Gathers the events into steps, each a list of attempts.
function gather(wf, events) {
  const steps = new Map();
  const step = (seq) => {
    if (!steps.has(seq)) steps.set(seq, { seq, activity: "", scheduled: null, attempts: new Map(), notes: [] });
    return steps.get(seq);
  };
  for (const s of wf.steps || []) step(s.seq).activity = s.activity;
  for (const e of events) {
    if (e.step === null || e.step === undefined) continue;
    const s = step(e.step);
    if (e.kind === "scheduled") { s.scheduled = e.ts; if (e.detail && e.detail.activity) s.activity = e.detail.activity; continue; }
    if (e.attempt === null || e.attempt === undefined) { s.notes.push(e); continue; }
    if (!s.attempts.has(e.attempt))
      s.attempts.set(e.attempt, { n: e.attempt, start: null, end: null, pid: e.pid, outcome: "running",
        fault: null, retry: null, heartbeats: [], detail: null });
    const a = s.attempts.get(e.attempt);
    // A step's deadline that passes between attempts is logged with the
    // last attempt's number: the step's note, not that attempt's end.
    if (ENDS.has(e.kind) && a.end) { s.notes.push(e); continue; }
    a.last = e.ts;
    if (e.kind === "started") { a.start = e.ts; a.pid = e.pid; }
    else if (e.kind === "fault_injected") a.fault = e.detail;
    else if (e.kind === "heartbeat") a.heartbeats.push(e.ts);
    else if (e.kind === "retry_scheduled") a.retry = e.detail;
    else if (ENDS.has(e.kind)) { a.end = e.ts; a.outcome = e.kind; a.detail = e.detail; }
    else s.notes.push(e);
  }
  // An attempt of a closed workflow with no end the page knows: its
  // last event ends it, as "unknown" (an event kind newer than the page).
  for (const s of steps.values()) for (const a of s.attempts.values())
    if (!a.end && wf.status !== "running") { a.end = a.last; a.outcome = "unknown"; }
  return [...steps.values()].sort((a, b) => a.seq - b.seq);
}

function timeline(wf, steps, now) {
  const t0 = wf.created_at, t1 = Math.max(wf.closed_at || now, t0 + 1);
  let end = t1;
  for (const s of steps) for (const a of s.attempts.values()) {
    if (a.end) end = Math.max(end, a.end);
    if (a.retry && a.retry.next_attempt_at) end = Math.max(end, a.retry.next_attempt_at);
  }
  const W = 1100, L = 190, R = 20, ROW = 46, top = 24;
  const H = top + ROW * Math.max(steps.length, 1) + 28;
  const x = (ts) => L + (W - L - R) * (ts - t0) / Math.max(end - t0, 1);
  const s = svg("svg", { width: "100%", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "timeline", "data-testid": "timeline" });
  for (let i = 0; i <= 4; i++) {
    const ts = t0 + (end - t0) * i / 4, xx = x(ts);
    s.append(svg("line", { x1: xx, x2: xx, y1: top - 6, y2: H - 24, class: "grid" }));
    s.append(svg("text", { x: xx, y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle",
      text: `+${fmtMs(ts - t0)}` }));
  }
  steps.forEach((st, i) => {
    const y = top + i * ROW;
    s.append(svg("text", { x: 4, y: y + 18, text: `${st.seq} ${st.activity}` }));
    if (st.scheduled) s.append(svg("circle", { cx: x(st.scheduled), cy: y + 14, r: 3, class: "axis" }));
    const atts = [...st.attempts.values()].sort((a, b) => a.n - b.n);
    atts.forEach((a, j) => {
      // No "started" seen (pruned, or lost): after the previous attempt.
      const prev = atts[j - 1];
      const start = a.start || (prev && ((prev.retry && prev.retry.next_attempt_at) || prev.end)) ||
        st.scheduled || t0;
      const stop = a.end || (wf.closed_at ? start : now);
      const bx = x(start), bw = Math.max(x(stop) - bx, 4);
      const g = svg("g", { class: "attempt", "data-step": st.seq, "data-attempt": a.n,
        "data-outcome": a.outcome, "data-fault": a.fault ? faultText(a.fault) : "" });
      g.append(svg("title", { text: `attempt ${a.n}: ${a.outcome}` +
        (a.fault ? `, fault: ${faultText(a.fault)}` : "") + `, took ${fmtMs(stop - start)}` +
        (a.pid ? `, pid ${a.pid}` : "") }));
      g.append(svg("rect", { x: bx, y: y + 6, width: bw, height: 16, rx: 2, class: `o-${a.outcome}` }));
      for (const hb of a.heartbeats)
        g.append(svg("line", { x1: x(hb), x2: x(hb), y1: y + 4, y2: y + 24, class: "hb" }));
      g.append(svg("text", { x: bx, y: y + 36, class: a.fault ? "fault-label" : "",
        text: `#${a.n}` + (a.fault ? ` ${faultText(a.fault)}` : "") }));
      s.append(g);
      const nxt = atts[j + 1];
      if (a.retry && nxt && nxt.start && a.end)
        s.append(svg("line", { x1: x(a.end), x2: x(nxt.start), y1: y + 14, y2: y + 14, class: "retry",
          "data-wait": a.retry.delay_ms }));
    });
  });
  return s;
}

function attemptsTable(wf, steps) {
  const rows = [];
  for (const st of steps) for (const a of [...st.attempts.values()].sort((p, q) => p.n - q.n)) {
    const d = a.detail || {};
    const what = d.result !== undefined ? compact(d.result) :
      d.message ? `${d.error_type || "error"}: ${d.message}` : compact(a.detail);
    rows.push(el("tr", { "data-step": st.seq, "data-attempt": a.n },
      el("td", { text: `${st.seq} ${st.activity}` }), el("td", { text: a.n }),
      el("td", { text: a.start ? `+${fmtMs(a.start - wf.created_at)}` : "–" }),
      el("td", { text: a.start && a.end ? fmtMs(a.end - a.start) : "–" }),
      el("td", { text: a.pid || "–" }), el("td", { text: a.fault ? faultText(a.fault) : "" }),
      el("td", { text: a.outcome }),
      el("td", { text: a.retry ? fmtMs(a.retry.delay_ms) : "" }),
      el("td", { text: a.heartbeats.length || "" }),
      el("td", { class: "json", title: what, text: what })));
  }
  return el("table", { "data-testid": "attempts" }, el("thead", {}, el("tr", {},
    ...["step", "attempt", "at", "took", "pid", "fault", "outcome", "retry wait", "heartbeats", "result or error"]
      .map((h) => el("th", { text: h })))), el("tbody", {}, ...rows));
}

function workflowPage(main, id, q) {
  const ns = q.get("namespace") || "";
  const nsq = ns ? `?namespace=${encodeURIComponent(ns)}` : "";
  main.append(el("h1", {}, "Workflow ", el("span", { "data-testid": "workflow-id", text: id })));
  const body = el("div");
  main.append(body);
  const load = async () => {
    try {
      const h = await api(`/v1/workflows/${encodeURIComponent(id)}/history${nsq}`);
      const wf = h.workflow, steps = gather(wf, h.events);
      body.replaceChildren(
        el("dl", { class: "kv" },
          el("dt", { text: "status" }), el("dd", {}, statusBadge(wf.status)),
          el("dt", { text: "type" }), el("dd", { text: wf.type }),
          el("dt", { text: "namespace" }), el("dd", { text: wf.namespace }),
          el("dt", { text: "created" }), el("dd", { text: fmtTime(wf.created_at) }),
          el("dt", { text: "closed" }), el("dd", { text: wf.closed_at ?
            `${fmtTime(wf.closed_at)} (took ${fmtMs(wf.closed_at - wf.created_at)})` : "still running" })),
        el("div", { class: "grid" },
          el("div", { class: "panel" }, el("h2", { text: "Input" }),
            el("pre", { "data-testid": "input", text: JSON.stringify(wf.input, null, 2) })),
          el("div", { class: "panel" }, el("h2", { text: wf.error ? "Error" : "Result" }),
            el("pre", { "data-testid": "result", text: wf.error ? String(wf.error) :
              wf.result === null ? "(not yet)" : JSON.stringify(wf.result, null, 2) }))),
        el("h2", { text: "Timeline: each step's attempts" }),
        legend([["completed", "completed"], ["failed", "failed (error)"], ["lost", "worker lost or killed"],
          ["timed_out", "timed out"], ["running", "running"], ["wait", "retry wait (dashed)"]]),
        el("div", { class: "panel" }, timeline(wf, steps, Date.now())),
        el("h2", { text: "Attempts" }), attemptsTable(wf, steps),
        el("h2", { text: `Events (${h.events.length})` }),
        el("table", { "data-testid": "events" }, el("thead", {}, el("tr", {},
          ...["id", "at", "step", "attempt", "kind", "pid", "detail"].map((x) => el("th", { text: x })))),
          el("tbody", {}, ...h.events.map((e) => el("tr", { "data-kind": e.kind },
            el("td", { text: e.id }), el("td", { text: `+${fmtMs(e.ts - wf.created_at)}` }),
            el("td", { text: e.step ?? "" }), el("td", { text: e.attempt ?? "" }),
            el("td", { text: e.kind }), el("td", { text: e.pid ?? "" }),
            el("td", { class: "json", title: compact(e.detail), text: compact(e.detail) }))))));
      setLive(true, `updated ${new Date().toLocaleTimeString("en-GB")}`);
      return wf.status === "running";
    } catch (e) {
      body.replaceChildren(el("p", { class: "error", "data-testid": "error", text: e.message }));
      return false;
    }
  };
  // A running workflow is followed until it closes.
  every(POLL_MS, load);
}

// ---- the checker ------------------------------------------------------------------

function checkerPage(main) {
  const out = el("div", { "data-testid": "check-result" });
  const run = el("button", { text: "Run the checker", "data-testid": "run-check" });
  main.append(el("h1", { text: "Checker" }),
    el("p", { class: "muted", text: "Reads the state DB and the app DB and checks the invariants: " +
      "nothing lost, nothing applied twice, every effect matched by a completed workflow." }),
    el("div", { class: "toolbar" }, run), out);
  run.addEventListener("click", async () => {
    run.disabled = true;
    out.replaceChildren(el("p", { class: "muted", text: "checking…" }));
    const t0 = performance.now();
    try {
      const c = await api("/v1/check");
      const n = c.violations.length;
      const total = Object.values(c.counts).reduce((a, b) => a + b, 0);
      const verdict = c.ok ? "OK" : total ? `FAILED — ${total} violation${total === 1 ? "" : "s"}` :
        `not quiescent — ${c.running_workflows.length} workflows still running`;
      setLive(true, `checked ${new Date().toLocaleTimeString("en-GB")}`);
      out.replaceChildren(...[
        el("div", { class: `verdict ${c.ok ? "ok" : "bad"}`, "data-testid": "verdict",
          "data-ok": String(c.ok), text: verdict }),
        el("p", { class: "muted", text: `checked in ${fmtMs(performance.now() - t0)}` }),
        el("h2", { text: "Rules" }),
        el("table", { "data-testid": "rules" }, el("thead", {}, el("tr", {}, el("th", { text: "rule" }),
          el("th", { text: "violations" }))), el("tbody", {}, ...Object.entries(c.counts).map(([k, v]) =>
          el("tr", { "data-rule": k }, el("td", { text: k }),
            el("td", { class: v ? "error" : "", text: fmtInt(v) }))))),
        el("h2", { text: `Violations${n ? ` (${n} listed)` : ""}` }),
        n ? el("table", { "data-testid": "violations" }, el("thead", {}, el("tr", {},
          ...["rule", "what", "workflows"].map((h) => el("th", { text: h })))),
          el("tbody", {}, ...c.violations.map((v) => el("tr", { "data-kind": v.kind },
            el("td", { text: v.kind }), el("td", { text: v.message }),
            el("td", {}, ...v.workflows.flatMap((w, i) => [i ? ", " : "", wfLink(null, w)]))))))
          : el("p", { class: "muted", text: "none" }),
        el("h2", { text: "Totals" }), el("pre", { text: JSON.stringify(c.totals, null, 2) }),
        c.running_workflows.length ? el("p", {}, "Still running: ",
          ...c.running_workflows.slice(0, 50).flatMap((w, i) => [i ? ", " : "", wfLink(null, w)])) : null,
      ].filter(Boolean));
    } catch (e) {
      out.replaceChildren(el("p", { class: "error", text: e.message }));
    }
    run.disabled = false;
  });
}

// ---- start -------------------------------------------------------------------------

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("login").addEventListener("submit", login);
  document.getElementById("signout").addEventListener("click", async () => {
    try {
      await api("/v1/logout", { method: "POST", headers: { "Content-Type": "application/json",
        Accept: "application/json" }, body: "{}" });
    } catch (e) { /* asked no token: nothing to forget */ }
    location.reload();
  });
  await loadApp();
  route();
});
