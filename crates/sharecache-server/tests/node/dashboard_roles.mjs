// tests/dashboard.rs runs this against a served dashboard with seeded keys (see there):
// it logs in as the admin, a viewer and a service in real headless Chromium and drives
// the page. Each step prints "ok <step>"; any failure exits 1 with what the page showed.
// Env: BASE, ADMIN, VIEWER, SERVICE (tokens), SHOTS (a directory for screenshots, or "").
import { launch } from "./cdp.mjs";

const { BASE, ADMIN, VIEWER, SERVICE, SHOTS } = process.env;
const js = JSON.stringify;
const ok = (step) => console.log("ok " + step);
const assert = (cond, what) => { if (!cond) throw new Error("assertion failed: " + what); };

async function login(page, token, role, hash = "") {
  await page.goto(BASE + "/" + hash);
  await page.waitFor(`!document.getElementById("login").hidden`, "the login form");
  await page.eval(`document.getElementById("token").value = ${js(token)}; document.getElementById("login").requestSubmit(); true`);
  await page.waitFor(`document.body.dataset.role === ${js(role)}`, `logged in as ${role}`);
  // The token is nowhere in the page: not in storage, not in a readable cookie, not in the DOM.
  const leaked = await page.eval(`JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + document.documentElement.outerHTML`);
  assert(!leaked.includes(token), "the token stays out of the page");
  assert(!leaked.includes("sharecache_session"), "the session cookie is HttpOnly");
}

const click = (page, selector) => page.eval(`(() => { const e = document.querySelector(${js(selector)}); if (!e) throw new Error("no " + ${js(selector)}); e.click(); return true; })()`);
const keyButton = (key) => `[...document.querySelectorAll("button.key")].find((b) => b.dataset.key === ${js(key)})`;
const text = (id) => `(document.getElementById(${js(id)}).textContent || "")`;

async function openKey(page, key) {
  await page.waitFor(keyButton(key), `key ${key} in the tree`);
  await page.eval(`${keyButton(key)}.click(); true`);
  await page.waitFor(`${text("key-name")} === ${js(key)} && ${text("key-kind")} !== ""`, `key ${key} shown`);
}

async function openNode(page, name) {
  const node = `[...document.querySelectorAll("button.node")].find((b) => b.closest("li").dataset.name === ${js(name)})`;
  await page.waitFor(node, `tree node ${name}`);
  await page.eval(`${node}.click(); true`);
  return node;
}

async function admin(browser) {
  const page = await browser.newPage();
  await login(page, ADMIN, "admin", "#ns=user");
  ok("admin logs in with a session cookie");

  // The tree's first level: nodes with counts, and the plain keys.
  const node = await openNode(page, "profile");
  const count = await page.eval(`${node}.querySelector(".count").textContent`);
  assert(count === "3", "profile holds 3 keys, saw " + count);
  ok("tree shows profile (3)");
  const order = () => page.eval(`[...document.getElementById("tree").children].map((li) => li.dataset.name).filter(Boolean).join(",")`);
  const byName = await order();
  await page.eval(`(() => { const s = document.getElementById("sort"); s.value = "count"; s.dispatchEvent(new Event("change")); return true; })()`);
  const byCount = await order();
  assert(byCount.startsWith("session,profile"), "by count, largest first: " + byCount + " (by name: " + byName + ")");
  await page.eval(`(() => { const s = document.getElementById("sort"); s.value = "name"; s.dispatchEvent(new Event("change")); return true; })()`);
  assert(await order() === byName, "back to by name");
  ok("tree sorts by name or count");

  await openNode(page, "cart");
  await openKey(page, "cart:1");
  await page.waitFor(`!document.getElementById("key-rows").hidden && document.querySelectorAll("#key-rows tbody tr").length === 2`, "the hash as a table");
  assert(await page.eval(text("key-kind")) === "hash (2)", "the hash's kind and length");
  assert(await page.eval(`document.getElementById("key-value-edit").hidden`), "no value editor for a hash");
  ok("a hash is shown as a table");

  await openKey(page, "profile:1");
  const shown = await page.eval(text("key-value"));
  assert(JSON.parse(shown).name === "Ada", "pretty JSON value: " + shown);
  assert(shown.includes("\n  "), "the value is indented");
  const ttl = await page.eval(text("key-ttl"));
  assert(/min|s$/.test(ttl) && ttl !== "no expiry", "a TTL counting down: " + ttl);
  ok("key view shows JSON, TTL and size");

  await page.eval(`document.getElementById("key-editor").value = ${js(JSON.stringify({ name: "Ada Lovelace", edited: true }))}; true`);
  await click(page, "#key-save");
  await page.waitFor(`${text("key-status")} === "Saved." && ${text("key-value")}.includes("Lovelace")`, "the edit saved");
  ok("edit a JSON value");

  await openKey(page, "profile:2");
  await page.eval(`document.getElementById("key-ttl-input").value = "500"; true`);
  await click(page, "#key-ttl-set");
  await page.waitFor(`${text("key-status")} === "TTL set." && /^8 min/.test(${text("key-ttl")})`, "the TTL set to 500 s");
  ok("edit a TTL");

  await openKey(page, "profile:3");
  await click(page, "#key-delete");
  await page.waitFor(`!document.getElementById("key-delete-confirm").hidden`, "a confirmation");
  await click(page, "#key-delete-confirm");
  await page.waitFor(`${text("key-status")} === "Deleted." && !(${keyButton("profile:3")})`, "the key deleted");
  ok("delete a key");

  await page.eval(`document.getElementById("bulk-pattern").value = "session:*"; document.getElementById("bulk").requestSubmit(); true`);
  await page.waitFor(`${text("bulk-info")} === "30 keys match session:*" && document.querySelectorAll("#bulk-sample li").length === 20`, "the preview");
  assert(await page.eval(text("bulk-confirm")) === "Delete 30 keys", "the confirm button says how many");
  await click(page, "#bulk-confirm");
  await page.waitFor(`${text("bulk-info")} === "Deleted 30 keys."`, "the bulk delete");
  ok("bulk delete with preview and confirm");

  await page.eval(`refreshAudit().then(() => true)`);
  await page.waitFor(`document.querySelectorAll("#audit-table tbody tr").length >= 4`, "audit rows");
  const audit = await page.eval(`document.getElementById("audit-table").innerText`);
  assert(audit.includes("deleted 30 keys") && audit.includes("admin"), "the audit log: " + audit);
  ok("audit log shows the changes");

  await click(page, "#doctor-run");
  await page.waitFor(`/checks; worst: /.test(${text("doctor-status")}) && document.querySelectorAll("#doctor-table tbody tr").length > 3`, "the doctor's checks");
  const maxmem = await page.eval(`[...document.querySelectorAll("#doctor-table tbody tr")].map((r) => r.innerText).find((t) => t.startsWith("maxmemory")) || ""`);
  assert(maxmem.length > 0, "a maxmemory check");
  ok("doctor report");

  // A key holding markup stays text.
  await openNode(page, "profile");
  if (SHOTS) {
    await openKey(page, "profile:1");
    await page.screenshot(SHOTS + "/dashboard-admin.png");
  }
  assert(page.errors.length === 0, "no script errors: " + page.errors.join("\n"));

  await click(page, "#logout");
  await page.waitFor(`!document.getElementById("login").hidden`, "logged out");
  const after = await page.eval(`fetch("/v1/dashboard/me").then((r) => r.status)`);
  assert(after === 401, "after logout the cookie is worth nothing: " + after);
  ok("logout ends the session");
}

async function viewer(browser) {
  const page = await browser.newPage();
  await login(page, VIEWER, "viewer", "#ns=user");
  await page.waitFor(`document.querySelector('tr[data-ns="auth"]') && document.querySelector('tr[data-ns="user"]')`, "every namespace");
  await openNode(page, "profile");
  await openKey(page, "profile:1");
  const controls = await page.eval(`[...document.querySelectorAll("button, textarea, input")].filter((e) => e.offsetParent !== null).map((e) => e.id || e.textContent)`);
  for (const c of controls) {
    assert(!/save|delete|ttl|bulk|editor/i.test(c), "a viewer sees no change control, saw " + c);
  }
  assert(await page.eval(`document.getElementById("doctor").hidden`), "the doctor is the admin's");
  ok("viewer sees every namespace and no change controls");
  // Forged from the page itself (same origin, the viewer's cookie): the server refuses.
  const forged = await page.eval(`fetch("/v1/dashboard/key/user/profile%3A1", { method: "PUT", headers: { "Content-Type": "application/json" }, body: "1" }).then(async (r) => [r.status, await r.text()])`);
  assert(forged[0] === 403 && forged[1].includes("forbidden"), "forged change refused: " + forged);
  ok("viewer's forged change refused by the server");
  await page.waitFor(`!document.getElementById("monitoring").hidden && document.querySelectorAll("#charts .uplot canvas").length === 6`, "six charts");
  const legend = await page.eval(`document.getElementById("charts").innerText`);
  assert(legend.includes("ops/s") && legend.includes("hit ratio") && legend.includes("p99") && legend.includes("user"), "chart legends: " + legend);
  const info = await page.eval(text("monitor-info"));
  assert(/^\(2 samples, every 10 s/.test(info), "two samples: " + info);
  ok("charts render with data");
  await page.waitFor(`!document.getElementById("redis-view").hidden && document.querySelectorAll("#clients tbody tr").length > 0`, "clients and slow log");
  const states = await page.eval(`document.getElementById("state-history").innerText`);
  assert(/^connected: /.test(states), "the backend state history: " + states);
  assert(/^[1-9]/.test(await page.eval(text("clients-count"))), "a client count");
  ok("backend state, clients and slow log");
  if (SHOTS) {
    await page.eval(`document.getElementById("monitoring").scrollIntoView(); true`);
    await page.screenshot(SHOTS + "/dashboard-charts.png");
    await page.eval(`document.getElementById("browser").scrollIntoView(); true`);
    await page.screenshot(SHOTS + "/dashboard-viewer.png");
  }
}

async function service(browser) {
  const page = await browser.newPage();
  await login(page, SERVICE, "service");
  await page.waitFor(`document.querySelector('tr[data-ns="user"]')`, "its namespaces");
  const rows = await page.eval(`[...document.querySelectorAll("#namespaces tbody tr")].map((r) => r.dataset.ns).sort().join(",")`);
  assert(rows === "shared,user", "a service sees only its namespaces: " + rows);
  assert(await page.eval(`document.getElementById("cards").hidden`), "no store-wide figures for a service");
  assert(await page.eval(`document.getElementById("monitoring").hidden`), "no service-wide charts for a service");
  const other = await page.eval(`fetch("/v1/dashboard/tree/auth").then((r) => r.status)`);
  assert(other === 403, "another namespace's tree is refused: " + other);
  ok("service token sees only its namespaces");

  // A live tail with the session cookie; publishing from the page too (same origin).
  await page.eval(`document.getElementById("tail-ns").value = "user"; document.getElementById("tail-channel").value = "news"; document.getElementById("tail-form").requestSubmit(); true`);
  await page.waitFor(`${text("tail-status")} === "listening on user/news"`, "the tail connected");
  for (let i = 1; i <= 3; i++) {
    const st = await page.eval(`fetch("/v1/events/user/news", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ n: ${i} }) }).then((r) => r.status)`);
    assert(st === 200, "publish with the cookie: " + st);
  }
  await page.waitFor(`document.querySelectorAll("#tail-events li").length === 3`, "three events");
  const first = await page.eval(`document.querySelector("#tail-events li").textContent`);
  assert(first.endsWith('{"n":3}'), "newest first: " + first);
  await page.eval(`document.getElementById("tail-ns").value = "auth"; document.getElementById("tail-form").requestSubmit(); true`);
  await page.waitFor(`${text("tail-status")} === "refused or closed"`, "another namespace's channel refused");
  ok("live tail of a channel");
}

async function refused(browser) {
  const page = await browser.newPage();
  await page.goto(BASE + "/");
  await page.waitFor(`!document.getElementById("login").hidden`, "the login form");
  await page.eval(`document.getElementById("token").value = "sc_wrong"; document.getElementById("login").requestSubmit(); true`);
  await page.waitFor(`${text("message")} === "The token was refused."`, "the refusal");
  assert(await page.eval(`document.getElementById("overview").hidden`), "no data shown");
  ok("a wrong token is refused");
}

const browser = await launch();
let code = 0;
try {
  for (const step of [admin, viewer, service, refused]) await step(browser);
} catch (e) {
  console.error(e.stack || String(e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
