// @keyv/test-suite (it is written for vitest) against KeyvSharecache on a real
// `sharecache serve` over a real redis-server, plus cache-manager 7 over the store.
import * as test from "vitest";
import Keyv from "keyv";
import keyvTestSuite, { keyvIteratorTests } from "@keyv/test-suite";
import { createCache } from "cache-manager";
import { Sharecache } from "@sharecache/client";
import { KeyvSharecache } from "@sharecache/keyv";
import { startStack } from "../../../test-support/harness.mjs";

const stack = await startStack();
test.afterAll(async () => { await stack.stop(); });
const client = new Sharecache({ url: stack.url, token: stack.token });
const store = () => new KeyvSharecache({ client, namespace: "keyv" });

keyvTestSuite(test, Keyv, store);
keyvIteratorTests(test, Keyv, store);

test.describe("sharecache specifics", () => {
  test.it("clear() clears only its Keyv namespace; other keys of the sharecache namespace stay", async (t) => {
    const other = client.ns("keyv");
    await other.set("unrelated", 1);
    const a = new Keyv({ store: store(), namespace: "a" });
    await a.set("x", 1);
    await a.clear();
    t.expect(await a.get("x")).toBeUndefined();
    t.expect(await other.get("unrelated")).toBe(1);
  });

  test.it("keys are stored once prefixed (namespace:key), readable by other clients", async (t) => {
    const kv = new Keyv({ store: store(), namespace: "svc" });
    await kv.set("user:1", { name: "ada" });
    const raw = await client.ns("keyv").get("svc:user:1");
    t.expect(typeof raw).toBe("string");
    t.expect(JSON.parse(raw).value).toEqual({ name: "ada" });
  });

  test.it("a TTL in ms reaches the server (rounded up to seconds)", async (t) => {
    const kv = new Keyv({ store: store(), namespace: "ttl" });
    await kv.set("k", 1, 1500);
    const left = await client.ns("keyv").ttl("ttl:k");
    t.expect(left).toBeGreaterThan(0);
    t.expect(left).toBeLessThanOrEqual(2000);
  });

  test.it("errors of the store reach Keyv's error event", async (t) => {
    const bad = new KeyvSharecache({ url: "http://127.0.0.1:1", token: "x", namespace: "keyv", retries: 0 });
    const kv = new Keyv({ store: bad });
    const errors = [];
    kv.on("error", (e) => errors.push(e));
    t.expect(await kv.get("k")).toBeUndefined();
    t.expect(errors.length).toBeGreaterThan(0);
    t.expect(errors[0].code).toBe("network");
  });

  test.it("cache-manager 7 over the store: set, get, wrap, del, ttl", async (t) => {
    const cache = createCache({ stores: [new Keyv({ store: store(), namespace: "cm" })] });
    await cache.set("a", { n: 1 }, 60_000);
    t.expect(await cache.get("a")).toEqual({ n: 1 });
    let calls = 0;
    const load = async () => { calls++; return "loaded"; };
    t.expect(await cache.wrap("w", load, 60_000)).toBe("loaded");
    t.expect(await cache.wrap("w", load, 60_000)).toBe("loaded");
    t.expect(calls).toBe(1);
    const expires = await cache.ttl("a");
    t.expect(expires).toBeGreaterThan(Date.now());
    await cache.del("a");
    t.expect(await cache.get("a")).toBeUndefined();
  });
});
