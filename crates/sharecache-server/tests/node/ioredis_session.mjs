// The seeds' session code (ioredis with keyPrefix 'auth:') through a provisioned ACL user.
// REDIS_URL carries the user and password. Prints one JSON line; exits 1 on any surprise.
import Redis from "ioredis";

const url = process.env.REDIS_URL;
const fail = (why) => {
  console.log(JSON.stringify({ ok: false, why: String(why) }));
  process.exit(1);
};

// enableReadyCheck is the default: ioredis runs INFO before the first command.
const auth = new Redis(url, { keyPrefix: "auth:", maxRetriesPerRequest: 1, lazyConnect: true });
const other = new Redis(url, { keyPrefix: "user:", maxRetriesPerRequest: 1, lazyConnect: true });
try {
  await auth.connect();
  const id = "s" + Date.now();
  const session = JSON.stringify({ userId: 42, roles: ["admin"] });
  await auth.setex(`session:${id}`, 3600, session);
  const back = await auth.get(`session:${id}`);
  if (back !== session) fail(`read back ${back}`);
  const ttl = await auth.ttl(`session:${id}`);
  if (!(ttl > 3500 && ttl <= 3600)) fail(`ttl ${ttl}`);
  await other.connect();
  let refused = "";
  try {
    await other.set("profile:1", "evil");
  } catch (e) {
    refused = String(e.message);
  }
  if (!refused.includes("NOPERM")) fail(`a write outside the namespace was not refused: ${refused}`);
  console.log(JSON.stringify({ ok: true, key: `auth:session:${id}`, refused }));
} catch (e) {
  fail(e);
} finally {
  auth.disconnect();
  other.disconnect();
}
