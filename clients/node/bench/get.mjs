// GET throughput and latency at N concurrent callers in one Node process: @sharecache/client
// with auto-pipelining on and off, against ioredis straight to the same Redis. Starts its
// own redis-server and `sharecache serve` (see test-support/harness.mjs), bounded in time.
//
//   node bench/get.mjs [seconds per mode=5] [callers=64]
import { Redis } from "ioredis";
import { Sharecache } from "@sharecache/client";
import { startStack } from "../test-support/harness.mjs";

const seconds = Number(process.argv[2] ?? 5);
const callers = Number(process.argv[3] ?? 64);
const KEYS = 1000;
const value = { id: 0, name: "user name", email: "someone@example.com", roles: ["a", "b"], pad: "x".repeat(40) };

const stack = await startStack();
const redis = new Redis(stack.redis.url);
try {
  const setup = new Sharecache({ url: stack.url, token: stack.token }).ns("bench");
  for (let i = 0; i < KEYS; i += 500) {
    await setup.mset(Object.fromEntries(Array.from({ length: 500 }, (_, j) => [`k${i + j}`, { ...value, id: i + j }])));
  }
  // [values] format = "plain" (the default): the Redis key bench:k1 holds the JSON text.
  if (JSON.parse(await redis.get("bench:k1")).id !== 1) throw new Error("ioredis does not see the client's values");

  async function run(name, get) {
    for (let i = 0; i < 200; i++) await get(`k${i}`); // warm up
    const lat = [];
    let n = 0;
    const until = performance.now() + seconds * 1000;
    await Promise.all(Array.from({ length: callers }, async (_, c) => {
      let i = c;
      while (performance.now() < until) {
        const t = performance.now();
        const v = await get(`k${(i = (i * 7 + 13) % KEYS)}`);
        lat.push(performance.now() - t);
        if (v === undefined) throw new Error("miss");
        n++;
      }
    }));
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
    return { name, ops: n / seconds, p50: q(0.5), p99: q(0.99) };
  }

  const on = new Sharecache({ url: stack.url, token: stack.token }).ns("bench");
  const off = new Sharecache({ url: stack.url, token: stack.token, autoPipeline: false }).ns("bench");
  const results = [
    await run("ioredis GET (one connection)", async (k) => JSON.parse(await redis.get(`bench:${k}`))),
    await run("@sharecache/client, autoPipeline on", (k) => on.get(k)),
    await run("@sharecache/client, autoPipeline off", (k) => off.get(k)),
  ];
  const base = results[0].ops;
  console.log(`GET, ${callers} concurrent callers, ${seconds} s per mode, ${KEYS} keys of ~${JSON.stringify(value).length} B JSON, server ${process.env.SHARECACHE_BIN ?? "target/debug/sharecache"}`);
  console.log("| mode | GET/s | vs ioredis | p50 ms | p99 ms |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const r of results) {
    console.log(`| ${r.name} | ${Math.round(r.ops)} | ${(r.ops / base).toFixed(2)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
  }
} finally {
  redis.disconnect();
  await stack.stop();
}
