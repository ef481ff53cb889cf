// A small Chrome DevTools Protocol driver over --remote-debugging-pipe (no npm package):
// launch the system Chromium headless, open pages in their own browser contexts (own
// cookies), evaluate script, wait for a condition (bounded), take screenshots.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function launch(binary = process.env.CHROMIUM || "chromium") {
  const profile = mkdtempSync(join(tmpdir(), "sc-cdp-"));
  const child = spawn(binary, [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900", "--remote-debugging-pipe", `--user-data-dir=${profile}`, "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr = (stderr + d).slice(-4000); });
  const write = child.stdio[3];
  const read = child.stdio[4];
  let id = 0;
  const pending = new Map();
  const listeners = [];
  let buf = Buffer.alloc(0);
  read.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    let i;
    while ((i = buf.indexOf(0)) >= 0) {
      const msg = JSON.parse(buf.subarray(0, i).toString("utf8"));
      buf = buf.subarray(i + 1);
      if (msg.id !== undefined && pending.has(msg.id)) {
        const { resolve, reject } = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) reject(new Error(JSON.stringify(msg.error))); else resolve(msg.result);
      } else {
        for (const l of listeners) l(msg);
      }
    }
  });
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const m = { id: ++id, method, params };
    if (sessionId) m.sessionId = sessionId;
    pending.set(m.id, { resolve, reject });
    write.write(JSON.stringify(m) + "\0");
  });
  const exited = new Promise((r) => child.on("exit", r));

  async function newPage() {
    const { browserContextId } = await send("Target.createBrowserContext");
    const { targetId } = await send("Target.createTarget", { url: "about:blank", browserContextId });
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
    const s = (method, params) => send(method, params, sessionId);
    await s("Page.enable");
    await s("Runtime.enable");
    const errors = [];
    listeners.push((msg) => {
      if (msg.sessionId !== sessionId) return;
      if (msg.method === "Runtime.exceptionThrown") errors.push(msg.params.exceptionDetails.text + " " + JSON.stringify(msg.params.exceptionDetails.exception?.description || ""));
      if (msg.method === "Log.entryAdded" && msg.params.entry.level === "error") errors.push(msg.params.entry.text);
    });
    const page = {
      errors,
      async goto(url) {
        const loaded = new Promise((resolve) => {
          const l = (msg) => { if (msg.sessionId === sessionId && msg.method === "Page.loadEventFired") resolve(); };
          listeners.push(l);
        });
        await s("Page.navigate", { url });
        await Promise.race([loaded, sleep(10000).then(() => { throw new Error("load timed out: " + url); })]);
      },
      async eval(expression) {
        const r = await s("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
        if (r.exceptionDetails) throw new Error("in page: " + (r.exceptionDetails.exception?.description || r.exceptionDetails.text) + "\n  " + expression);
        return r.result.value;
      },
      // Polls `expression` until it is truthy; fails after `ms` with what `describe` shows.
      async waitFor(expression, what, ms = 8000) {
        const until = Date.now() + ms;
        for (;;) {
          const v = await page.eval(expression).catch(() => false);
          if (v) return v;
          if (Date.now() > until) {
            const text = await page.eval("document.body.innerText").catch(() => "?");
            throw new Error(`timed out waiting for ${what} (${expression})\n--- page text ---\n${text.slice(0, 3000)}`);
          }
          await sleep(50);
        }
      },
      async screenshot(path) {
        const { data } = await s("Page.captureScreenshot", { format: "png" });
        writeFileSync(path, Buffer.from(data, "base64"));
      },
    };
    return page;
  }

  async function close() {
    try { await Promise.race([send("Browser.close"), sleep(3000)]); } catch (_) { /* gone */ }
    const t = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
    rmSync(profile, { recursive: true, force: true });
  }

  return { newPage, close, stderr: () => stderr };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
