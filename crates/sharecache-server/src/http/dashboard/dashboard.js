// sharecache dashboard. It logs in once (POST /v1/dashboard/login) and then relies on the
// HttpOnly session cookie: the token is never kept by the page. Every value from the
// server is inserted with textContent, never as HTML: keys and namespace names are
// tenant data and may contain markup. Change controls are shown only where the caller
// may change; the server checks every request anyway.
"use strict";

const $ = (id) => document.getElementById(id);
let me = null;         // { role, name, read, write } once logged in
let browsing = null;   // { ns, pattern, cursor } for search results
let current = null;    // { ns, key, expiresAt } of the open key
let timer = null;
let ttlTimer = null;

// #ns=user opens a namespace's tree once logged in (the fragment never reaches the server).
const fragment = new URLSearchParams(location.hash.slice(1));
const openNs = fragment.get("ns");

function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
function fmtNum(n) { return n == null ? "–" : Number(n).toLocaleString("en-US"); }
function fmtTtl(ms) {
  if (ms == null) return "no expiry";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function setMessage(text, isError) {
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "muted";
  m.hidden = !text;
}

async function api(path, opts) {
  const init = Object.assign({ credentials: "same-origin", headers: {} }, opts || {});
  if (init.json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(init.json);
    delete init.json;
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let body = {};
  try { body = text ? JSON.parse(text) : {}; } catch (_) { body = {}; }
  if (!r.ok) {
    const e = new Error(body.error ? body.error.message : r.statusText);
    e.status = r.status;
    e.code = body.error ? body.error.code : "";
    throw e;
  }
  return body;
}

const enc = encodeURIComponent;
const canWrite = (ns) => me && (me.write === null || me.write.includes(ns));

async function refreshReady() {
  try {
    const r = await fetch("/ready");
    const j = await r.json();
    const pill = $("backend");
    pill.textContent = "backend: " + j.backend + (j.ready ? "" : " (not ready)");
    pill.className = "pill " + (j.ready ? j.backend : "down");
    $("latency").textContent = j.latency_ms == null ? "unreachable" : "ping " + j.latency_ms.toFixed(2) + " ms";
  } catch (e) {
    $("backend").textContent = "backend: service unreachable";
    $("backend").className = "pill down";
  }
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function refreshStats() {
  if (!me) return;
  let stats;
  try {
    stats = await api("/v1/stats");
  } catch (e) {
    if (e.status === 401) return loggedOut("The session has ended; log in again.");
    setMessage("Cannot load stats: " + e.message, true);
    return;
  }
  $("overview").hidden = false;
  const b = stats.backend || {};
  $("cards").hidden = b.keys === undefined;
  $("total-keys").textContent = fmtNum(b.keys);
  $("total-bytes").textContent = fmtBytes(b.bytes);
  $("evictions").textContent = fmtNum(b.evictions);
  $("ns-count").textContent = fmtNum(stats.namespaces.length);
  const body = $("namespaces").querySelector("tbody");
  body.replaceChildren();
  for (const n of stats.namespaces) {
    const tr = document.createElement("tr");
    tr.dataset.ns = n.namespace;
    const name = document.createElement("td");
    const link = document.createElement("button");
    link.className = "link";
    link.textContent = n.namespace;
    link.addEventListener("click", () => openTree(n.namespace));
    name.appendChild(link);
    tr.appendChild(name);
    tr.appendChild(cell(fmtNum(n.keys) + (n.keys_truncated ? "+" : "")));
    tr.appendChild(cell(fmtBytes(n.bytes_estimate)));
    tr.appendChild(cell(n.hit_ratio == null ? "–" : (n.hit_ratio * 100).toFixed(1) + "%"));
    tr.appendChild(cell(n.l1_hit_ratio == null ? "–" : (n.l1_hit_ratio * 100).toFixed(1) + "%"));
    tr.appendChild(cell(fmtNum(n.hits)));
    tr.appendChild(cell(fmtNum(n.misses)));
    tr.appendChild(cell(fmtNum(n.sets)));
    tr.appendChild(cell(n.ops_per_sec.toFixed(1)));
    body.appendChild(tr);
  }
}

// ---- the tree: one level per request, counts per node, "more" follows the cursor ----

function keyItem(ns, key, label) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.className = "link key";
  b.dataset.key = key;
  b.textContent = label;
  b.addEventListener("click", () => showKey(ns, key));
  li.appendChild(b);
  return li;
}

async function loadLevel(ns, prefix, ul, cursor) {
  const q = new URLSearchParams({ prefix });
  if (cursor) q.set("cursor", cursor);
  let page;
  try {
    page = await api("/v1/dashboard/tree/" + enc(ns) + "?" + q);
  } catch (e) {
    const li = document.createElement("li");
    li.className = "error";
    li.textContent = e.message;
    ul.appendChild(li);
    return;
  }
  const old = ul.querySelector(":scope > li.more");
  if (old) old.remove();
  if (!page.nodes.length && !cursor && !page.cursor) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = prefix ? "nothing here any more" : "This namespace holds no keys.";
    ul.appendChild(li);
    return;
  }
  for (const n of page.nodes) {
    // Counts of a node seen in an earlier part of the scan are added up.
    const existing = [...ul.children].find((li) => li.dataset.name === n.name);
    if (existing) {
      existing.dataset.count = Number(existing.dataset.count) + n.count;
      const c = existing.querySelector(".count");
      if (c) c.textContent = fmtNum(existing.dataset.count);
      continue;
    }
    const children = n.count - (n.key ? 1 : 0);
    let li;
    if (children > 0) {
      li = document.createElement("li");
      const b = document.createElement("button");
      b.className = "link node";
      b.setAttribute("aria-expanded", "false");
      b.textContent = "▸ " + n.name + " ";
      const c = document.createElement("span");
      c.className = "count";
      c.textContent = fmtNum(n.count);
      b.appendChild(c);
      const sub = document.createElement("ul");
      sub.hidden = true;
      b.addEventListener("click", () => {
        const open = b.getAttribute("aria-expanded") === "true";
        b.setAttribute("aria-expanded", open ? "false" : "true");
        b.firstChild.textContent = (open ? "▸ " : "▾ ") + n.name + " ";
        sub.hidden = open;
        if (!open && !sub.children.length) loadLevel(ns, n.prefix, sub);
      });
      li.appendChild(b);
      if (n.key) li.appendChild(keyItem(ns, prefix + n.name, "(key)").firstChild);
      li.appendChild(sub);
    } else {
      li = keyItem(ns, prefix + n.name, n.name);
    }
    li.dataset.name = n.name;
    li.dataset.count = n.count;
    ul.appendChild(li);
  }
  sortLevel(ul);
  if (page.cursor) {
    const li = document.createElement("li");
    li.className = "more";
    const b = document.createElement("button");
    b.textContent = "scan more…";
    b.addEventListener("click", () => loadLevel(ns, prefix, ul, page.cursor));
    li.appendChild(b);
    ul.appendChild(li);
  }
}

// Orders one loaded level by name or by count (largest first); "scan more" stays last.
function sortLevel(ul) {
  const byCount = $("sort").value === "count";
  const items = [...ul.children].filter((li) => li.dataset.name !== undefined);
  items.sort((a, b) => byCount
    ? Number(b.dataset.count) - Number(a.dataset.count) || a.dataset.name.localeCompare(b.dataset.name)
    : a.dataset.name.localeCompare(b.dataset.name));
  const more = ul.querySelector(":scope > li.more");
  for (const li of items) ul.appendChild(li);
  if (more) ul.appendChild(more);
}

$("sort").addEventListener("change", () => {
  for (const ul of [$("tree"), ...$("tree").querySelectorAll("ul")]) sortLevel(ul);
});

function openTree(ns) {
  browsing = { ns, pattern: "*", cursor: null };
  current = null;
  $("browser").hidden = false;
  $("browser-ns").textContent = ns;
  $("key").hidden = true;
  $("results").hidden = true;
  $("more").hidden = true;
  $("tree").hidden = false;
  $("tree").replaceChildren();
  $("pattern").value = "*";
  $("bulk").hidden = !canWrite(ns);
  resetBulk();
  loadLevel(ns, "", $("tree"));
  openPrimitives(ns);
}

async function search(pattern, cursor) {
  const ns = browsing.ns;
  browsing.pattern = pattern;
  $("tree").hidden = true;
  $("results").hidden = false;
  if (!cursor) $("results").replaceChildren();
  const q = new URLSearchParams({ match: pattern, count: "100" });
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("/v1/cache/" + enc(ns) + "?" + q);
    for (const k of page.keys) $("results").appendChild(keyItem(ns, k, k));
    browsing.cursor = page.cursor;
    $("more").hidden = !page.cursor;
    if (!cursor && !page.keys.length && !page.cursor) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No key matches.";
      $("results").appendChild(li);
    }
  } catch (e) {
    const li = document.createElement("li");
    li.className = "error";
    li.textContent = e.message;
    $("results").appendChild(li);
  }
}

// ---- one key ----

function keyStatus(text, isError) {
  $("key-status").textContent = text;
  $("key-status").className = isError ? "error" : "muted";
}

async function showKey(ns, key) {
  $("key").hidden = false;
  $("key-name").textContent = key;
  $("key-delete-confirm").hidden = true;
  // Nothing of the previous key stays on screen (or in `current`) while this one loads.
  current = null;
  for (const id of ["key-kind", "key-ttl", "key-size", "key-value"]) $(id).textContent = "";
  $("key-edit").hidden = true;
  $("key-rows").hidden = true;
  keyStatus("", false);
  let v;
  try {
    v = await api("/v1/dashboard/key/" + enc(ns) + "/" + enc(key));
  } catch (e) {
    $("key-value").textContent = "";
    $("key-edit").hidden = true;
    keyStatus(e.message, true);
    return;
  }
  current = { ns, key, expiresAt: v.ttl_ms == null ? null : Date.now() + v.ttl_ms };
  $("key-size").textContent = fmtBytes(v.size);
  const typed = Array.isArray(v.rows);
  if (typed) {
    // A hash, list, set, sorted set or stream another client wrote: a bounded table.
    $("key-kind").textContent = v.kind + " (" + fmtNum(v.length) + (v.truncated ? ", first " + fmtNum(v.rows.length) + " shown" : "") + ")";
    const head = document.createElement("tr");
    for (const c of v.columns) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
    $("key-rows").querySelector("thead").replaceChildren(head);
    const body = $("key-rows").querySelector("tbody");
    body.replaceChildren();
    for (const r of v.rows) {
      const tr = document.createElement("tr");
      for (const c of r) tr.appendChild(cell(c));
      body.appendChild(tr);
    }
    $("key-rows").hidden = false;
  } else {
    $("key-kind").textContent = v.kind === "json" ? "JSON" : "binary (hex)";
    $("key-value").textContent = v.kind === "json" ? JSON.stringify(v.value, null, 2) : v.hex.replace(/(..)/g, "$1 ").trim();
  }
  tickTtl();
  const writable = canWrite(ns);
  $("key-edit").hidden = !writable;
  $("key-value-edit").hidden = typed;
  if (writable) {
    $("key-editor").value = v.kind === "json" ? JSON.stringify(v.value, null, 2) : "";
    $("key-editor").disabled = v.kind !== "json";
    $("key-save").disabled = v.kind !== "json";
    $("key-ttl-input").value = v.ttl_ms == null ? "" : Math.ceil(v.ttl_ms / 1000);
  }
}

function tickTtl() {
  if (!current) return;
  $("key-ttl").textContent = current.expiresAt == null ? "no expiry" : fmtTtl(current.expiresAt - Date.now());
}

async function change(what, path, opts) {
  try {
    await api(path, opts);
    keyStatus(what, false);
    return true;
  } catch (e) {
    keyStatus(e.message, true);
    return false;
  }
}

$("key-save").addEventListener("click", async () => {
  let value;
  try { value = JSON.parse($("key-editor").value); } catch (e) { return keyStatus("Not JSON: " + e.message, true); }
  const { ns, key } = current;
  if (await change("Saved.", "/v1/dashboard/key/" + enc(ns) + "/" + enc(key), { method: "PUT", json: value })) {
    await showKey(ns, key);
    keyStatus("Saved.", false);
  }
});
async function setTtl(ttl, what) {
  const { ns, key } = current;
  const ttl_ms = ttl === null ? null : ttl * 1000;
  if (await change(what, "/v1/cache/" + enc(ns) + "/" + enc(key) + "/_ttl", { method: "PUT", json: { ttl_ms } })) {
    await showKey(ns, key);
    keyStatus(what, false);
  }
}
$("key-ttl-set").addEventListener("click", () => {
  const n = Number($("key-ttl-input").value);
  if (!Number.isInteger(n) || n < 1) return keyStatus("A TTL is a whole number of seconds, at least 1.", true);
  setTtl(n, "TTL set.");
});
$("key-ttl-remove").addEventListener("click", () => setTtl(null, "TTL removed."));
$("key-delete").addEventListener("click", () => {
  $("key-delete-confirm").hidden = false;
  keyStatus("Delete " + current.key + "? Press “Really delete”.", false);
});
$("key-delete-confirm").addEventListener("click", async () => {
  const { ns, key } = current;
  if (await change("Deleted.", "/v1/dashboard/key/" + enc(ns) + "/" + enc(key), { method: "DELETE" })) {
    $("key-edit").hidden = true;
    $("key-value").textContent = "";
    $("key-delete-confirm").hidden = true;
    current = null;
    $("key-ttl").textContent = "";
    for (const b of document.querySelectorAll("button.key")) if (b.dataset.key === key) b.closest("li").remove();
  }
});

// ---- delete by pattern: preview the count, confirm, delete in batches ----

function resetBulk() {
  $("bulk-info").textContent = "";
  $("bulk-sample").replaceChildren();
  $("bulk-confirm").hidden = true;
  $("bulk-cancel").hidden = true;
}

$("bulk").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  resetBulk();
  const pattern = $("bulk-pattern").value.trim();
  if (!pattern) return;
  try {
    const p = await api("/v1/dashboard/match/" + enc(browsing.ns), { method: "POST", json: { pattern } });
    $("bulk-info").textContent = fmtNum(p.keys) + (p.truncated ? "+" : "") + " keys match " + pattern;
    for (const k of p.sample) {
      const li = document.createElement("li");
      li.textContent = k;
      $("bulk-sample").appendChild(li);
    }
    if (p.keys > 0) {
      $("bulk-confirm").textContent = "Delete " + fmtNum(p.keys) + (p.truncated ? "+" : "") + " keys";
      $("bulk-confirm").dataset.pattern = pattern;
      $("bulk-confirm").hidden = false;
      $("bulk-cancel").hidden = false;
    }
  } catch (e) {
    $("bulk-info").textContent = e.message;
  }
});
$("bulk-cancel").addEventListener("click", resetBulk);
$("bulk-confirm").addEventListener("click", async () => {
  const pattern = $("bulk-confirm").dataset.pattern;
  $("bulk-confirm").hidden = true;
  $("bulk-cancel").hidden = true;
  let total = 0;
  // Each call deletes one batch; bounded so a pattern that keeps matching cannot spin.
  for (let i = 0; i < 10000; i++) {
    let r;
    try {
      r = await api("/v1/dashboard/delete/" + enc(browsing.ns), { method: "POST", json: { pattern, confirm: true } });
    } catch (e) {
      $("bulk-info").textContent = "Stopped after " + fmtNum(total) + " keys: " + e.message;
      return;
    }
    total += r.deleted;
    $("bulk-info").textContent = "Deleted " + fmtNum(total) + " keys" + (r.done ? "." : "…");
    if (r.done) break;
  }
  $("bulk-sample").replaceChildren();
  openTreeKeepingBulk();
});
function openTreeKeepingBulk() {
  const info = $("bulk-info").textContent;
  openTree(browsing.ns);
  $("bulk-info").textContent = info;
}

// ---- audit log (admin) ----

async function refreshAudit() {
  if (!me || me.role !== "admin") return;
  let a;
  try { a = await api("/v1/admin/audit"); } catch (_) { return; }
  $("audit").hidden = false;
  const body = $("audit-table").querySelector("tbody");
  body.replaceChildren();
  for (const e of a.entries.slice(0, 50)) {
    const tr = document.createElement("tr");
    tr.appendChild(cell(new Date(e.at_ms).toISOString().replace("T", " ").slice(0, 19)));
    tr.appendChild(cell(e.who));
    tr.appendChild(cell(e.method));
    tr.appendChild(cell(decodeURIComponent(e.path)));
    tr.appendChild(cell(String(e.status)));
    tr.appendChild(cell(e.note || ""));
    body.appendChild(tr);
  }
}

// ---- monitoring: samples kept by the service (GET /v1/admin/monitor), drawn with uPlot ----

const charts = {};
const palette = ["#2563eb", "#15803d", "#b45309", "#b91c1c", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];

function chart(id, series, data, fmt) {
  const el = $(id);
  const width = Math.max(300, el.clientWidth || 500);
  if (charts[id] && charts[id].series.length === series.length + 1) {
    charts[id].setData(data);
    return;
  }
  if (charts[id]) charts[id].destroy();
  charts[id] = new uPlot({
    width, height: 180,
    series: [{}].concat(series.map((label, i) => ({ label, stroke: palette[i % palette.length], width: 2, value: (u, v) => v == null ? "–" : fmt(v) }))),
    axes: [{}, { values: (u, vals) => vals.map(fmt), size: 84 }],
    legend: { live: true },
  }, data, el);
}

async function refreshMonitor() {
  if (!me || me.role === "service" || typeof uPlot === "undefined") return;
  let m;
  try { m = await api("/v1/admin/monitor"); } catch (_) { return; }
  $("monitoring").hidden = false;
  const s = m.samples;
  $("monitor-info").textContent = s.length ? "(" + s.length + " samples, every " + m.interval_secs + " s; backend " + s[s.length - 1].state + ")" : "(the first sample comes in " + m.interval_secs + " s)";
  const xs = s.map((p) => p.at_ms / 1000);
  const pct = (v) => v == null ? null : v * 100;
  chart("chart-ops", ["ops/s"], [xs, s.map((p) => p.ops_per_sec)], (v) => v.toFixed(1));
  chart("chart-hits", ["hit ratio", "L1 hit ratio"], [xs, s.map((p) => pct(p.hit_ratio)), s.map((p) => pct(p.l1_hit_ratio))], (v) => v.toFixed(0) + "%");
  chart("chart-latency", ["p50", "p99"], [xs, s.map((p) => p.p50_ms), s.map((p) => p.p99_ms)], (v) => v.toFixed(2) + " ms");
  chart("chart-bytes", ["memory"], [xs, s.map((p) => p.bytes)], fmtBytes);
  chart("chart-keys", ["keys", "evictions"], [xs, s.map((p) => p.keys), s.map((p) => p.evictions)], fmtNum);
  const names = [...new Set(s.flatMap((p) => Object.keys(p.namespaces)))].sort().slice(0, palette.length);
  // State history: one line per run of the same backend state.
  const runs = [];
  for (const p of s) {
    if (!runs.length || runs[runs.length - 1].state !== p.state) runs.push({ state: p.state, from: p.at_ms, to: p.at_ms });
    else runs[runs.length - 1].to = p.at_ms;
  }
  const hist = $("state-history");
  hist.replaceChildren();
  const hhmm = (ms) => new Date(ms).toISOString().slice(11, 19);
  for (const r of runs.reverse()) {
    const li = document.createElement("li");
    li.textContent = r.state + ": " + hhmm(r.from) + " – " + hhmm(r.to) + " UTC";
    hist.appendChild(li);
  }
  refreshRedisView();
  chart("chart-ns", names, [xs].concat(names.map((n) => s.map((p) => (p.namespaces[n] || [null])[0]))), (v) => v.toFixed(1));
}

async function refreshRedisView() {
  let v;
  try { v = await api("/v1/admin/redis"); } catch (_) { return; }
  $("redis-view").hidden = !v;
  if (!v) return;
  $("clients-count").textContent = fmtNum(v.clients);
  const cb = $("clients").querySelector("tbody");
  cb.replaceChildren();
  for (const [who, n] of Object.entries(v.clients_by_user)) {
    const tr = document.createElement("tr");
    tr.appendChild(cell(who));
    tr.appendChild(cell(fmtNum(n)));
    cb.appendChild(tr);
  }
  const sb = $("slowlog").querySelector("tbody");
  sb.replaceChildren();
  for (const e of v.slowlog) {
    const tr = document.createElement("tr");
    tr.appendChild(cell(new Date(e.at_s * 1000).toISOString().slice(11, 19)));
    tr.appendChild(cell(fmtNum(e.micros)));
    tr.appendChild(cell(e.command));
    tr.appendChild(cell(e.client));
    sb.appendChild(tr);
  }
}

// ---- primitives of a namespace: locks held, presence, sessions, queues ----
// Each list is one bounded page from the server with a cursor ("More" asks for the next).
// Ending sessions is shown only to a caller who may write the namespace; the server
// refuses anyone else (403) anyway.

let prim = null;       // { ns, user } of the open primitives view

function fmtWhen(ms) { return new Date(ms).toISOString().replace("T", " ").slice(0, 19); }
// Whether an answer for `ns` still belongs on screen (the view may have moved on).
const stale = (ns) => !prim || prim.ns !== ns;

async function primPage(path, cursor) {
  const q = new URLSearchParams({ count: "50" });
  if (cursor) q.set("cursor", cursor);
  return api(path + "?" + q);
}

function setMore(id, cursor, load) {
  const b = $(id);
  b.hidden = !cursor;
  b.onclick = cursor ? () => load(cursor) : null;
}

async function loadLocks(cursor) {
  const body = $("locks-table").querySelector("tbody");
  if (!cursor) body.replaceChildren();
  const ns = prim.ns;
  const p = await primPage("/v1/dashboard/locks/" + enc(ns), cursor);
  if (stale(ns)) return;
  for (const l of p.locks) {
    const tr = document.createElement("tr");
    tr.dataset.lock = l.name;
    tr.appendChild(cell(l.name));
    tr.appendChild(cell(fmtTtl(l.ttl_ms)));
    tr.appendChild(cell(String(l.fence)));
    body.appendChild(tr);
  }
  if (!cursor && !p.locks.length) emptyRow(body, 3, "No lock is held.");
  setMore("locks-more", p.cursor, loadLocks);
}

function emptyRow(body, span, text) {
  const tr = document.createElement("tr");
  const td = cell(text);
  td.colSpan = span;
  td.className = "muted";
  tr.appendChild(td);
  body.appendChild(tr);
}

async function loadPresence(cursor) {
  const body = $("presence-table").querySelector("tbody");
  if (!cursor) body.replaceChildren();
  const ns = prim.ns;
  const p = await primPage("/v1/dashboard/presence/" + enc(ns), cursor);
  if (stale(ns)) return;
  for (const set of p.sets) {
    for (const m of set.members) {
      const tr = document.createElement("tr");
      tr.dataset.set = set.name;
      tr.dataset.member = m.member;
      tr.appendChild(cell(set.name));
      tr.appendChild(cell(m.member));
      tr.appendChild(cell(fmtTtl(m.expires_in_ms)));
      body.appendChild(tr);
    }
    if (set.count > set.members.length) emptyRow(body, 3, set.name + ": " + fmtNum(set.count - set.members.length) + " more members");
  }
  if (!cursor && !p.sets.length) emptyRow(body, 3, "Nobody is present.");
  setMore("presence-more", p.cursor, loadPresence);
}

async function loadSessions(cursor) {
  const ul = $("session-users");
  if (!cursor) ul.replaceChildren();
  const ns = prim.ns;
  const p = await primPage("/v1/dashboard/sessions/" + enc(ns), cursor);
  if (stale(ns)) return;
  $("sessions-count").textContent = fmtNum(p.count) + (p.count_truncated ? "+" : "");
  for (const u of p.users.slice().sort()) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.className = "link user";
    b.dataset.user = u;
    b.textContent = u;
    b.addEventListener("click", () => showUserSessions(u));
    li.appendChild(b);
    ul.appendChild(li);
  }
  setMore("users-more", p.cursor, loadSessions);
}

function sessionsStatus(text, isError) {
  $("sessions-status").textContent = text;
  $("sessions-status").className = isError ? "error" : "muted";
}

async function showUserSessions(user) {
  const ns = prim.ns;
  prim.user = user;
  $("user-sessions-view").hidden = false;
  $("user-sessions-name").textContent = user;
  $("sessions-end-all-confirm").hidden = true;
  const body = $("user-sessions").querySelector("tbody");
  body.replaceChildren();
  let r;
  try {
    r = await api("/v1/dashboard/sessions/" + enc(ns) + "/" + enc(user));
  } catch (e) {
    sessionsStatus(e.message, true);
    return;
  }
  if (stale(ns) || prim.user !== user) return;
  const writable = canWrite(prim.ns);
  $("sessions-writer").hidden = !writable || !r.sessions.length;
  for (const s of r.sessions) {
    const tr = document.createElement("tr");
    tr.dataset.handle = s.handle;
    tr.appendChild(cell(s.handle));
    tr.appendChild(cell(fmtWhen(s.created_ms)));
    tr.appendChild(cell(fmtTtl(s.expires_at_ms - Date.now())));
    const td = document.createElement("td");
    if (writable) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "danger end-session";
      b.textContent = "End";
      b.setAttribute("aria-label", "end session " + s.handle + " of " + user);
      b.addEventListener("click", () => endSession(user, s.handle));
      td.appendChild(b);
    }
    tr.appendChild(td);
    body.appendChild(tr);
  }
  if (!r.sessions.length) emptyRow(body, 4, user + " has no live session.");
}

async function endSession(user, handle) {
  try {
    await api("/v1/dashboard/sessions/" + enc(prim.ns) + "/" + enc(user) + "/" + enc(handle), { method: "DELETE" });
  } catch (e) {
    return sessionsStatus(e.message, true);
  }
  await showUserSessions(user);
  sessionsStatus("Ended session " + handle + ".", false);
  loadSessions().catch(() => {});
}

$("sessions-end-all").addEventListener("click", () => {
  $("sessions-end-all-confirm").hidden = false;
  sessionsStatus("End every session of " + prim.user + "? Press “Really end them all”.", false);
});
$("sessions-end-all-confirm").addEventListener("click", async () => {
  const user = prim.user;
  let r;
  try {
    r = await api("/v1/dashboard/sessions/" + enc(prim.ns) + "/" + enc(user), { method: "DELETE" });
  } catch (e) {
    return sessionsStatus(e.message, true);
  }
  await showUserSessions(user);
  sessionsStatus("Ended " + fmtNum(r.ended) + " sessions of " + user + ".", false);
  loadSessions().catch(() => {});
});
$("session-user-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const u = $("session-user").value.trim();
  if (prim && u) showUserSessions(u);
});

async function loadQueues(cursor) {
  const ul = $("queue-list");
  if (!cursor) ul.replaceChildren();
  const ns = prim.ns;
  const p = await primPage("/v1/dashboard/queues/" + enc(ns), cursor);
  if (stale(ns)) return;
  for (const q of p.queues.slice().sort()) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.className = "link queue";
    b.dataset.queue = q;
    b.textContent = q;
    b.addEventListener("click", () => showDead(q));
    li.appendChild(b);
    ul.appendChild(li);
  }
  if (!cursor && !p.queues.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "No queue listed (the memory store lists none): open one by name.";
    ul.appendChild(li);
  }
  setMore("queues-more", p.cursor, loadQueues);
}

async function showDead(queue) {
  const ns = prim.ns;
  $("dead-view").hidden = false;
  $("dead-queue").textContent = queue;
  $("dead-count").textContent = "";
  $("queues-status").textContent = "";
  $("queue-figures").textContent = "";
  const body = $("dead-table").querySelector("tbody");
  body.replaceChildren();
  const base = "/v1/queues/" + enc(ns) + "/" + enc(queue);
  let r, st;
  try {
    [r, st] = await Promise.all([api(base + "/_dead"), api(base + "/_stats")]);
  } catch (e) {
    $("queues-status").textContent = e.message;
    return;
  }
  if (stale(ns) || $("dead-queue").textContent !== queue) return;
  $("queue-figures").textContent =
    "ready " + fmtNum(st.ready) + " · pending " + fmtNum(st.pending) + " · dead " + fmtNum(st.dead);
  // The route answers the oldest 100.
  $("dead-count").textContent = r.messages.length >= 100 ? "100+" : fmtNum(r.messages.length);
  for (const m of r.messages) {
    const tr = document.createElement("tr");
    tr.dataset.id = m.id;
    tr.appendChild(cell(m.id));
    tr.appendChild(cell(fmtNum(m.deliveries)));
    tr.appendChild(cell(JSON.stringify(m.payload)));
    const actions = document.createElement("td");
    // Offered to a role that may change the namespace (the server decides anyway).
    for (const [label, how, path] of canWrite(ns) ? [
      ["Requeue", "POST", "/_requeue"],
      ["Drop", "DELETE", ""],
    ] : []) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.className = label === "Drop" ? "danger" : "";
      b.setAttribute("aria-label", label + " dead letter " + m.id);
      b.addEventListener("click", () => deadLetterAction(queue, m.id, how, base + "/_dead/" + enc(m.id) + path, label));
      actions.appendChild(b);
    }
    tr.appendChild(actions);
    body.appendChild(tr);
  }
  if (!r.messages.length) emptyRow(body, 4, "No dead letters.");
}

async function deadLetterAction(queue, id, method, path, label) {
  let msg;
  try {
    const r = await api(path, { method });
    msg = label === "Requeue" ? "Requeued " + id + " as " + r.id + "." : "Dropped " + id + ".";
  } catch (e) {
    msg = e.message;
  }
  await showDead(queue);
  $("queues-status").textContent = msg;
}
$("queue-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("queue-name").value.trim();
  if (prim && q) showDead(q);
});

async function openPrimitives(ns) {
  prim = { ns, user: null };
  $("primitives").hidden = false;
  $("prim-ns").textContent = ns;
  $("prim-ns-input").value = ns;
  $("user-sessions-view").hidden = true;
  $("dead-view").hidden = true;
  sessionsStatus("", false);
  $("prim-status").textContent = "";
  const loads = [loadLocks(), loadPresence(), loadSessions(), loadQueues()];
  const failed = (await Promise.allSettled(loads)).find((r) => r.status === "rejected");
  $("prim-status").textContent = failed ? failed.reason.message : "";
  $("prim-status").className = failed ? "error" : "muted";
}
$("prim-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const ns = $("prim-ns-input").value.trim();
  if (ns) openPrimitives(ns);
});

// ---- live tail of an event channel (SSE with the session cookie; last 100 events) ----

let source = null;
function stopTail(text) {
  if (source) source.close();
  source = null;
  $("tail-start").hidden = false;
  $("tail-stop").hidden = true;
  if (text !== undefined) $("tail-status").textContent = text;
}
$("tail-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  stopTail();
  const ns = $("tail-ns").value.trim(), channel = $("tail-channel").value.trim();
  if (!ns || !channel) return;
  $("tail-events").replaceChildren();
  source = new EventSource("/v1/events/" + enc(ns) + "/" + enc(channel));
  $("tail-start").hidden = true;
  $("tail-stop").hidden = false;
  $("tail-status").textContent = "connecting…";
  source.onopen = () => { $("tail-status").textContent = "listening on " + ns + "/" + channel; };
  source.onerror = () => { if (source && source.readyState === EventSource.CLOSED) stopTail("refused or closed"); };
  source.onmessage = (m) => {
    const li = document.createElement("li");
    li.textContent = new Date().toISOString().slice(11, 19) + "  " + m.data;
    $("tail-events").prepend(li);
    while ($("tail-events").children.length > 100) $("tail-events").lastChild.remove();
  };
});
$("tail-stop").addEventListener("click", () => stopTail("stopped"));

// ---- doctor (admin): the checks of `sharecache doctor` on the backend ----

$("doctor-run").addEventListener("click", async () => {
  $("doctor-status").textContent = "Running…";
  let r;
  try { r = await api("/v1/admin/doctor"); } catch (e) { $("doctor-status").textContent = e.message; return; }
  const body = $("doctor-table").querySelector("tbody");
  body.replaceChildren();
  for (const c of r.checks) {
    const tr = document.createElement("tr");
    tr.className = "status-" + c.status;
    for (const t of [c.id, c.status, c.message, c.fix]) tr.appendChild(cell(t));
    body.appendChild(tr);
  }
  $("doctor-table").hidden = false;
  const worst = ["fail", "warn", "unknown"].find((s) => r.checks.some((c) => c.status === s)) || "pass";
  $("doctor-status").textContent = r.checks.length + " checks; worst: " + worst;
});

// ---- session ----

function loggedIn(who) {
  me = who;
  $("login").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = who.name;
  $("who-role").textContent = who.role;
  $("who-role").className = "pill role-" + who.role;
  setMessage("", false);
  document.body.dataset.role = who.role;
  refreshReady();
  refreshStats();
  refreshAudit();
  refreshMonitor();
  $("doctor").hidden = me.role !== "admin";
  $("tail").hidden = false;
  $("primitives").hidden = false;
  if (openNs && (me.read === null || me.read.includes(openNs))) openTree(openNs);
  clearInterval(timer);
  timer = setInterval(() => { refreshReady(); refreshStats(); refreshAudit(); refreshMonitor(); }, 5000);
}

function loggedOut(text) {
  me = null;
  clearInterval(timer);
  delete document.body.dataset.role;
  $("login").hidden = false;
  $("who").hidden = true;
  stopTail("");
  for (const id of ["overview", "browser", "audit", "monitoring", "doctor", "tail", "primitives"]) $(id).hidden = true;
  prim = null;
  setMessage(text, false);
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  $("token").value = "";
  try {
    loggedIn(await api("/v1/dashboard/login", { method: "POST", json: { token } }));
  } catch (e) {
    setMessage(e.status === 401 ? "The token was refused." : "Cannot log in: " + e.message, true);
  }
});
$("logout").addEventListener("click", async () => {
  try { await api("/v1/dashboard/logout", { method: "POST" }); } catch (_) { /* the cookie is cleared anyway */ }
  loggedOut("Logged out.");
});
$("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!browsing) return;
  const p = $("pattern").value.trim() || "*";
  if (p === "*") openTree(browsing.ns); else search(p);
});
$("more").addEventListener("click", () => {
  if (browsing && browsing.cursor) search(browsing.pattern, browsing.cursor);
});

ttlTimer = setInterval(tickTtl, 1000);
refreshReady();
api("/v1/dashboard/me").then(loggedIn, () => {});
