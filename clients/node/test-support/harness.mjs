// Starts a real redis-server and a real `sharecache serve` on free loopback ports for a
// test file, and stops both by pid afterwards. Every wait is bounded.
//
// The server binary: $SHARECACHE_BIN if set, else target/debug/sharecache of this
// checkout, built with `cargo build -p sharecache-server` when missing.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../../..");

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** The sharecache binary to run. */
export function serverBinary() {
  if (process.env.SHARECACHE_BIN) return process.env.SHARECACHE_BIN;
  const bin = join(repoRoot, "target/debug/sharecache");
  if (!existsSync(bin)) {
    const r = spawnSync("cargo", ["build", "-p", "sharecache-server"], {
      cwd: repoRoot,
      stdio: "inherit",
      env: { CARGO_BUILD_JOBS: "1", ...process.env },
    });
    if (r.status !== 0) throw new Error("cargo build -p sharecache-server failed");
  }
  return bin;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();
process.on("exit", () => {
  for (const c of children) {
    try { process.kill(c.pid, "SIGKILL"); } catch {}
  }
});

function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

async function waitFor(what, probe, ms = 20000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      if (await probe()) return;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`${what} did not come up within ${ms} ms${last ? `: ${last.message}` : ""}`);
}

async function stop(child, ms = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once("exit", r));
  try { process.kill(child.pid, "SIGTERM"); } catch { return; }
  const t = setTimeout(() => { try { process.kill(child.pid, "SIGKILL"); } catch {} }, ms);
  await done;
  clearTimeout(t);
}

/** Starts redis-server on a free port. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sc-redis-"));
  const child = track(
    spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
  await waitFor("redis-server", () => new Promise((res) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => { s.write("PING\r\n"); });
    s.once("data", (d) => { s.destroy(); res(d.toString().startsWith("+PONG")); });
    s.once("error", () => res(false));
  }));
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() { await stop(child); rmSync(dir, { recursive: true, force: true }); },
  };
}

/**
 * Starts `sharecache serve`: on Redis when `redisUrl` is given, else the memory store.
 * Returns its url, the admin token and stop().
 */
export async function startServer({ redisUrl, extraToml = "" } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sc-server-"));
  const token = randomBytes(16).toString("hex");
  const sha = createHash("sha256").update(token).digest("hex");
  const cfg = join(dir, "sharecache.toml");
  writeFileSync(cfg, `[server]\nlisten = "127.0.0.1:${port}"\nstate_dir = "${dir}/state"\n\n[backend]\nurl = "${redisUrl ?? "memory://"}"\n\n[admin]\ntoken_sha256 = "${sha}"\n${extraToml}`);
  const env = { ...process.env };
  delete env.REDIS_URL;
  delete env.CACHE_TYPE;
  const child = track(spawn(serverBinary(), ["serve", "--config", cfg], { env, stdio: ["ignore", "ignore", "pipe"] }));
  let log = "";
  child.stderr.on("data", (d) => { log = (log + d).slice(-4000); });
  const url = `http://127.0.0.1:${port}`;
  await waitFor("sharecache serve", async () => {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${log}`);
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    return r.ok;
  });
  return {
    url,
    token,
    pid: child.pid,
    async stop() { await stop(child); rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Redis and a sharecache on it; stop() stops both. */
export async function startStack() {
  const redis = await startRedis();
  try {
    const server = await startServer({ redisUrl: redis.url });
    return {
      redis,
      server,
      url: server.url,
      token: server.token,
      async stop() { await server.stop(); await redis.stop(); },
    };
  } catch (e) {
    await redis.stop();
    throw e;
  }
}
