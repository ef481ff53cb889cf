// tests/dashboard.rs (primitives_in_chromium) runs this against a served dashboard whose
// namespace `user` holds a lock, a presence member, sessions of ada and bob and a queue
// with a dead letter (see there). The admin sees each view, ends one of ada's sessions
// by its handle and then all of them; a viewer sees the same views with no change
// control, and its forged change is refused. Each step prints "ok <step>".
// Env: BASE, ADMIN, VIEWER (tokens), FENCE (the lock's), SHOTS (a directory, or "").
import { launch } from "./cdp.mjs";

const { BASE, ADMIN, VIEWER, FENCE, SHOTS } = process.env;
const js = JSON.stringify;
const ok = (step) => console.log("ok " + step);
const assert = (cond, what) => { if (!cond) throw new Error("assertion failed: " + what); };
const text = (id) => `(document.getElementById(${js(id)}).textContent || "")`;
const rows = (table) => `[...document.querySelectorAll("#${table} tbody tr")]`;

async function login(page, token, role) {
  await page.goto(BASE + "/#ns=user");
  await page.waitFor(`!document.getElementById("login").hidden`, "the login form");
  await page.eval(`document.getElementById("token").value = ${js(token)}; document.getElementById("login").requestSubmit(); true`);
  await page.waitFor(`document.body.dataset.role === ${js(role)}`, `logged in as ${role}`);
  await page.waitFor(`${text("prim-ns")} === "user" && !document.getElementById("primitives").hidden`, "the primitives of user");
}

// The held lock: its name, a TTL counting down, its fence; no token anywhere on the page.
async function seesLocks(page) {
  await page.waitFor(`${rows("locks-table")}.some((r) => r.dataset.lock === "job:1")`, "the held lock");
  const cells = await page.eval(`${rows("locks-table")}.find((r) => r.dataset.lock === "job:1").innerText`);
  assert(cells.includes(FENCE), "the fence " + FENCE + " in " + cells);
  assert(/\d+ (s|min)/.test(cells), "a TTL left in " + cells);
  ok("locks held with TTL and fence");
}

async function seesPresence(page) {
  await page.waitFor(`${rows("presence-table")}.some((r) => r.dataset.set === "room:1" && r.dataset.member === "ada")`, "ada in room:1");
  const cells = await page.eval(`${rows("presence-table")}.find((r) => r.dataset.member === "ada").innerText`);
  assert(/\d+ (s|min)/.test(cells), "time left in " + cells);
  ok("presence members with time left");
}

// The session count, the users, and ada's sessions by handle (never an id).
async function seesSessions(page) {
  await page.waitFor(`${text("sessions-count")} === "3"`, "3 sessions counted");
  await page.waitFor(`document.querySelector('button.user[data-user="ada"]')`, "ada listed");
  await page.eval(`document.querySelector('button.user[data-user="ada"]').click(); true`);
  await page.waitFor(`${rows("user-sessions")}.length === 2 && ${rows("user-sessions")}.every((r) => /^[0-9a-f]{16}$/.test(r.dataset.handle))`, "ada's two sessions by handle");
  ok("a user's sessions by handle");
}

async function seesDeadLetters(page) {
  await page.waitFor(`document.querySelector('button.queue[data-queue="email"]')`, "the queue listed");
  await page.eval(`document.querySelector('button.queue[data-queue="email"]').click(); true`);
  await page.waitFor(`${rows("dead-table")}.length === 1 && ${text("dead-count")} === "1"`, "one dead letter");
  const payload = await page.eval(`${rows("dead-table")}[0].children[2].textContent`);
  assert(JSON.parse(payload).to === "ada", "the dead letter's payload: " + payload);
  ok("queue dead letters with payloads");
}

// The queue's figures, and its dead letter put back on the queue from the page.
async function requeuesDeadLetter(page) {
  await page.waitFor(`${text("queue-figures")}.includes("dead 1")`, "the queue's figures");
  const before = await page.eval(`${text("queue-figures")}`);
  const ready = Number(/ready (\d+)/.exec(before)[1]);
  const id = await page.eval(`${rows("dead-table")}[0].dataset.id`);
  await page.eval(`${rows("dead-table")}[0].querySelector("button").click(); true`);
  await page.waitFor(`${text("queues-status")}.startsWith(${js("Requeued " + id + " as ")})`, "requeued");
  await page.waitFor(`${text("queue-figures")}.includes("dead 0") && ${text("queue-figures")}.includes("ready " + ${ready + 1})`, "the figures follow");
  await page.waitFor(`${text("dead-table")}.includes("No dead letters.")`, "no dead letter left");
  ok("queue figures, and a dead letter requeued from the page");
}

async function endsOneSession(page) {
  const handle = await page.eval(`${rows("user-sessions")}[0].dataset.handle`);
  await page.eval(`${rows("user-sessions")}[0].querySelector("button.end-session").click(); true`);
  await page.waitFor(`${text("sessions-status")} === ${js("Ended session " + handle + ".")} && ${rows("user-sessions")}.length === 1`, "one session ended");
  assert(await page.eval(`${rows("user-sessions")}[0].dataset.handle`) !== handle, "the other one is left");
  await page.waitFor(`${text("sessions-count")} === "2"`, "the count follows");
  ok("end one session from the page");
}

async function endsAllSessions(page) {
  await page.eval(`document.getElementById("sessions-end-all").click(); true`);
  await page.waitFor(`!document.getElementById("sessions-end-all-confirm").hidden`, "the confirmation");
  await page.eval(`document.getElementById("sessions-end-all-confirm").click(); true`);
  await page.waitFor(`${text("sessions-status")} === "Ended 1 sessions of ada." && ${text("user-sessions")}.includes("ada has no live session.")`, "all ended");
  await page.waitFor(`${text("sessions-count")} === "1"`, "bob's is left");
  ok("end all of a user's sessions from the page");
}

// A keyboard user reaches the views: each control is a labelled, focusable element.
async function labelled(page) {
  const unlabelled = await page.eval(`[...document.querySelectorAll("#primitives input")].filter((i) => !document.querySelector('label[for="' + i.id + '"]')).map((i) => i.id).join(",")`);
  assert(unlabelled === "", "inputs without a label: " + unlabelled);
  const notButtons = await page.eval(`[...document.querySelectorAll("#primitives [data-user], #primitives [data-queue]")].filter((e) => e.tagName !== "BUTTON").length`);
  assert(notButtons === 0, "users and queues are buttons (keyboard-usable)");
  ok("primitives view is labelled and keyboard-usable");
}

async function admin(browser) {
  const page = await browser.newPage();
  await login(page, ADMIN, "admin");
  await seesLocks(page);
  await seesPresence(page);
  await seesSessions(page);
  await seesDeadLetters(page);
  await labelled(page);
  if (SHOTS) {
    await page.eval(`document.getElementById("primitives").scrollIntoView(); true`);
    await page.screenshot(SHOTS + "/dashboard-primitives.png");
  }
  await endsOneSession(page);
  await endsAllSessions(page);
  await requeuesDeadLetter(page);
  assert(page.errors.length === 0, "no script errors: " + page.errors.join("; "));
}

async function viewer(browser) {
  const page = await browser.newPage();
  await login(page, VIEWER, "viewer");
  await seesLocks(page);
  await seesPresence(page);
  await page.waitFor(`${text("sessions-count")} === "1"`, "bob's session counted");
  await page.eval(`document.querySelector('button.user[data-user="bob"]').click(); true`);
  await page.waitFor(`${rows("user-sessions")}.length === 1`, "bob's session");
  const controls = await page.eval(`[...document.querySelectorAll("#primitives button.end-session, #sessions-end-all, #sessions-end-all-confirm")].filter((b) => b.offsetParent !== null).length`);
  assert(controls === 0, "the viewer sees no change control, saw " + controls);
  const handle = await page.eval(`${rows("user-sessions")}[0].dataset.handle`);
  const forged = await page.eval(`fetch("/v1/dashboard/sessions/user/bob/${handle}", { method: "DELETE" }).then((r) => r.status)`);
  assert(forged === 403, "the viewer's forged end is refused: " + forged);
  const all = await page.eval(`fetch("/v1/dashboard/sessions/user/bob", { method: "DELETE" }).then((r) => r.status)`);
  assert(all === 403, "the viewer's forged end-all is refused: " + all);
  ok("viewer sees the views and no change control; forged changes refused");
}

const browser = await launch();
let code = 0;
try {
  for (const step of [admin, viewer]) await step(browser);
} catch (e) {
  console.error(e.stack || String(e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
