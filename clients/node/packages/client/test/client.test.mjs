// @sharecache/client against a real `sharecache serve` on a real redis-server.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Sharecache, SharecacheError, SharecacheTimeoutError } from "@sharecache/client";
import { startStack } from "../../../test-support/harness.mjs";

let stack, sc, ns;
before(async () => {
  stack = await startStack();
  sc = new Sharecache({ url: stack.url, token: stack.token });
  ns = sc.ns("app");
});
after(async () => { await stack?.stop(); });

const tick = () => new Promise((r) => setImmediate(r));

describe("cache", () => {
  test("set, get, exists, del; keys with / and a leading _", async () => {
    for (const key of ["plain", "a/b c?d", "_mget", "user:42"]) {
      await ns.set(key, { key, n: 1 });
      assert.deepEqual(await ns.get(key), { key, n: 1 });
      assert.equal(await ns.exists(key), true);
      assert.equal(await ns.del(key), true);
      assert.equal(await ns.get(key), undefined);
      assert.equal(await ns.exists(key), false);
      assert.equal(await ns.del(key), false);
    }
  });

  test("strings, numbers, false and arrays round-trip as JSON", async () => {
    for (const v of ["hello", 0, false, [1, "x"], { deep: { a: [null] } }]) {
      await ns.set("v", v);
      assert.deepEqual(await ns.get("v", { timeoutMs: 2000 }), v);
    }
  });

  test("ttl: set with ttlMs, read ttl, expire, persist", async () => {
    await ns.set("t", 1, { ttlMs: 1500 });
    const left = await ns.ttl("t");
    assert.ok(left > 0 && left <= 2000, `ttl ${left}`);
    assert.equal(await ns.expire("t", 60_000), true);
    assert.ok((await ns.ttl("t")) > 50_000);
    assert.equal(await ns.expire("t", null), true);
    assert.equal(await ns.ttl("t"), null);
    assert.equal(await ns.ttl("absent"), undefined);
    assert.equal(await ns.expire("absent", 1000), false);
  });

  test("mget, mset, mdel", async () => {
    await ns.mset({ m1: 1, m2: "two" }, { ttlMs: 60_000 });
    assert.deepEqual(await ns.mget(["m1", "m2", "m3"]), [1, "two", undefined]);
    assert.equal(await ns.mdel(["m1", "m2", "m3"]), 2);
  });

  test("conditional writes: exactly one racing setIfAbsent wins", async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => ns.setIfAbsent("once", i)));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal(results[await ns.get("once")], true);
  });

  test("compare-and-set: getEntry's etag, one winner among racing setIfMatch", async () => {
    await ns.set("cas", { v: 0 }, { ttlMs: 90_000 });
    const e = await ns.getEntry("cas");
    assert.deepEqual(e.value, { v: 0 });
    assert.match(e.etag, /^"[0-9a-f]{32}"$/);
    assert.ok(e.ttlMs > 80_000 && e.ttlMs <= 90_000, `ttl ${e.ttlMs}`);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => ns.setIfMatch("cas", { v: i + 1 }, e.etag)));
    assert.equal(results.filter(Boolean).length, 1);
    const now = await ns.getEntry("cas");
    assert.equal(results[now.value.v - 1], true);
    assert.notEqual(now.etag, e.etag);
    assert.equal(now.ttlMs, null, "the winner set no TTL");
    assert.equal(await ns.setIfMatch("cas", 1, e.etag), false, "stale etag");
    assert.equal(await ns.getEntry("absent"), undefined);
  });

  test("bytes: setBytes stores them as they are, getBytes reads any string value", async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0xff, 0xc5]);
    await ns.setBytes("logo", png, { ttlMs: 60_000 });
    assert.deepEqual(await ns.getBytes("logo"), png);
    await assert.rejects(ns.get("logo", { timeoutMs: 2000 }), (e) => e instanceof SharecacheError && e.code === "not_json");
    await ns.set("doc", { a: 1 });
    assert.equal(new TextDecoder().decode(await ns.getBytes("doc")), '{"a":1}');
    assert.equal(await ns.getBytes("absent"), undefined);
  });

  test("take: exactly one of racing callers gets the value, then it is gone", async () => {
    await ns.set("otp", { code: "4711" });
    const got = await Promise.all(Array.from({ length: 6 }, () => ns.take("otp")));
    assert.deepEqual(got.filter((v) => v !== undefined), [{ code: "4711" }]);
    assert.equal(await ns.get("otp"), undefined);
    assert.equal(await ns.take("otp"), undefined);
  });

  test("counters", async () => {
    assert.equal(await ns.incr("hits"), 1);
    assert.equal(await ns.incr("hits", 5), 6);
    assert.equal(await ns.decr("hits", 2), 4);
    await ns.set("notnum", { a: 1 });
    await assert.rejects(ns.incr("notnum"), (e) => e instanceof SharecacheError && e.code === "wrong_type" && e.status === 409);
  });

  test("keys iterator, invalidate by pattern and tags, clear", async () => {
    const iso = sc.ns("listing");
    await iso.mset(Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`k:${i}`, i])));
    const seen = [];
    for await (const k of iso.keys("k:*", { count: 7 })) seen.push(k);
    assert.equal(new Set(seen).size, 25);
    assert.equal(await iso.invalidate("k:1*"), 11);
    await iso.set("tagged", 1, { tags: ["user:1"] });
    assert.equal(await iso.get("tagged"), 1);
    assert.equal(await iso.invalidateTags(["user:1"]), 1);
    assert.equal(await iso.get("tagged"), undefined);
    assert.equal(await iso.clear(), 15); // 14 k:* keys and the tagged one (tags invalidate lazily)
  });

  test("a tag-invalidated value is a miss for every read and for If-None-Match", async () => {
    const iso = sc.ns("tagbug");
    await iso.set("t", 1, { tags: ["x"] });
    await iso.invalidateTags(["x"]);
    assert.equal(await iso.get("t", {}), undefined);
    assert.equal(await iso.exists("t"), false);
    assert.equal(await iso.ttl("t"), undefined);
    assert.equal(await iso.setIfAbsent("t", 2), true);
  });

  test("same-tick gets go out as one _mget; opt-out sends one GET each", async () => {
    let calls = [];
    const counting = (u, init) => { calls.push(`${init.method} ${new URL(u).pathname}`); return fetch(u, init); };
    const piped = new Sharecache({ url: stack.url, token: stack.token, fetch: counting }).ns("app");
    await ns.mset({ p1: 1, p2: 2, p3: 3 });
    assert.deepEqual(await Promise.all([piped.get("p1"), piped.get("p2"), piped.get("p3"), piped.get("p1"), piped.get("none")]), [1, 2, 3, 1, undefined]);
    assert.deepEqual(calls, ["POST /v1/cache/app/_mget"]);
    calls = [];
    const plain = new Sharecache({ url: stack.url, token: stack.token, fetch: counting, autoPipeline: false }).ns("app");
    assert.deepEqual(await Promise.all([plain.get("p1"), plain.get("p2")]), [1, 2]);
    assert.deepEqual(calls.sort(), ["GET /v1/cache/app/p1", "GET /v1/cache/app/p2"]);
  });

  test("remember: concurrent callers share one load", async () => {
    let loads = 0;
    const load = async () => { loads++; await tick(); return { fresh: true }; };
    const got = await Promise.all(Array.from({ length: 10 }, () => ns.remember("profile:1", load, { ttlMs: 60_000 })));
    assert.equal(loads, 1);
    assert.ok(got.every((g) => g.fresh));
    assert.deepEqual(await ns.remember("profile:1", load), { fresh: true });
    assert.equal(loads, 1);
  });

  test("split ns:key", async () => {
    const { ns: auth, key } = sc.key("auth:session:x");
    assert.equal(auth.name, "auth");
    assert.equal(key, "session:x");
  });
});

describe("errors, timeouts, abort, retries", () => {
  test("typed errors carry code and status", async () => {
    await assert.rejects(sc.ns("Bad NS").set("k", 1), (e) => e instanceof SharecacheError && e.status === 400 && e.code === "invalid_namespace");
    const anon = new Sharecache({ url: stack.url, token: "wrong" });
    await assert.rejects(anon.ns("app").get("k", {}), (e) => e.status === 401 && e.code === "unauthorized");
  });

  test("per-call timeout and AbortSignal", async () => {
    const slow = (u, init) => new Promise((res, rej) => {
      const t = setTimeout(() => fetch(u, init).then(res, rej), 2000);
      init.signal.addEventListener("abort", () => { clearTimeout(t); rej(init.signal.reason); });
    });
    const c = new Sharecache({ url: stack.url, token: stack.token, fetch: slow, retries: 0 }).ns("app");
    await assert.rejects(c.get("k", { timeoutMs: 50 }), (e) => e instanceof SharecacheTimeoutError && e.code === "timeout");
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    await assert.rejects(c.get("k", { signal: ac.signal }), (e) => e.code === "aborted");
  });

  test("idempotent calls retry network errors and 503 with backoff; writes that are not idempotent do not", async () => {
    let n = 0;
    const flaky = (u, init) => {
      n++;
      if (n === 1) return Promise.reject(new TypeError("fetch failed"));
      if (n === 2) return Promise.resolve(new Response('{"error":{"code":"unavailable","message":"x"}}', { status: 503, headers: { "retry-after": "0" } }));
      return fetch(u, init);
    };
    const c = new Sharecache({ url: stack.url, token: stack.token, fetch: flaky, retries: 3, retryBaseMs: 5 }).ns("app");
    await ns.set("r", "ok");
    assert.equal(await c.get("r", {}), "ok");
    assert.equal(n, 3);
    n = 0;
    await assert.rejects(c.incr("r2"), (e) => e.code === "network");
    assert.equal(n, 1);
    const down = new Sharecache({ url: "http://127.0.0.1:1", token: "x", retries: 2, retryBaseMs: 1 });
    await assert.rejects(down.ns("a").get("k", {}), (e) => e.code === "network" && e.status === 0);
  });
});

describe("sessions, rate limits, locks", () => {
  test("sessions: create, read, update, rotate, list, end", async () => {
    const s = ns.sessions();
    const created = await s.create({ user: "ada" }, { user: "ada", idleTtlMs: 60_000 });
    assert.ok(created.id && created.expires_at > Date.now());
    assert.deepEqual((await s.get(created.id)).data, { user: "ada" });
    assert.equal(await s.update(created.id, { user: "ada", role: "admin" }), true);
    const rotated = await s.rotate(created.id);
    assert.equal(await s.get(created.id), undefined);
    assert.equal((await s.get(rotated.id)).data.role, "admin");
    assert.equal(await s.end(rotated.id), true);
    assert.equal(await s.end(rotated.id), false);
    const one = await s.create({}, { user: "bob" });
    await s.create({}, { user: "bob" });
    assert.equal((await s.list("bob")).length, 2);
    assert.equal(await s.endAll("bob"), 2);
    assert.equal(await s.get(one.id), undefined);
  });

  test("sessions: import under another store's id, once", async () => {
    const s = ns.sessions();
    const id = "eZbsxpMWD0Bf3hBqJ1hS2nuckVUiLhQz"; // express-session's form
    const made = await s.import(id, { user: 9 }, { user: "zoe", idleTtlMs: 120_000 });
    assert.equal(made.id, id);
    assert.deepEqual((await s.get(id)).data, { user: 9 });
    assert.equal(await s.import(id, { user: 666 }), undefined, "taken: nothing changes");
    assert.deepEqual((await s.get(id)).data, { user: 9 });
    await assert.rejects(s.import("0123456789abcdef", {}), (e) => e instanceof SharecacheError && e.status === 400);
    assert.equal(await s.endAll("zoe"), 1);
  });

  test("a rotated session stays listed under its user and endAll ends it", async () => {
    const s = ns.sessions();
    const created = await s.create({}, { user: "eve" });
    const rotated = await s.rotate(created.id);
    assert.equal((await s.list("eve")).length, 1);
    assert.equal(await s.endAll("eve"), 1);
    assert.equal(await s.get(rotated.id), undefined);
  });

  test("rate limits with RateLimit-* figures", async () => {
    const rl = ns.rateLimits();
    const key = "attempts:ada@example.com";
    for (let i = 0; i < 3; i++) assert.equal((await rl.check(key, { limit: 3, periodMs: 60_000 })).allowed, true);
    const refused = await rl.check(key, { limit: 3, periodMs: 60_000 });
    assert.equal(refused.allowed, false);
    assert.equal(refused.headers.limit, 3);
    assert.equal(refused.headers.remaining, 0);
    assert.equal(refused.headers.policy, "3;w=60");
    assert.ok(refused.headers.retryAfter >= 1);
    assert.equal(await rl.reset(key), true);
    assert.equal((await rl.check(key, { limit: 3, periodMs: 60_000 })).allowed, true);
  });

  test("locks: acquire, conflict, fence, auto-extension, release", async () => {
    const locks = ns.locks();
    const a = await locks.acquire("job", { ttlMs: 300, autoExtend: true });
    assert.ok(a);
    assert.equal(await locks.acquire("job", { ttlMs: 300 }), undefined);
    await new Promise((r) => setTimeout(r, 700)); // well past the ttl: extended meanwhile
    assert.equal(await locks.acquire("job", { ttlMs: 300 }), undefined);
    assert.equal(await a.release(), true);
    const waiter = locks.acquire("job", { ttlMs: 1000, waitMs: 2000 });
    const b = await waiter;
    assert.ok(b.fence > a.fence);
    assert.equal(await a.release(), false);
    const out = await locks.with("job2", { ttlMs: 1000 }, async (l) => l.fence);
    assert.ok(out > 0);
    await b.release();
  });
});

describe("events, presence, queues", () => {
  test("subscribe yields published events over SSE", async () => {
    const ch = ns.events("news");
    const ac = new AbortController();
    let connected;
    const ready = new Promise((r) => (connected = r));
    const got = [];
    const loop = (async () => {
      for await (const ev of ch.subscribe({ signal: ac.signal, onConnect: connected })) {
        got.push(ev);
        if (got.length === 2) break;
      }
    })();
    await ready;
    await new Promise((r) => setTimeout(r, 100));
    await ch.publish({ n: 1 });
    await ch.publish("two");
    await loop;
    assert.deepEqual(got, [{ n: 1 }, "two"]);
  });

  test("durable subscription resumes from the last id", async () => {
    const ch = ns.events("orders");
    const first = await ch.publish({ order: 1 }, { durable: true });
    assert.ok(first.id);
    await ch.publish({ order: 2 }, { durable: true });
    const got = [];
    for await (const ev of ch.subscribeDurable()) {
      got.push(ev);
      if (got.length === 2) break;
    }
    assert.deepEqual(got.map((e) => e.data), [{ order: 1 }, { order: 2 }]);
    await ch.publish({ order: 3 }, { durable: true });
    const resumed = [];
    for await (const ev of ch.subscribeDurable({ after: got[1].id })) {
      resumed.push(ev.data);
      break;
    }
    assert.deepEqual(resumed, [{ order: 3 }]);
    assert.equal((await ch.since({ after: first.id })).length, 2);
  });

  // A fetch that cuts the first SSE stream after its first event, as a proxy or a restart would.
  function cuttingFetch() {
    let streams = 0;
    return (u, init) => fetch(u, init).then((r) => {
      if (!r.headers.get("content-type")?.startsWith("text/event-stream") || streams++ > 0) return r;
      const reader = r.body.getReader();
      const body = new ReadableStream({
        async pull(ctl) {
          const { value, done } = await reader.read();
          if (done) return ctl.close();
          ctl.enqueue(value);
          if (new TextDecoder().decode(value).includes("data:")) { ctl.close(); reader.cancel().catch(() => {}); }
        },
      });
      return new Response(body, { status: r.status, headers: r.headers });
    });
  }

  test("subscribe reconnects when the stream drops", async () => {
    const ch = new Sharecache({ url: stack.url, token: stack.token, fetch: cuttingFetch() }).ns("app").events("flaky");
    const pub = ns.events("flaky");
    let connects = 0;
    let onConnect;
    const connected = () => new Promise((r) => (onConnect = r));
    let next = connected();
    const got = [];
    const loop = (async () => {
      for await (const ev of ch.subscribe({ onConnect: () => { connects++; onConnect(); } })) {
        got.push(ev);
        if (got.length === 2) break;
      }
    })();
    await next;
    next = connected();
    await pub.publish(1);
    await next; // the stream was cut after event 1 and opened again
    await pub.publish(2);
    await loop;
    assert.deepEqual(got, [1, 2]);
    assert.equal(connects, 2);
  });

  test("a durable subscription loses nothing across a dropped stream", async () => {
    const ch = new Sharecache({ url: stack.url, token: stack.token, fetch: cuttingFetch() }).ns("app").events("ledger");
    const pub = ns.events("ledger");
    let onConnect;
    const first = new Promise((r) => (onConnect = r));
    const got = [];
    const loop = (async () => {
      for await (const ev of ch.subscribeDurable({ onConnect: () => onConnect() })) {
        got.push(ev.data);
        if (got.length === 3) break;
      }
    })();
    await first;
    await pub.publish("a", { durable: true });
    await pub.publish("b", { durable: true }); // may land while the stream is cut
    await new Promise((r) => setTimeout(r, 300));
    await pub.publish("c", { durable: true });
    await loop;
    assert.deepEqual(got, ["a", "b", "c"]);
  });

  test("presence", async () => {
    const room = ns.presence("room1");
    await room.beat("ada", { ttlMs: 1_500 });
    const [ada] = (await room.list()).filter((m) => m.member === "ada");
    assert.ok(ada.expires_in_ms <= 1_500, "milliseconds, not rounded to seconds");
    await room.beat("bob");
    assert.deepEqual((await room.list()).map((m) => m.member).sort(), ["ada", "bob"]);
    assert.equal(await room.leave("ada"), true);
    assert.equal(await room.leave("ada"), false);
  });

  test("queues: push, claim, ack, dead letters", async () => {
    const q = ns.queue("emails");
    const id = await q.push({ to: "ada" });
    const [m] = await q.claim("w1", { count: 5, visibilityMs: 50, maxDeliveries: 1 });
    assert.equal(m.id, id);
    assert.deepEqual(m.payload, { to: "ada" });
    assert.equal(await q.ack([m.id]), 1);
    await q.push({ to: "bob" });
    const [m2] = await q.claim("w1", { visibilityMs: 50, maxDeliveries: 1 });
    assert.ok(m2);
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(await q.claim("w1", { visibilityMs: 50, maxDeliveries: 1 }), []);
    const dead = await q.dead();
    assert.deepEqual(dead.map((d) => d.payload), [{ to: "bob" }]);
    assert.deepEqual(await q.stats(), { ready: 0, pending: 0, dead: 1 });
    const again = await q.requeueDead(dead[0].id);
    assert.ok(again && again !== dead[0].id);
    assert.equal(await q.requeueDead(dead[0].id), undefined, "once");
    assert.deepEqual(await q.stats(), { ready: 1, pending: 0, dead: 0 });
    const [m3] = await q.claim("w2", { visibilityMs: 50, maxDeliveries: 1 });
    assert.deepEqual([m3.id, m3.payload], [again, { to: "bob" }]);
    await new Promise((r) => setTimeout(r, 120));
    await q.claim("w2", { visibilityMs: 50, maxDeliveries: 1 });
    const [d2] = await q.dead();
    assert.equal(await q.dropDead(d2.id), true);
    assert.equal(await q.dropDead(d2.id), false);
    assert.deepEqual(await q.stats(), { ready: 0, pending: 0, dead: 0 });
  });

  test("health, ready, stats", async () => {
    assert.ok(await sc.health());
    assert.equal((await sc.ready()).ready, true);
    assert.ok(await sc.stats());
  });
});
