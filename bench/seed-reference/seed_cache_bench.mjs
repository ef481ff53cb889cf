// Reference benchmark: the in-memory cache design from the project's seed plan,
// re-implemented here from its described behaviour, measured on Node.js.
//
// The design: a Map of items { value, expires, size } plus a second Map of last-access
// times. `set` estimates the value's size with JSON.stringify, and before inserting it
// either finds the cache full by count or sums the size of every item (a walk over the
// whole map) to compare with the byte budget; when over, it scans the access-time map
// for the oldest key and drops it. `get` looks the key up, compares Date.now() with the
// deadline, records the access time and bumps a hit counter. Both are async.
//
// Run: node bench/seed-reference/seed_cache_bench.mjs
// Prints one progress line per measurement on stderr and a JSON line on stdout:
//   {"node":..,"get_hit_ns_10k":..,"get_hit_ns_100k":..,"set_ns_1k":..,"set_ns_10k":..,
//    "set_evict_ns_1k":..,"set_evict_ns_10k":..}
// Each figure is the median of 5 runs, in nanoseconds per awaited call.

class SeedStyleMemoryCache {
  constructor({ maxSize = 10000, maxMemoryMB = 50, cleanupIntervalMs = 60000 } = {}) {
    this.maxSize = maxSize;
    this.maxBytes = maxMemoryMB * 1024 * 1024;
    this.cache = new Map(); // key -> { value, expires, size }
    this.accessOrder = new Map(); // key -> last access time (ms)
    this.expiryLog = []; // every (key, deadline) ever written; trimmed by the sweeper
    this.counters = { hits: 0, misses: 0, sets: 0, deletes: 0, evictions: 0 };
    // The design sweeps expired items on a timer; unref'd so the benchmark can exit.
    this.sweeper = setInterval(() => this.sweep(), cleanupIntervalMs);
    this.sweeper.unref();
  }

  async set(key, value, ttlSeconds = 300) {
    const expires = Date.now() + ttlSeconds * 1000;
    const size = this.sizeOf(value);
    // Full by count, or (only then evaluated) over the byte budget: sum of every item.
    if (this.cache.size >= this.maxSize || this.totalBytes() + size > this.maxBytes) {
      this.dropLeastRecentlyUsed();
    }
    if (this.cache.has(key)) {
      this.cache.delete(key);
      this.accessOrder.delete(key);
    }
    this.cache.set(key, { value, expires, size });
    this.accessOrder.set(key, Date.now());
    this.expiryLog.push({ key, expires });
    this.counters.sets++;
    return true;
  }

  async get(key) {
    const item = this.cache.get(key);
    if (item === undefined) {
      this.counters.misses++;
      return null;
    }
    if (Date.now() > item.expires) {
      await this.del(key);
      this.counters.misses++;
      return null;
    }
    this.accessOrder.set(key, Date.now());
    this.counters.hits++;
    return item.value;
  }

  async del(key) {
    const existed = this.cache.delete(key);
    if (existed) {
      this.accessOrder.delete(key);
      this.counters.deletes++;
    }
    return existed;
  }

  // Size estimate: two bytes per character of the JSON text.
  sizeOf(value) {
    return JSON.stringify(value).length * 2;
  }

  // Walks every item to add up the estimated sizes.
  totalBytes() {
    let sum = 0;
    for (const item of this.cache.values()) sum += item.size || 0;
    return sum;
  }

  // Linear scan of the access-time map for the oldest key.
  dropLeastRecentlyUsed() {
    let victim = null;
    let oldest = Infinity;
    for (const [key, at] of this.accessOrder) {
      if (at < oldest) {
        oldest = at;
        victim = key;
      }
    }
    if (victim !== null) {
      this.cache.delete(victim);
      this.accessOrder.delete(victim);
      this.counters.evictions++;
    }
  }

  sweep() {
    const now = Date.now();
    for (const [key, item] of this.cache) {
      if (now > item.expires) {
        this.cache.delete(key);
        this.accessOrder.delete(key);
      }
    }
    this.expiryLog = this.expiryLog.filter((e) => e.expires >= now);
  }

  close() {
    clearInterval(this.sweeper);
  }
}

// ---- harness ---------------------------------------------------------------------------

const VALUE = 'v'.repeat(100); // a 100-character value, as in the Rust benchmarks
const RUNS = 5;

// xorshift32: deterministic random indices, precomputed so the timed loop only reads them.
function randomIndices(count, bound, seed) {
  const out = new Uint32Array(count);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x % bound;
  }
  return out;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function filled(n, options) {
  const cache = new SeedStyleMemoryCache(options);
  for (let i = 0; i < n; i++) await cache.set(`key:${i}`, VALUE);
  if (cache.cache.size !== n) throw new Error(`prefill: ${cache.cache.size} items, want ${n}`);
  return cache;
}

// Same end state as `filled`, without calling `set` n times: set walks every item, so
// filling 100 000 items through it would take minutes. Only used to measure `get` on a
// cache larger than the design's default 10 000 items (a like-for-like point for the
// Rust store at 100 000); the limits are raised so the items are legitimately held.
function filledDirect(n) {
  const cache = new SeedStyleMemoryCache({ maxSize: n, maxMemoryMB: 1024 });
  const expires = Date.now() + 300 * 1000;
  const size = cache.sizeOf(VALUE);
  for (let i = 0; i < n; i++) {
    const key = `key:${i}`;
    cache.cache.set(key, { value: VALUE, expires, size });
    cache.accessOrder.set(key, Date.now());
    cache.expiryLog.push({ key, expires });
  }
  return cache;
}

// Median ns per `await cache.get(key)` hit, random keys, cache of n items.
async function benchGet(n, iterations) {
  const cache = n <= 10_000 ? await filled(n) : filledDirect(n);
  const keys = Array.from({ length: n }, (_, i) => `key:${i}`);
  const MASK = (1 << 16) - 1;
  const idx = randomIndices(MASK + 1, n, 0x9e3779b9);
  let sink = 0;
  const once = async (count) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const v = await cache.get(keys[idx[i & MASK]]);
      sink += v.length;
    }
    return Number(process.hrtime.bigint() - t0) / count;
  };
  await once(iterations / 10); // warm-up: let the JIT settle
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await once(iterations));
  if (sink === 0) throw new Error('no hits');
  if (cache.counters.misses !== 0) throw new Error(`${cache.counters.misses} misses`);
  cache.close();
  console.error(`get hit, ${n} items: runs ${runs.map((x) => x.toFixed(1)).join(' ')} ns`);
  return median(runs);
}

// Median ns per `await cache.set` overwriting a random existing key, cache of n items
// (default limits: 10 000 items, 50 MB).
async function benchSetOverwrite(n, iterations) {
  const cache = await filled(n);
  const keys = Array.from({ length: n }, (_, i) => `key:${i}`);
  const idx = randomIndices(iterations, n, 0x85ebca6b);
  const once = async (count) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) await cache.set(keys[idx[i]], VALUE);
    return Number(process.hrtime.bigint() - t0) / count;
  };
  await once(Math.max(1, iterations / 10));
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await once(iterations));
  cache.close();
  console.error(`set overwrite, ${n} items: runs ${runs.map((x) => x.toFixed(0)).join(' ')} ns`);
  return median(runs);
}

// Median ns per `await cache.set` of a fresh key into a cache full at n items
// (maxSize = n): every call evicts by scanning the access-time map.
async function benchSetEvict(n, iterations) {
  const cache = await filled(n, { maxSize: n });
  let next = n;
  const once = async (count) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) await cache.set(`key:${next++}`, VALUE);
    return Number(process.hrtime.bigint() - t0) / count;
  };
  await once(Math.max(1, iterations / 10));
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await once(iterations));
  if (cache.cache.size !== n) throw new Error(`size ${cache.cache.size}, want ${n}`);
  cache.close();
  console.error(`set evict, ${n} items: runs ${runs.map((x) => x.toFixed(0)).join(' ')} ns`);
  return median(runs);
}

const result = {
  get_hit_ns_10k: await benchGet(10_000, 2_000_000),
  get_hit_ns_100k: await benchGet(100_000, 2_000_000),
  set_ns_1k: await benchSetOverwrite(1_000, 20_000),
  set_ns_10k: await benchSetOverwrite(10_000, 4_000),
  set_evict_ns_1k: await benchSetEvict(1_000, 20_000),
  set_evict_ns_10k: await benchSetEvict(10_000, 4_000),
};
for (const k of Object.keys(result)) result[k] = Math.round(result[k] * 10) / 10;
console.log(JSON.stringify({ node: process.version, ...result }));
