// Two NestJS app instances (built with @nestjs/testing) against one real sharecache on a
// real redis-server: a write through one invalidates the cached response of the other.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Test } from "@nestjs/testing";
import { AppModule } from "../dist/app.module.js";
import { startStack } from "../../../test-support/harness.mjs";

let stack, a, b;
const users = new Map([["1", { id: "1", email: "ada@example.com", password: "pw", name: "Ada" }]]);

async function instance() {
  const mod = await Test.createTestingModule({ imports: [AppModule.register({ url: stack.url, token: stack.token, users })] }).compile();
  const app = mod.createNestApplication({ logger: false });
  await app.listen(0, "127.0.0.1");
  const { port } = app.getHttpServer().address();
  const call = async (method, path, { body, session } = {}) => {
    const headers = { "content-type": "application/json" };
    if (session) headers["x-session"] = session;
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body: body && JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  return { app, call };
}

before(async () => {
  stack = await startStack();
  a = await instance();
  b = await instance();
});
after(async () => {
  await a?.app.close();
  await b?.app.close();
  await stack?.stop();
});

test("a profile cached by one instance is served by the other, and a write on one invalidates both", async () => {
  const first = await a.call("GET", "/profiles/1");
  assert.equal(first.status, 200);
  assert.equal(first.body.name, "Ada");
  const fromB = await b.call("GET", "/profiles/1");
  assert.deepEqual(fromB.body, first.body, "B answers A's cached response (same `at`)");

  const login = await b.call("POST", "/login", { body: { email: "ada@example.com", password: "pw" } });
  assert.equal(login.status, 200);
  const renamed = await a.call("PUT", "/profiles/1", { body: { name: "Ada L." }, session: login.body.session });
  assert.equal(renamed.status, 204);

  const after = await b.call("GET", "/profiles/1");
  assert.equal(after.body.name, "Ada L.");
  assert.notEqual(after.body.at, first.body.at);
});

test("login attempts are limited per email across instances", async () => {
  const email = "mallory@example.com";
  const statuses = [];
  for (let i = 0; i < 6; i++) {
    const inst = i % 2 ? a : b;
    statuses.push((await inst.call("POST", "/login", { body: { email, password: "guess" } })).status);
  }
  assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
});

test("a session opened on one instance is known to the other; logout ends it for both", async () => {
  const login = await a.call("POST", "/login", { body: { email: "ada@example.com", password: "pw" } });
  assert.equal((await b.call("PUT", "/profiles/1", { body: { name: "Ada" }, session: login.body.session })).status, 204);
  assert.equal((await b.call("POST", "/logout", { session: login.body.session })).status, 204);
  assert.equal((await a.call("PUT", "/profiles/1", { body: { name: "X" }, session: login.body.session })).status, 401);
});
