// The committed generated types and the client's operations against the served document.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { OPERATIONS, Sharecache } from "@sharecache/client";
import { startServer } from "../../../test-support/harness.mjs";
import { generatedPath, typesOf } from "../../../test-support/gen-types.mjs";

let server, doc;
before(async () => {
  server = await startServer();
  doc = await new Sharecache({ url: server.url, token: server.token }).openapi();
});
after(async () => { await server?.stop(); });

test("committed src/generated/openapi.ts is what openapi-typescript makes of the served document", async () => {
  const fresh = await typesOf(doc);
  const committed = readFileSync(generatedPath, "utf8");
  assert.ok(committed === fresh, "src/generated/openapi.ts is stale: run `node test-support/gen-types.mjs` in clients/node and commit it");
});

test("every operation the client calls is served with that method, path and operationId", () => {
  for (const [method, path, id] of OPERATIONS) {
    const op = doc.paths[path]?.[method];
    assert.ok(op, `${method.toUpperCase()} ${path} is not in the served document`);
    assert.equal(op.operationId, id, `${method.toUpperCase()} ${path}`);
  }
});

test("every served operation outside the dashboard, admin and metrics routes is covered by the client", () => {
  const covered = new Set(OPERATIONS.map(([m, p]) => `${m} ${p}`));
  const missing = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    if (/^\/(v1\/(dashboard|admin)|metrics)/.test(path)) continue;
    for (const m of ["get", "put", "post", "delete", "head", "patch"]) {
      if (item[m] && !covered.has(`${m} ${path}`)) missing.push(`${m.toUpperCase()} ${path}`);
    }
  }
  assert.deepEqual(missing, []);
});
