/**
 * `@sharecache/client`: the sharecache HTTP API for Node >= 20, on Node's own fetch
 * (keep-alive connections), with per-call timeouts and AbortSignal, retries with backoff
 * and jitter for idempotent calls, typed errors, and same-tick GETs batched into `_mget`.
 *
 * Times are milliseconds everywhere (`ttlMs`), as the server takes them (`ttl_ms`).
 */
import type { components } from "./generated/openapi.js";
import { SharecacheError } from "./errors.js";
import { parseSse } from "./sse.js";
import { type CallOptions, type Request, seg, Transport } from "./http.js";

export { SharecacheError, SharecacheTimeoutError } from "./errors.js";
export type { CallOptions } from "./http.js";
export type { components, paths } from "./generated/openapi.js";
export { parseSse } from "./sse.js";

type Schemas = components["schemas"];
export type Lease = Schemas["Lease"];
export type Decision = Schemas["Decision"];
export type QueueMessage<T = unknown> = Omit<Schemas["Message"], "payload"> & { payload: T };
export type NewSession = Schemas["NewSession"];
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every operation of the document this client calls: method, path, operationId (checked by the tests). */
export const OPERATIONS = [
  ["get", "/health", "health"], ["get", "/ready", "ready"], ["get", "/openapi.json", "openapi"], ["get", "/v1/stats", "stats"],
  ["get", "/v1/cache/{ns}", "list"], ["delete", "/v1/cache/{ns}", "clear"],
  ["get", "/v1/cache/{ns}/{key}", "get"], ["put", "/v1/cache/{ns}/{key}", "set"],
  ["delete", "/v1/cache/{ns}/{key}", "del"], ["head", "/v1/cache/{ns}/{key}", "exists"],
  ["post", "/v1/cache/{ns}/_mget", "mget"], ["post", "/v1/cache/{ns}/_mset", "mset"],
  ["post", "/v1/cache/{ns}/_mdel", "mdel"], ["post", "/v1/cache/{ns}/_invalidate", "invalidate"],
  ["post", "/v1/cache/{ns}/{key}/_take", "take"],
  ["post", "/v1/cache/{ns}/{key}/_incr", "incr"], ["get", "/v1/cache/{ns}/{key}/_ttl", "get_ttl"],
  ["put", "/v1/cache/{ns}/{key}/_ttl", "set_ttl"],
  ["post", "/v1/ratelimit/{ns}/{key}", "ratelimit"], ["delete", "/v1/ratelimit/{ns}/{key}", "ratelimit_reset"],
  ["post", "/v1/locks/{ns}/{name}", "lock"], ["delete", "/v1/locks/{ns}/{name}", "unlock"],
  ["post", "/v1/locks/{ns}/{name}/_extend", "lock_extend"],
  ["post", "/v1/sessions/{ns}", "session_create"], ["get", "/v1/sessions/{ns}", "session_list"],
  ["delete", "/v1/sessions/{ns}", "session_end_all"], ["get", "/v1/sessions/{ns}/{id}", "session_get"],
  ["patch", "/v1/sessions/{ns}/{id}", "session_update"], ["delete", "/v1/sessions/{ns}/{id}", "session_end"],
  ["post", "/v1/sessions/{ns}/{id}/_rotate", "session_rotate"], ["put", "/v1/sessions/{ns}/{id}", "session_import"],
  ["get", "/v1/events/{ns}/{channel}", "subscribe"], ["post", "/v1/events/{ns}/{channel}", "publish"],
  ["get", "/v1/events/{ns}/{channel}/_since", "events_since"],
  ["post", "/v1/queues/{ns}/{queue}", "queue_push"], ["post", "/v1/queues/{ns}/{queue}/_claim", "queue_claim"],
  ["post", "/v1/queues/{ns}/{queue}/_ack", "queue_ack"], ["get", "/v1/queues/{ns}/{queue}/_dead", "queue_dead"],
  ["get", "/v1/queues/{ns}/{queue}/_stats", "queue_stats"], ["post", "/v1/queues/{ns}/{queue}/_dead/{id}/_requeue", "queue_requeue"],
  ["delete", "/v1/queues/{ns}/{queue}/_dead/{id}", "queue_drop_dead"],
  ["get", "/v1/presence/{ns}", "presence_list"], ["put", "/v1/presence/{ns}/{member}", "presence_beat"],
  ["delete", "/v1/presence/{ns}/{member}", "presence_leave"],
] as const;

export interface ClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** Bearer token of a service (or the admin). */
  token: string;
  /** Default timeout of one attempt, ms (5000). */
  timeoutMs?: number;
  /** Retries of an idempotent call on a network error or 503 (2). */
  retries?: number;
  /** First backoff, ms (50); doubles per retry, full jitter, capped by `retryMaxMs` (1000). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Batch GETs issued in the same tick into one `_mget` per namespace (true). */
  autoPipeline?: boolean;
  /** Most keys per `_mget` (the server's `max_batch`, 1000). */
  maxBatch?: number;
  /** Another fetch (tests, instrumentation). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

/** A read with what HTTP caching gives: the value's version (`etag`, for `setIfMatch`), the milliseconds its key has left (`null`: no expiry) and the tier that answered. */
export interface Entry<T> {
  value: T;
  etag: string;
  ttlMs: number | null;
  tier: "l1" | "l2" | "fallback";
}

/** The client: one per process; `client.ns("auth")` gives a namespace's handle. */
export class Sharecache {
  readonly transport: Transport;
  readonly autoPipeline: boolean;
  readonly maxBatch: number;
  private readonly handles = new Map<string, Namespace>();

  constructor(opts: ClientOptions) {
    this.transport = new Transport({
      url: opts.url.replace(/\/+$/, ""),
      token: opts.token,
      timeoutMs: opts.timeoutMs ?? 5000,
      retries: opts.retries ?? 2,
      retryBaseMs: opts.retryBaseMs ?? 50,
      retryMaxMs: opts.retryMaxMs ?? 1000,
      fetch: opts.fetch ?? globalThis.fetch,
      headers: opts.headers ?? {},
    });
    this.autoPipeline = opts.autoPipeline ?? true;
    this.maxBatch = opts.maxBatch ?? 1000;
  }

  /** A namespace (1..64 of `a-z0-9_-`). */
  ns(name: string): Namespace {
    let h = this.handles.get(name);
    if (!h) {
      h = new Namespace(this, name);
      this.handles.set(name, h);
    }
    return h;
  }

  /** Splits `auth:session:x` at its first `:` into namespace `auth` and key `session:x`. */
  key(full: string): { ns: Namespace; key: string } {
    const i = full.indexOf(":");
    if (i <= 0) throw new TypeError(`"${full}" has no namespace prefix (ns:key)`);
    return { ns: this.ns(full.slice(0, i)), key: full.slice(i + 1) };
  }

  /** @internal */
  send(req: Request, call?: CallOptions) {
    return this.transport.send(req, call);
  }

  private async json<T>(path: string, call?: CallOptions): Promise<T> {
    const r = await this.send({ method: "GET", path, idempotent: true, ok: [503] }, call);
    return JSON.parse(r.text) as T;
  }
  /** `GET /health`. */
  health(call?: CallOptions) {
    return this.json<Json>("/health", call);
  }
  /** `GET /ready` (its body also when 503: not ready). */
  async ready(call?: CallOptions): Promise<{ ready: boolean; body: Json }> {
    const r = await this.send({ method: "GET", path: "/ready", idempotent: false, ok: [503] }, call);
    return { ready: r.status === 200, body: JSON.parse(r.text) as Json };
  }
  /** `GET /v1/stats`. */
  stats(call?: CallOptions) {
    return this.json<Json>("/v1/stats", call);
  }
  /** The served OpenAPI document. */
  openapi(call?: CallOptions) {
    return this.json<Record<string, unknown>>("/openapi.json", call);
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export interface SetOptions extends CallOptions {
  /** Time to live, ms (rounded up to whole seconds). Omit: no expiry. */
  ttlMs?: number;
  /** Tags (see `invalidateTags`). */
  tags?: string[];
}

export interface RememberOptions extends CallOptions {
  ttlMs?: number;
  tags?: string[];
}

/** One namespace: cache, counters, TTLs, and the other families under it. */
export class Namespace {
  private batch: Map<string, Pending[]> | null = null;
  private readonly flights = new Map<string, Promise<unknown>>();
  private readonly base: string;

  constructor(readonly client: Sharecache, readonly name: string) {
    this.base = `/v1/cache/${seg(name)}`;
  }

  private k(key: string) {
    return `${this.base}/${seg(key)}`;
  }

  /** The value of `key`, `undefined` on a miss. Batched into `_mget` unless `autoPipeline` is off or call options are given. */
  get<T = unknown>(key: string, call?: CallOptions): Promise<T | undefined> {
    if (this.client.autoPipeline && !call) return this.enqueue(key) as Promise<T | undefined>;
    return this.getOne<T>(key, call);
  }

  private async getOne<T>(key: string, call?: CallOptions): Promise<T | undefined> {
    const r = await this.client.send({ method: "GET", path: this.k(key), idempotent: true, ok: [404] }, call);
    return r.status === 404 ? undefined : (JSON.parse(r.text) as T);
  }

  private enqueue(key: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!this.batch) {
        this.batch = new Map();
        setImmediate(() => this.flush());
      }
      const waiters = this.batch.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.batch.set(key, [{ resolve, reject }]);
    });
  }

  private flush() {
    const batch = this.batch!;
    this.batch = null;
    const keys = [...batch.keys()];
    for (let i = 0; i < keys.length; i += this.client.maxBatch) {
      const chunk = keys.slice(i, i + this.client.maxBatch);
      const settle = (f: (p: Pending, j: number) => void) =>
        chunk.forEach((k, j) => batch.get(k)!.forEach((p) => f(p, j)));
      if (chunk.length === 1) {
        this.getOne(chunk[0]).then((v) => settle((p) => p.resolve(v)), (e) => settle((p) => p.reject(e)));
        continue;
      }
      this.mget(chunk).then(
        (vs) => settle((p, j) => p.resolve(vs[j])),
        (e) => settle((p) => p.reject(e)),
      );
    }
  }

  /** Stores `value` (any JSON). */
  async set(key: string, value: unknown, opts: SetOptions = {}): Promise<void> {
    await this.client.send(
      {
        method: "PUT",
        path: this.k(key),
        query: { ttl_ms: opts.ttlMs, tags: opts.tags?.join(",") },
        rawBody: JSON.stringify(value),
        idempotent: true,
      },
      opts,
    );
  }

  /** The value of `key` with its `etag`, TTL and tier; `undefined` on a miss. Never batched. */
  async getEntry<T = unknown>(key: string, call?: CallOptions): Promise<Entry<T> | undefined> {
    const r = await this.client.send({ method: "GET", path: this.k(key), idempotent: true, ok: [404] }, call);
    if (r.status === 404) return undefined;
    const ttl = r.headers.get("x-cache-ttl-ms");
    return {
      value: JSON.parse(r.text) as T,
      etag: r.headers.get("etag") ?? "",
      ttlMs: ttl === null ? null : Number(ttl),
      tier: (r.headers.get("x-cache-tier") ?? "l2") as Entry<T>["tier"],
    };
  }

  /**
   * Compare-and-set: stores `value` only if `key` still holds the value `etag` (from `getEntry`)
   * names (`If-Match`); whether it was stored. Of racing writers with one etag, one wins.
   */
  async setIfMatch(key: string, value: unknown, etag: string, opts: Omit<SetOptions, "tags"> = {}): Promise<boolean> {
    const r = await this.client.send(
      {
        method: "PUT",
        path: this.k(key),
        query: { ttl_ms: opts.ttlMs },
        rawBody: JSON.stringify(value),
        headers: { "if-match": etag },
        idempotent: false,
        ok: [412],
      },
      opts,
    );
    return r.status === 204;
  }

  /** Stores bytes as they are (`application/octet-stream`): a RESP client reads exactly them. */
  async setBytes(key: string, bytes: Uint8Array, opts: Omit<SetOptions, "tags"> = {}): Promise<void> {
    await this.client.send({ method: "PUT", path: this.k(key), query: { ttl_ms: opts.ttlMs }, bytes, idempotent: true }, opts);
  }

  /** The bytes of any string value (binary, text another client wrote, or a JSON value's text); `undefined` on a miss. */
  async getBytes(key: string, call?: CallOptions): Promise<Uint8Array | undefined> {
    const r = await this.client.send(
      { method: "GET", path: this.k(key), headers: { accept: "application/octet-stream" }, binary: true, idempotent: true, ok: [404] },
      call,
    );
    return r.status === 404 ? undefined : r.bytes;
  }

  /** Stores only if the key holds nothing (`If-None-Match: *`); whether it was stored. */
  async setIfAbsent(key: string, value: unknown, opts: Omit<SetOptions, "tags"> = {}): Promise<boolean> {
    const r = await this.client.send(
      {
        method: "PUT",
        path: this.k(key),
        query: { ttl_ms: opts.ttlMs },
        rawBody: JSON.stringify(value),
        headers: { "if-none-match": "*" },
        idempotent: false,
        ok: [412],
      },
      opts,
    );
    return r.status === 204;
  }

  /** Deletes `key`; whether it existed. */
  async del(key: string, call?: CallOptions): Promise<boolean> {
    const r = await this.client.send({ method: "DELETE", path: this.k(key), idempotent: true, ok: [404] }, call);
    return r.status === 204;
  }

  /** Whether `key` exists. */
  async exists(key: string, call?: CallOptions): Promise<boolean> {
    const r = await this.client.send({ method: "HEAD", path: this.k(key), idempotent: true, ok: [404] }, call);
    return r.status === 200;
  }

  /** Values of `keys` in order, `undefined` for a miss (a stored `null` reads as a miss here: the API answers `null` for both). */
  async mget<T = unknown>(keys: string[], call?: CallOptions): Promise<(T | undefined)[]> {
    if (keys.length === 0) return [];
    const r = await this.client.send(
      { method: "POST", path: `${this.base}/_mget`, body: { keys }, idempotent: true },
      call,
    );
    const { values } = JSON.parse(r.text) as { values: (T | null)[] };
    return values.map((v) => (v === null ? undefined : v));
  }

  /** Stores many values with one TTL. */
  async mset(items: Record<string, unknown> | Iterable<[string, unknown]>, opts: Omit<SetOptions, "tags"> = {}): Promise<void> {
    const obj = Symbol.iterator in Object(items) ? Object.fromEntries(items as Iterable<[string, unknown]>) : items;
    if (Object.keys(obj).length === 0) return;
    await this.client.send(
      {
        method: "POST",
        path: `${this.base}/_mset`,
        body: { items: obj, ttl_ms: opts.ttlMs },
        idempotent: true,
      },
      opts,
    );
  }

  /** Deletes many keys; how many existed. */
  async mdel(keys: string[], call?: CallOptions): Promise<number> {
    if (keys.length === 0) return 0;
    const r = await this.client.send({ method: "POST", path: `${this.base}/_mdel`, body: { keys }, idempotent: true }, call);
    return (JSON.parse(r.text) as Schemas["DeletedBody"]).deleted;
  }

  /** Deletes every key of the namespace; how many. */
  async clear(call?: CallOptions): Promise<number> {
    const r = await this.client.send({ method: "DELETE", path: this.base, idempotent: true }, call);
    return (JSON.parse(r.text) as Schemas["DeletedBody"]).deleted;
  }

  /** Deletes the keys matching a glob pattern; how many. */
  async invalidate(pattern: string, call?: CallOptions): Promise<number> {
    const r = await this.client.send({ method: "POST", path: `${this.base}/_invalidate`, body: { pattern }, idempotent: true }, call);
    return (JSON.parse(r.text) as Schemas["DeletedBody"]).deleted;
  }

  /** Makes every value written with one of `tags` a miss; how many tags. */
  async invalidateTags(tags: string[], call?: CallOptions): Promise<number> {
    const r = await this.client.send({ method: "POST", path: `${this.base}/_invalidate`, body: { tags }, idempotent: true }, call);
    return (JSON.parse(r.text) as Schemas["DeletedBody"]).invalidated_tags ?? 0;
  }

  /** One page of keys. */
  async listPage(opts: { match?: string; cursor?: string; count?: number } & CallOptions = {}): Promise<Schemas["KeysPage"]> {
    const r = await this.client.send(
      { method: "GET", path: this.base, query: { match: opts.match, cursor: opts.cursor, count: opts.count }, idempotent: true },
      opts,
    );
    return JSON.parse(r.text) as Schemas["KeysPage"];
  }

  /** Every key matching `match` (default `*`), page by page. */
  async *keys(match?: string, opts: { count?: number } & CallOptions = {}): AsyncGenerator<string> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.listPage({ ...opts, match, cursor });
      yield* page.keys;
      if (!page.cursor) return;
      cursor = page.cursor;
    }
  }

  /**
   * The value of `key`, deleted in the same step (Redis `GETDEL`): of callers racing on one
   * key exactly one gets it (a one-time code, a claim ticket); `undefined` if absent. Not
   * retried: a retry after a lost answer would find it gone.
   */
  async take<T = unknown>(key: string, call?: CallOptions): Promise<T | undefined> {
    const r = await this.client.send({ method: "POST", path: `${this.k(key)}/_take`, idempotent: false, ok: [404] }, call);
    return r.status === 404 ? undefined : (JSON.parse(r.text) as T);
  }

  /** Adds `by` (default 1) to a counter, created at 0 (with `ttlMs`) if absent; the new value. */
  async incr(key: string, by = 1, opts: { ttlMs?: number } & CallOptions = {}): Promise<number> {
    const r = await this.client.send(
      {
        method: "POST",
        path: `${this.k(key)}/_incr`,
        body: { by, ttl_ms: opts.ttlMs },
        idempotent: false,
      },
      opts,
    );
    return (JSON.parse(r.text) as Schemas["CounterValue"]).value;
  }

  decr(key: string, by = 1, opts: { ttlMs?: number } & CallOptions = {}): Promise<number> {
    return this.incr(key, -by, opts);
  }

  /** Milliseconds `key` has left; `null`: no expiry; `undefined`: no such key. */
  async ttl(key: string, call?: CallOptions): Promise<number | null | undefined> {
    const r = await this.client.send({ method: "GET", path: `${this.k(key)}/_ttl`, idempotent: true, ok: [404] }, call);
    if (r.status === 404) return undefined;
    return (JSON.parse(r.text) as Schemas["TtlBody"]).ttl_ms ?? null;
  }

  /** Sets (`ttlMs`) or removes (`null`) a key's expiry; whether the key exists. */
  async expire(key: string, ttlMs: number | null, call?: CallOptions): Promise<boolean> {
    const r = await this.client.send(
      { method: "PUT", path: `${this.k(key)}/_ttl`, body: { ttl_ms: ttlMs }, idempotent: true, ok: [404] },
      call,
    );
    return r.status === 204;
  }

  /** The cached value, or `load()`'s stored with `ttlMs`; concurrent callers in this process share one load. */
  remember<T>(key: string, load: () => Promise<T> | T, opts: RememberOptions = {}): Promise<T> {
    const inflight = this.flights.get(key);
    if (inflight) return inflight as Promise<T>;
    const p = (async () => {
      const hit = await this.get<T>(key);
      if (hit !== undefined) return hit;
      const v = await load();
      await this.set(key, v, opts);
      return v;
    })().finally(() => this.flights.delete(key));
    this.flights.set(key, p);
    return p;
  }

  sessions() {
    return new Sessions(this);
  }
  rateLimits() {
    return new RateLimits(this);
  }
  locks() {
    return new Locks(this);
  }
  events(channel: string) {
    return new Channel(this, channel);
  }
  presence(set = "default") {
    return new Presence(this, set);
  }
  queue(name: string) {
    return new Queue(this, name);
  }
}

/** Sessions (ids are secrets). */
export class Sessions {
  private readonly base: string;
  constructor(private readonly ns: Namespace) {
    this.base = `/v1/sessions/${seg(ns.name)}`;
  }
  private send(req: Request, call?: CallOptions) {
    return this.ns.client.send(req, call);
  }
  /** Creates a session; idle and absolute lifetimes in ms (defaults 30 min, 24 h). */
  async create(
    data: unknown,
    opts: { user?: string; idleTtlMs?: number; absoluteTtlMs?: number } & CallOptions = {},
  ): Promise<NewSession> {
    const r = await this.send(
      {
        method: "POST",
        path: this.base,
        body: {
          data,
          user: opts.user,
          idle_ttl_ms: opts.idleTtlMs,
          absolute_ttl_ms: opts.absoluteTtlMs,
        },
        idempotent: false,
      },
      opts,
    );
    return JSON.parse(r.text) as NewSession;
  }
  /**
   * Creates a session under `id`, an id from another store (express-session...), so moved
   * sessions stay logged in: 16..=256 URL-safe characters that look random. `undefined` if a
   * session already has that id (nothing is changed).
   */
  async import(
    id: string,
    data: unknown,
    opts: { user?: string; idleTtlMs?: number; absoluteTtlMs?: number } & CallOptions = {},
  ): Promise<NewSession | undefined> {
    const r = await this.send(
      {
        method: "PUT",
        path: `${this.base}/${seg(id)}`,
        body: { data, user: opts.user, idle_ttl_ms: opts.idleTtlMs, absolute_ttl_ms: opts.absoluteTtlMs },
        idempotent: false,
        ok: [409],
      },
      opts,
    );
    return r.status === 409 ? undefined : (JSON.parse(r.text) as NewSession);
  }
  /** Reads (and renews) a session; `undefined` if unknown or expired. */
  async get<T = unknown>(id: string, call?: CallOptions): Promise<{ data: T; created_ms: number; expires_at_ms: number } | undefined> {
    const r = await this.send({ method: "GET", path: `${this.base}/${seg(id)}`, idempotent: true, ok: [404] }, call);
    return r.status === 404 ? undefined : JSON.parse(r.text);
  }
  async update(id: string, data: unknown, call?: CallOptions): Promise<boolean> {
    const r = await this.send({ method: "PATCH", path: `${this.base}/${seg(id)}`, body: { data }, idempotent: true, ok: [404] }, call);
    return r.status === 204;
  }
  async end(id: string, call?: CallOptions): Promise<boolean> {
    const r = await this.send({ method: "DELETE", path: `${this.base}/${seg(id)}`, idempotent: true, ok: [404] }, call);
    return r.status === 204;
  }
  /** A new id for the session; the old one dies at once. */
  async rotate(id: string, call?: CallOptions): Promise<NewSession | undefined> {
    const r = await this.send({ method: "POST", path: `${this.base}/${seg(id)}/_rotate`, idempotent: false, ok: [404] }, call);
    return r.status === 404 ? undefined : (JSON.parse(r.text) as NewSession);
  }
  async list(user: string, call?: CallOptions): Promise<{ handle: string; created_ms: number; expires_at_ms: number }[]> {
    const r = await this.send({ method: "GET", path: this.base, query: { user }, idempotent: true }, call);
    return (JSON.parse(r.text) as { sessions: [] }).sessions;
  }
  async endAll(user: string, call?: CallOptions): Promise<number> {
    const r = await this.send({ method: "DELETE", path: this.base, query: { user }, idempotent: true }, call);
    return (JSON.parse(r.text) as { ended: number }).ended;
  }
}

/** The `RateLimit-*` headers of a decision. */
export interface RateLimitHeaders {
  limit?: number;
  remaining?: number;
  reset?: number;
  policy?: string;
  retryAfter?: number;
}

/** Rate limits (GCRA or sliding window). */
export class RateLimits {
  private readonly base: string;
  constructor(private readonly ns: Namespace) {
    this.base = `/v1/ratelimit/${seg(ns.name)}`;
  }
  /** One decision: a refusal is `allowed: false`, not an error. */
  async check(
    key: string,
    opts: { limit: number; periodMs: number; cost?: number; algorithm?: "gcra" | "sliding_window" } & CallOptions,
  ): Promise<Decision & { headers: RateLimitHeaders }> {
    const r = await this.ns.client.send(
      {
        method: "POST",
        path: `${this.base}/${seg(key)}`,
        body: { limit: opts.limit, period_ms: opts.periodMs, cost: opts.cost, algorithm: opts.algorithm },
        idempotent: false,
      },
      opts,
    );
    const num = (h: string) => (r.headers.get(h) === null ? undefined : Number(r.headers.get(h)));
    return {
      ...(JSON.parse(r.text) as Decision),
      headers: {
        limit: num("ratelimit-limit"),
        remaining: num("ratelimit-remaining"),
        reset: num("ratelimit-reset"),
        policy: r.headers.get("ratelimit-policy") ?? undefined,
        retryAfter: num("retry-after"),
      },
    };
  }
  /** Forgets what `key` spent; whether it had spent anything. */
  async reset(key: string, call?: CallOptions): Promise<boolean> {
    const r = await this.ns.client.send({ method: "DELETE", path: `${this.base}/${seg(key)}`, idempotent: true }, call);
    return (JSON.parse(r.text) as Schemas["ResetBody"]).reset;
  }
}

/** A held lock. */
export class Lock {
  private timer?: NodeJS.Timeout;
  released = false;
  constructor(
    private readonly locks: Locks,
    readonly name: string,
    readonly token: string,
    /** Strictly increases with every acquisition: pass it to what the lock protects. */
    readonly fence: number,
  ) {}
  /** @internal */
  autoExtend(ttlMs: number, onLost?: (e: unknown) => void) {
    this.timer = setInterval(() => {
      this.extend(ttlMs).then(
        (ok) => {
          if (!ok) {
            this.stopExtending();
            onLost?.(new SharecacheError("lock lost", { status: 409, code: "conflict" }));
          }
        },
        (e) => onLost?.(e),
      );
    }, Math.max(1, Math.floor(ttlMs / 3)));
    this.timer.unref();
  }
  private stopExtending() {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
  /** Whether this token still held it. */
  extend(ttlMs: number, call?: CallOptions) {
    return this.locks.extend(this.name, this.token, ttlMs, call);
  }
  /** Whether this token still held it. */
  async release(call?: CallOptions): Promise<boolean> {
    this.stopExtending();
    this.released = true;
    return this.locks.release(this.name, this.token, call);
  }
}

/** Locks with fencing tokens. */
export class Locks {
  private readonly base: string;
  constructor(private readonly ns: Namespace) {
    this.base = `/v1/locks/${seg(ns.name)}`;
  }
  /** Acquires `name` (waiting up to `waitMs`); `undefined` when held by someone else. `autoExtend` renews it every ttl/3 until released. */
  async acquire(
    name: string,
    opts: { ttlMs: number; waitMs?: number; autoExtend?: boolean; onLost?: (e: unknown) => void } & CallOptions,
  ): Promise<Lock | undefined> {
    const wait = opts.waitMs ?? 0;
    const r = await this.ns.client.send(
      { method: "POST", path: `${this.base}/${seg(name)}`, body: { ttl_ms: opts.ttlMs, wait_ms: wait }, idempotent: false, ok: [409] },
      { signal: opts.signal, timeoutMs: opts.timeoutMs ?? (wait > 0 ? wait + 5000 : undefined) },
    );
    if (r.status === 409) return undefined;
    const lease = JSON.parse(r.text) as Lease;
    const lock = new Lock(this, name, lease.token, lease.fence);
    if (opts.autoExtend) lock.autoExtend(opts.ttlMs, opts.onLost);
    return lock;
  }
  /** Runs `fn` holding `name` (auto-extended), then releases it; throws `conflict` if it could not be had. */
  async with<T>(name: string, opts: { ttlMs: number; waitMs?: number }, fn: (lock: Lock) => Promise<T>): Promise<T> {
    const lock = await this.acquire(name, { ...opts, autoExtend: true });
    if (!lock) throw new SharecacheError(`lock ${name} is held by someone else`, { status: 409, code: "conflict" });
    try {
      return await fn(lock);
    } finally {
      await lock.release().catch(() => {});
    }
  }
  async extend(name: string, token: string, ttlMs: number, call?: CallOptions): Promise<boolean> {
    const r = await this.ns.client.send(
      { method: "POST", path: `${this.base}/${seg(name)}/_extend`, body: { token, ttl_ms: ttlMs }, idempotent: true, ok: [409] },
      call,
    );
    return r.status === 200;
  }
  async release(name: string, token: string, call?: CallOptions): Promise<boolean> {
    const r = await this.ns.client.send(
      { method: "DELETE", path: `${this.base}/${seg(name)}`, query: { token }, idempotent: true, ok: [409] },
      call,
    );
    return r.status === 204;
  }
}

/** A durable event: its id (to resume after) and data. */
export interface DurableEvent<T = unknown> {
  id: string;
  data: T;
}

/** An event channel. */
export class Channel {
  private readonly path: string;
  constructor(private readonly ns: Namespace, readonly channel: string) {
    this.path = `/v1/events/${seg(ns.name)}/${seg(channel)}`;
  }
  /** Publishes any JSON; `durable` also appends it to the channel's log (and answers its id). */
  async publish(data: unknown, opts: { durable?: boolean } & CallOptions = {}): Promise<{ receivers: number; id?: string }> {
    const r = await this.ns.client.send(
      { method: "POST", path: this.path, query: { durable: opts.durable ? true : undefined }, rawBody: JSON.stringify(data), idempotent: false },
      opts,
    );
    return JSON.parse(r.text);
  }
  /** Durable events after `after` (oldest kept when omitted). */
  async since<T = unknown>(opts: { after?: string; count?: number } & CallOptions = {}): Promise<DurableEvent<T>[]> {
    const r = await this.ns.client.send(
      { method: "GET", path: `${this.path}/_since`, query: { after: opts.after, count: opts.count }, idempotent: true },
      opts,
    );
    return (JSON.parse(r.text) as { events: DurableEvent<T>[] }).events;
  }

  private async open(signal: AbortSignal) {
    const r = await this.ns.client.send({ method: "GET", path: this.path, idempotent: true, stream: true }, { signal, timeoutMs: 10_000 });
    return r.body!;
  }

  /**
   * Live events (at most once) as an async iterator over SSE; reconnects with backoff when
   * the stream drops. Stop with `signal` or by leaving the loop.
   */
  async *subscribe<T = unknown>(opts: { signal?: AbortSignal; reconnectMaxMs?: number; onConnect?: () => void } = {}): AsyncGenerator<T> {
    const ctl = new AbortController();
    const stop = () => ctl.abort(opts.signal?.reason);
    opts.signal?.addEventListener("abort", stop, { once: true });
    let failures = 0;
    try {
      while (!ctl.signal.aborted) {
        let body: ReadableStream<Uint8Array>;
        try {
          body = await this.open(ctl.signal);
        } catch (e) {
          if (ctl.signal.aborted) return;
          if (e instanceof SharecacheError && e.status >= 400 && e.status < 500) throw e;
          await backoffSleep(failures++, opts.reconnectMaxMs ?? 5000, ctl.signal);
          continue;
        }
        failures = 0;
        opts.onConnect?.();
        try {
          for await (const ev of parseSse(body)) {
            // The service dropped this subscriber for falling too far behind (its unread
            // events are gone): reconnect, as after any lost stream.
            if (ev.event === "dropped") break;
            if (ev.event === "message") yield JSON.parse(ev.data) as T;
          }
        } catch {
          if (ctl.signal.aborted) return;
        }
        await backoffSleep(failures++, opts.reconnectMaxMs ?? 5000, ctl.signal);
      }
    } finally {
      opts.signal?.removeEventListener("abort", stop);
      ctl.abort();
    }
  }

  /**
   * Durable events with their ids, resuming after `after` (or the oldest kept): replays the
   * log with `_since`, then wakes on each live SSE event to read the log on from the last
   * id seen, so a reconnect loses nothing that was published with `durable: true`.
   */
  async *subscribeDurable<T = unknown>(opts: { after?: string; signal?: AbortSignal; count?: number; onConnect?: () => void } = {}): AsyncGenerator<DurableEvent<T>> {
    let after = opts.after;
    const ctl = new AbortController();
    const stop = () => ctl.abort(opts.signal?.reason);
    opts.signal?.addEventListener("abort", stop, { once: true });
    const wake: (() => void)[] = [];
    let pending = true;
    const live = (async () => {
      for await (const _ of this.subscribe({ signal: ctl.signal, onConnect: () => { pending = true; wake.splice(0).forEach((f) => f()); opts.onConnect?.(); } })) {
        pending = true;
        wake.splice(0).forEach((f) => f());
      }
    })().catch(() => {});
    try {
      while (!ctl.signal.aborted) {
        if (!pending) {
          await new Promise<void>((res) => {
            wake.push(res);
            ctl.signal.addEventListener("abort", () => res(), { once: true });
          });
          continue;
        }
        pending = false;
        for (;;) {
          const evs = await this.since<T>({ after, count: opts.count ?? 100, signal: ctl.signal });
          for (const ev of evs) {
            after = ev.id;
            yield ev;
          }
          if (evs.length < (opts.count ?? 100)) break;
        }
      }
    } finally {
      opts.signal?.removeEventListener("abort", stop);
      ctl.abort();
      await live;
    }
  }
}

async function backoffSleep(attempt: number, maxMs: number, signal: AbortSignal) {
  const ms = Math.random() * Math.min(maxMs, 100 * 2 ** attempt);
  await new Promise<void>((res) => {
    const t = setTimeout(res, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); res(); }, { once: true });
  });
}

/** A presence set. */
export class Presence {
  private readonly base: string;
  constructor(private readonly ns: Namespace, readonly set: string) {
    this.base = `/v1/presence/${seg(ns.name)}`;
  }
  /** `member` is online for `ttlMs` (default 60 s). */
  async beat(member: string, opts: { ttlMs?: number } & CallOptions = {}): Promise<void> {
    await this.ns.client.send(
      { method: "PUT", path: `${this.base}/${seg(member)}`, query: { set: this.set, ttl_ms: opts.ttlMs }, idempotent: true },
      opts,
    );
  }
  /** Whether `member` was online. */
  async leave(member: string, call?: CallOptions): Promise<boolean> {
    const r = await this.ns.client.send(
      { method: "DELETE", path: `${this.base}/${seg(member)}`, query: { set: this.set }, idempotent: true, ok: [404] },
      call,
    );
    return r.status === 204;
  }
  async list(call?: CallOptions): Promise<{ member: string; expires_in_ms: number }[]> {
    const r = await this.ns.client.send({ method: "GET", path: this.base, query: { set: this.set }, idempotent: true }, call);
    return (JSON.parse(r.text) as { members: { member: string; expires_in_ms: number }[] }).members;
  }
}

/** A work queue (at least once). */
export class Queue {
  private readonly base: string;
  constructor(private readonly ns: Namespace, readonly name: string) {
    this.base = `/v1/queues/${seg(ns.name)}/${seg(name)}`;
  }
  /** Pushes any JSON; its id. */
  async push(payload: unknown, call?: CallOptions): Promise<string> {
    const r = await this.ns.client.send({ method: "POST", path: this.base, rawBody: JSON.stringify(payload), idempotent: false }, call);
    return (JSON.parse(r.text) as { id: string }).id;
  }
  /** Claims up to `count` messages for `consumer`. */
  async claim<T = unknown>(
    consumer: string,
    opts: { count?: number; waitMs?: number; visibilityMs?: number; maxDeliveries?: number } & CallOptions = {},
  ): Promise<QueueMessage<T>[]> {
    const wait = opts.waitMs ?? 0;
    const r = await this.ns.client.send(
      {
        method: "POST",
        path: `${this.base}/_claim`,
        body: { consumer, count: opts.count, wait_ms: opts.waitMs, visibility_ms: opts.visibilityMs, max_deliveries: opts.maxDeliveries },
        idempotent: false,
      },
      { signal: opts.signal, timeoutMs: opts.timeoutMs ?? (wait > 0 ? wait + 5000 : undefined) },
    );
    return (JSON.parse(r.text) as { messages: QueueMessage<T>[] }).messages;
  }
  /** Acknowledges claimed messages; how many were pending. */
  async ack(ids: string[], call?: CallOptions): Promise<number> {
    const r = await this.ns.client.send({ method: "POST", path: `${this.base}/_ack`, body: { ids }, idempotent: true }, call);
    return (JSON.parse(r.text) as { acked: number }).acked;
  }
  /** The oldest 100 dead letters. */
  async dead<T = unknown>(call?: CallOptions): Promise<QueueMessage<T>[]> {
    const r = await this.ns.client.send({ method: "GET", path: `${this.base}/_dead`, idempotent: true }, call);
    return (JSON.parse(r.text) as { messages: QueueMessage<T>[] }).messages;
  }
  /** How many messages are ready (not yet delivered), pending (delivered, not acknowledged) and dead. */
  async stats(call?: CallOptions): Promise<{ ready: number; pending: number; dead: number }> {
    const r = await this.ns.client.send({ method: "GET", path: `${this.base}/_stats`, idempotent: true }, call);
    return JSON.parse(r.text);
  }
  /** Puts the dead letter of message `id` back as a new message; its new id, `undefined` if there is none. */
  async requeueDead(id: string, call?: CallOptions): Promise<string | undefined> {
    const r = await this.ns.client.send({ method: "POST", path: `${this.base}/_dead/${seg(id)}/_requeue`, idempotent: false, ok: [404] }, call);
    return r.status === 404 ? undefined : (JSON.parse(r.text) as { id: string }).id;
  }
  /** Drops the dead letter of message `id` for good; whether there was one. */
  async dropDead(id: string, call?: CallOptions): Promise<boolean> {
    const r = await this.ns.client.send({ method: "DELETE", path: `${this.base}/_dead/${seg(id)}`, idempotent: true, ok: [404] }, call);
    return r.status === 204;
  }
}
