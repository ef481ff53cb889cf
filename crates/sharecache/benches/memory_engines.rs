//! Measured comparison of the two candidate engines for the bounded in-memory store,
//! each configured the way `store/memory.rs` needs it: weighed by bytes, `String` keys,
//! values of 100 `Bytes` plus an expiry deadline, 100 000 entries.
//!
//! * moka: `moka::sync::Cache` with a weigher and per-entry expiry (the `Expiry` trait).
//! * quick_cache: `quick_cache::sync::Cache` with a weighter and the deadline stored in
//!   the value, checked on read (lazy expiry, as `store/memory.rs` does).
//!
//! Run: `cargo bench -p sharecache --bench memory_engines`.
//! Figures are recorded in `docs/bench-results/memory.md`.

#![allow(missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

/// Entries held in every benchmark.
const N: usize = 100_000;
const VALUE_LEN: usize = 100;
/// Per-entry overhead counted in the byte budget, as in `store/memory.rs`.
const ENTRY_OVERHEAD: u64 = 64;
/// Every entry weighs at least this much (the store's `max_bytes / max_entries`), so a
/// budget of `n * MIN_WEIGHT` holds exactly `n` of our entries.
const MIN_WEIGHT: u64 = 256;
/// TTL given to every entry: long enough that nothing expires during a run.
const TTL_MS: u64 = 3_600_000;

/// A stored value: the encoded bytes and a deadline in clock milliseconds (0 = none).
#[derive(Clone)]
struct Val {
    value: Bytes,
    expires_at: u64,
}

fn weight(key: &str, v: &Val) -> u64 {
    (key.len() as u64 + v.value.len() as u64 + ENTRY_OVERHEAD).max(MIN_WEIGHT)
}

/// Milliseconds since `origin`, never 0 (same convention as the store's clock).
fn ms_since(origin: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(origin).as_millis() as u64 + 1
}

/// Tiny xorshift generator: random indices without touching a shared RNG.
struct Rng(u64);

impl Rng {
    #[inline]
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        ((u128::from(x) * n as u128) >> 64) as usize
    }
}

fn key(i: usize) -> String {
    format!("ns:key:{i}")
}

/// Writes key `i` into `buf`. Keys are built per call, as a caller builds them, rather
/// than read from a big pre-built table whose random reads would add cache misses of the
/// harness's own to every operation.
#[inline]
fn format_key(buf: &mut String, i: usize) {
    buf.clear();
    let _ = write!(buf, "ns:key:{i}");
}

/// A distinct 100-byte buffer per entry, as real values would be.
fn own_value(i: usize) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; VALUE_LEN])
}

// ---- moka -------------------------------------------------------------------------------

/// Per-entry expiry from the deadline carried in the value.
struct DeadlineExpiry {
    origin: Instant,
}

impl DeadlineExpiry {
    fn remaining(&self, v: &Val, at: Instant) -> Option<Duration> {
        (v.expires_at != 0)
            .then(|| Duration::from_millis(v.expires_at.saturating_sub(ms_since(self.origin, at))))
    }
}

impl moka::Expiry<String, Val> for DeadlineExpiry {
    fn expire_after_create(&self, _key: &String, v: &Val, created_at: Instant) -> Option<Duration> {
        self.remaining(v, created_at)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        v: &Val,
        updated_at: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        // An overwrite carries its own TTL, as in Redis SET ... PX.
        self.remaining(v, updated_at)
    }
}

struct Moka {
    map: moka::sync::Cache<String, Val>,
    origin: Instant,
}

impl Moka {
    fn new(entries: usize, weight_capacity: u64) -> Self {
        let origin = Instant::now();
        let map = moka::sync::Cache::builder()
            .initial_capacity(entries)
            .max_capacity(weight_capacity)
            .weigher(|k: &String, v: &Val| weight(k, v).min(u64::from(u32::MAX)) as u32)
            .expire_after(DeadlineExpiry { origin })
            .build();
        Self { map, origin }
    }

    #[inline]
    fn get(&self, key: &str) -> Option<Bytes> {
        // moka checks the entry's expiry itself.
        self.map.get(key).map(|v| v.value)
    }

    #[inline]
    fn set(&self, key: String, value: Bytes) {
        let expires_at = ms_since(self.origin, Instant::now()) + TTL_MS;
        self.map.insert(key, Val { value, expires_at });
    }
}

// ---- quick_cache ------------------------------------------------------------------------

#[derive(Clone)]
struct ValWeighter;

impl quick_cache::Weighter<String, Val> for ValWeighter {
    #[inline]
    fn weight(&self, key: &String, v: &Val) -> u64 {
        weight(key, v)
    }
}

struct Quick {
    map: quick_cache::sync::Cache<String, Val, ValWeighter>,
    origin: Instant,
}

impl Quick {
    fn new(entries: usize, weight_capacity: u64) -> Self {
        // Same sharding rule as store/memory.rs.
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (cores * 4).next_power_of_two().clamp(1, 64);
        let shards = if weight_capacity < (64 << 20) {
            shards.min(8)
        } else {
            shards
        };
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(entries)
            .weight_capacity(weight_capacity)
            .shards(shards)
            .build()
            .expect("quick_cache options");
        let map = quick_cache::sync::Cache::with_options(
            options,
            ValWeighter,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        Self {
            map,
            origin: Instant::now(),
        }
    }

    #[inline]
    fn now_ms(&self) -> u64 {
        ms_since(self.origin, Instant::now())
    }

    #[inline]
    fn get(&self, key: &str) -> Option<Bytes> {
        // Lazy expiry: the deadline is checked on every read.
        let v = self.map.get(key)?;
        (v.expires_at == 0 || v.expires_at > self.now_ms()).then_some(v.value)
    }

    #[inline]
    fn set(&self, key: String, value: Bytes) {
        let expires_at = self.now_ms() + TTL_MS;
        self.map.insert(key, Val { value, expires_at });
    }
}

// ---- benchmarks -------------------------------------------------------------------------

/// The operations every engine offers, so each benchmark is written once.
trait Engine {
    fn get(&self, key: &str) -> Option<Bytes>;
    fn set(&self, key: String, value: Bytes);
    fn settle(&self) {}
    fn len(&self) -> u64;
}

impl Engine for Moka {
    fn get(&self, key: &str) -> Option<Bytes> {
        Moka::get(self, key)
    }
    fn set(&self, key: String, value: Bytes) {
        Moka::set(self, key, value);
    }
    fn settle(&self) {
        self.map.run_pending_tasks();
    }
    fn len(&self) -> u64 {
        self.map.entry_count()
    }
}

impl Engine for Quick {
    fn get(&self, key: &str) -> Option<Bytes> {
        Quick::get(self, key)
    }
    fn set(&self, key: String, value: Bytes) {
        Quick::set(self, key, value);
    }
    fn len(&self) -> u64 {
        self.map.len() as u64
    }
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

/// Fills `engine` with `keys` (a distinct value buffer each) and checks they all hit.
fn prefill<E: Engine>(engine: &E, keys: &[String], check: bool) {
    for (i, k) in keys.iter().enumerate() {
        engine.set(k.clone(), own_value(i));
    }
    engine.settle();
    if check {
        let hits = keys.iter().filter(|k| engine.get(k).is_some()).count();
        assert_eq!(hits, keys.len(), "prefill must leave every key resident");
    }
}

/// Get hit and set (overwrite) on a store holding N entries with room to spare.
fn bench_get_and_set<E: Engine>(c: &mut Criterion, name: &str, engine: &E, keys: &[String]) {
    prefill(engine, keys, true);
    let shared = Bytes::from(vec![7u8; VALUE_LEN]);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let mut buf = String::with_capacity(32);

    let mut g = configure(c, "memory_engines/get_hit_100k");
    g.bench_function(name, |b| {
        b.iter(|| {
            format_key(&mut buf, rng.below(N));
            black_box(engine.get(&buf).expect("hit"))
        })
    });
    g.finish();

    let mut g = configure(c, "memory_engines/set_overwrite_100k");
    g.bench_function(name, |b| {
        b.iter(|| {
            format_key(&mut buf, rng.below(N));
            engine.set(buf.clone(), shared.clone())
        })
    });
    g.finish();

    engine.settle();
    let len = engine.len();
    assert!(len >= N as u64 * 99 / 100, "{name}: {len} entries");
}

/// Set of fresh keys into a store that is full: every insert evicts (with moka's TinyLFU
/// admission the newcomer itself may be the one turned away; either way one entry leaves).
fn bench_set_evict<E: Engine>(c: &mut Criterion, name: &str, engine: &E, keys: &[String]) {
    prefill(engine, keys, false);
    let shared = Bytes::from(vec![7u8; VALUE_LEN]);
    let mut next = N;
    let mut buf = String::with_capacity(32);

    let mut g = configure(c, "memory_engines/set_evict_100k");
    g.bench_function(name, |b| {
        b.iter(|| {
            format_key(&mut buf, next);
            next += 1;
            engine.set(buf.clone(), shared.clone());
        })
    });
    g.finish();

    engine.settle();
    let len = engine.len();
    assert!(
        len <= N as u64 && len >= N as u64 * 95 / 100,
        "{name}: {len} entries after the eviction run, expected about {N}"
    );
}

fn benches(c: &mut Criterion) {
    let keys: Vec<String> = (0..N).map(key).collect();
    // Room for twice N of our entries: nothing is evicted in get/set.
    let roomy = 2 * N as u64 * MIN_WEIGHT;
    // Exactly N of our entries: every fresh insert evicts.
    let full = N as u64 * MIN_WEIGHT;

    bench_get_and_set(c, "moka", &Moka::new(N, roomy), &keys);
    bench_get_and_set(c, "quick_cache", &Quick::new(N, roomy), &keys);
    bench_set_evict(c, "moka", &Moka::new(N, full), &keys);
    bench_set_evict(c, "quick_cache", &Quick::new(N, full), &keys);
}

criterion_group!(memory_engines, benches);
criterion_main!(memory_engines);
