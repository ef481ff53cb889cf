// One namespace, two protocols: ioredis (keyPrefix 'user:', as the seeds' services) and
// the HTTP API write and read the same keys. REDIS_URL, SHARECACHE_URL and TOKEN come from
// the Rust test. Prints one JSON line; exits 1 on any surprise.
import Redis from "ioredis";

const redis = new Redis(process.env.REDIS_URL, { keyPrefix: "user:", maxRetriesPerRequest: 1 });
const base = `${process.env.SHARECACHE_URL}/v1/cache/user/`;
const auth = { authorization: `Bearer ${process.env.TOKEN}` };
const fail = (why) => {
  console.log(JSON.stringify({ ok: false, why: String(why) }));
  process.exit(1);
};
const http = async (method, key, body) => {
  const r = await fetch(base + encodeURIComponent(key), {
    method,
    headers: body === undefined ? auth : { ...auth, "content-type": "application/json" },
    body,
  });
  return { status: r.status, text: await r.text(), tier: r.headers.get("x-cache-tier") };
};

try {
  // ioredis writes, HTTP reads: the seeds' own session code.
  const session = JSON.stringify({ userId: 42, roles: ["admin"], name: "Zoë" });
  await redis.setex("session:abc", 3600, session);
  let r = await http("GET", "session:abc");
  if (r.status !== 200 || r.text !== session) fail(`HTTP read of an ioredis value: ${r.status} ${r.text}`);

  // HTTP writes, ioredis reads, byte for byte, small and large (no header, no compression).
  const profile = JSON.stringify({ name: "Ada", bio: "x".repeat(4096) });
  for (const [key, body] of [["profile:1", '{"name":"Ada"}'], ["profile:2", profile], ["n", "42"]]) {
    r = await http("PUT", key, body);
    if (r.status !== 204) fail(`PUT ${key}: ${r.status} ${r.text}`);
    const back = await redis.get(key);
    if (back !== body) fail(`ioredis read of ${key}: ${JSON.stringify(back?.slice(0, 40))}`);
  }

  // L1 stays coherent when ioredis overwrites a key HTTP readers hold in L1.
  await http("GET", "profile:1");
  r = await http("GET", "profile:1");
  if (r.tier !== "l1") fail(`second read not from L1: ${r.tier}`);
  const updated = '{"name":"Ada Lovelace"}';
  await redis.set("profile:1", updated);
  const start = Date.now();
  let seen = false;
  while (Date.now() - start < 3000) {
    r = await http("GET", "profile:1");
    if (r.text === updated) {
      seen = true;
      break;
    }
    await new Promise((res) => setTimeout(res, 10));
  }
  if (!seen) fail(`L1 kept the old value 3 s after ioredis wrote: ${r.text}`);
  const invalidated_ms = Date.now() - start;

  // What is not a JSON string gets a clear answer, never 404 or 500.
  await redis.set("greeting", "hello world");
  r = await http("GET", "greeting");
  if (r.status !== 422 || !r.text.includes("not_json")) fail(`plain text: ${r.status} ${r.text}`);
  await redis.hset("hash", "field", "value");
  r = await http("GET", "hash");
  if (r.status !== 409 || !r.text.includes("wrong_type") || !r.text.includes("hash"))
    fail(`a hash: ${r.status} ${r.text}`);

  console.log(JSON.stringify({ ok: true, invalidated_ms }));
} catch (e) {
  fail(e.stack ?? e);
} finally {
  redis.disconnect();
}
