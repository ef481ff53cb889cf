/**
 * `KeyvSharecache`: a Keyv 5 store over one sharecache namespace.
 *
 * Keyv prefixes keys with its own namespace (`keyv:` by default) and serializes values to
 * strings; the store keeps both as given (no second prefix), so `clear()` deletes only the
 * keys under its Keyv namespace and the sharecache namespace's other keys stay.
 */
import { EventEmitter } from "node:events";
import { type ClientOptions, type Namespace, Sharecache } from "@sharecache/client";

export interface KeyvSharecacheOptions extends Partial<ClientOptions> {
  /** The sharecache namespace the store writes (e.g. `cache`). */
  namespace: string;
  /** An existing client to share (its connections and auto-pipelining); otherwise `url` and `token`. */
  client?: Sharecache;
}

/** Escapes glob metacharacters as the server's patterns expect (`\`). */
const escapeGlob = (s: string) => s.replace(/[*?[\]\\^-]/g, (c) => "\\" + c);

export class KeyvSharecache extends EventEmitter {
  /** Keyv reads `opts.dialect` to decide that this store can iterate (it lists a fixed set of dialects; sharecache runs on Redis). */
  readonly opts: { dialect: "redis"; url: string; namespace: string };
  /** Set by Keyv: its namespace, the prefix of every key it hands this store. */
  namespace?: string;
  readonly cache: Namespace;
  readonly client: Sharecache;

  constructor(opts: KeyvSharecacheOptions) {
    super();
    if (opts.client) this.client = opts.client;
    else {
      if (!opts.url || !opts.token) throw new TypeError("KeyvSharecache needs a client, or url and token");
      this.client = new Sharecache(opts as ClientOptions);
    }
    this.cache = this.client.ns(opts.namespace);
    this.opts = { dialect: "redis", url: opts.url ?? "sharecache", namespace: opts.namespace };
  }

  /** Emits `error` (Keyv re-emits it: its `get` does not report a store's failure otherwise) and rethrows. */
  private async guard<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (this.listenerCount("error") > 0) this.emit("error", e);
      throw e;
    }
  }

  async get<Value>(key: string): Promise<Value | undefined> {
    return this.guard(this.cache.get<Value>(key));
  }

  async getMany<Value>(keys: string[]): Promise<Array<Value | undefined>> {
    return this.guard(this.cache.mget<Value>(keys));
  }

  /** `ttl` in ms, as the server keeps it (`ttl_ms`). */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    await this.guard(this.cache.set(key, value, { ttlMs: typeof ttl === "number" && ttl > 0 ? ttl : undefined }));
    return true;
  }

  async setMany(values: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    const byTtl = new Map<number | undefined, Record<string, unknown>>();
    for (const { key, value, ttl } of values) {
      const t = typeof ttl === "number" && ttl > 0 ? ttl : undefined;
      const group = byTtl.get(t) ?? {};
      group[key] = value;
      byTtl.set(t, group);
    }
    await this.guard(Promise.all([...byTtl].map(([ttlMs, items]) => this.cache.mset(items, { ttlMs }))));
  }

  async delete(key: string): Promise<boolean> {
    return this.guard(this.cache.del(key));
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    return (await this.guard(this.cache.mdel(keys))) > 0;
  }

  async has(key: string): Promise<boolean> {
    return this.guard(this.cache.exists(key));
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return this.guard(Promise.all(keys.map((k) => this.cache.exists(k))));
  }

  /** Deletes the keys of this Keyv namespace (all of the sharecache namespace when Keyv has none). */
  async clear(): Promise<void> {
    if (this.namespace) await this.guard(this.cache.invalidate(`${escapeGlob(this.namespace)}:*`));
    else await this.guard(this.cache.clear());
  }

  /** `[key, value]` of every key of `namespace` (Keyv's), a page at a time. */
  async *iterator<Value>(namespace?: string): AsyncGenerator<[string, Value], void> {
    const pattern = namespace ? `${escapeGlob(namespace)}:*` : "*";
    let cursor: string | undefined;
    try {
      for (;;) {
        const page = await this.cache.listPage({ match: pattern, cursor, count: 100 });
        const values = await this.cache.mget<Value>(page.keys);
        for (let i = 0; i < page.keys.length; i++) {
          const v = values[i];
          if (v !== undefined) yield [page.keys[i], v];
        }
        if (!page.cursor) return;
        cursor = page.cursor;
      }
    } catch (e) {
      if (this.listenerCount("error") > 0) this.emit("error", e);
      throw e;
    }
  }

  async disconnect(): Promise<void> {}
}

export default KeyvSharecache;

/** `new Keyv({ store: createKeyv(...) })` shorthand. */
export function createKeyvStore(opts: KeyvSharecacheOptions) {
  return new KeyvSharecache(opts);
}
