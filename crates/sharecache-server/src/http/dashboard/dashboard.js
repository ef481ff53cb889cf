// sharecache dashboard: reads /ready, /v1/stats and key listings with the admin token.
// Every value from the server is inserted with textContent, never as HTML: keys and
// namespace names are tenant data and may contain markup.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("sharecache-token") || "";
let browsing = null; // { ns, pattern, cursor }
let timer = null;

// The URL fragment (never sent to the server) may carry a token and a namespace to open:
// #token=...&ns=user. The token is moved to session storage and the fragment removed from
// the address bar at once.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  token = fragment.get("token");
  sessionStorage.setItem("sharecache-token", token);
}
const openNs = fragment.get("ns");
if (location.hash) history.replaceState(null, "", location.pathname);

function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function fmtNum(n) { return n == null ? "–" : Number(n).toLocaleString("en-US"); }

function setMessage(text, isError) {
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "muted";
  m.hidden = !text;
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const msg = body.error ? body.error.message : r.statusText;
    const e = new Error(msg);
    e.status = r.status;
    throw e;
  }
  return body;
}

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
  if (!token) return;
  let stats;
  try {
    stats = await api("/v1/stats");
  } catch (e) {
    $("overview").hidden = true;
    setMessage(e.status === 401 || e.status === 403 ? "The token was refused: " + e.message : "Cannot load stats: " + e.message, true);
    return;
  }
  setMessage("", false);
  $("overview").hidden = false;
  $("logout").hidden = false;
  const b = stats.backend || {};
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
    const link = document.createElement("a");
    link.textContent = n.namespace;
    link.addEventListener("click", () => browse(n.namespace, "*"));
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

async function browse(ns, pattern, cursor) {
  browsing = { ns, pattern, cursor: null };
  $("browser").hidden = false;
  $("browser-ns").textContent = ns;
  $("pattern").value = pattern;
  if (!cursor) $("keys").replaceChildren();
  const q = new URLSearchParams({ match: pattern, count: "100" });
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("/v1/cache/" + encodeURIComponent(ns) + "?" + q.toString());
    for (const k of page.keys) {
      const li = document.createElement("li");
      li.textContent = k;
      $("keys").appendChild(li);
    }
    browsing.cursor = page.cursor;
    $("more").hidden = !page.cursor;
  } catch (e) {
    const li = document.createElement("li");
    li.className = "error";
    li.textContent = e.message;
    $("keys").appendChild(li);
  }
}

function start() {
  refreshReady();
  refreshStats();
  if (openNs && token) browse(openNs, "*");
  clearInterval(timer);
  timer = setInterval(() => { refreshReady(); refreshStats(); }, 2000);
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  sessionStorage.setItem("sharecache-token", token);
  start();
});
$("logout").addEventListener("click", () => {
  token = "";
  sessionStorage.removeItem("sharecache-token");
  $("overview").hidden = true;
  $("browser").hidden = true;
  $("logout").hidden = true;
  setMessage("Token forgotten.", false);
});
$("filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (browsing) browse(browsing.ns, $("pattern").value || "*");
});
$("more").addEventListener("click", () => {
  if (browsing && browsing.cursor) browse(browsing.ns, browsing.pattern, browsing.cursor);
});
start();
