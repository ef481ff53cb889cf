//! Benchmarks of the embedded memory store through its public API.
//!
//! * `memory_store/get_hit/{n}`: `Store::get_raw` of a random resident key, `n` entries.
//! * `memory_store/set_overwrite/{n}`: `Store::set_raw` of a random resident key (TTL 1 h).
//! * `memory_store/set_evict/{n}`: `Store::set_raw` of a fresh key into a store that holds
//!   exactly `n` entries and is full, so every set evicts one.
//! * `memory_store/typed_get_hit/100000`: `Namespace::get::<u64>` through
//!   `Cache::builder().memory().build()` (key check, store, decode, counters).
//! * `memory_store/keygen/format`: cost of formatting one key into a reused buffer, which
//!   every benchmark above does per operation (keys are built per call, as callers do).
//!
//! Each timed sample runs its `iters` operations inside one `block_on` of a current-thread
//! runtime (`iter_custom`), so the runtime's entry cost is not counted per operation.
//! Stores are filled once per size, outside the timed part.
//!
//! Run: `cargo bench -p sharecache --bench memory_store`.
//! Figures are recorded in `docs/bench-results/memory.md`.

#![allow(missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use sharecache::{Cache, MemoryLimits, Store, Ttl};
use tokio::runtime::Runtime;

/// Store sizes. 10 000 is the seed design's default capacity (`maxSize`), measured for a
/// like-for-like comparison with `bench/seed-reference/seed_cache_bench.mjs`.
const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const VALUE_LEN: usize = 100;
/// Stored keys are `ns:key:{i}`.
const KEY_PREFIX: &str = "ns:key:";
const TTL: Duration = Duration::from_secs(3600);
/// Per-entry weight floor used to size stores (`max_bytes / max_entries`); above the
/// real weight of our entries (key + 100 + 64 bytes), so the entry bound is what binds.
const SLOT_BYTES: u64 = 512;

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

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

/// Writes key `i` into `buf`. Keys are built per call, as a caller builds them, rather
/// than read from a big pre-built table whose random reads would add cache misses of the
/// harness's own to every operation (`memory_store/keygen/format` is its cost).
#[inline]
fn format_key(buf: &mut String, prefix: &str, i: usize) {
    buf.clear();
    let _ = write!(buf, "{prefix}{i}");
}

/// A distinct 100-byte buffer per entry, as real values would be.
fn own_value(i: usize) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; VALUE_LEN])
}

/// Fills `store` with keys `0..n`, outside any timing.
fn prefill(rt: &Runtime, store: &Store, n: usize) {
    let mut key = String::with_capacity(32);
    rt.block_on(async {
        for i in 0..n {
            format_key(&mut key, KEY_PREFIX, i);
            store
                .set_raw(&key, own_value(i), Some(TTL))
                .await
                .expect("prefill set");
        }
    });
}

fn count_hits(rt: &Runtime, store: &Store, n: usize) -> usize {
    let mut key = String::with_capacity(32);
    rt.block_on(async {
        let mut hits = 0;
        for i in 0..n {
            format_key(&mut key, KEY_PREFIX, i);
            if store.get_raw(&key).await.expect("get").is_some() {
                hits += 1;
            }
        }
        hits
    })
}

/// get hit and set (overwrite) at `n` entries, on a store with room for 2n.
fn bench_get_and_set(c: &mut Criterion, rt: &Runtime, n: usize) {
    let store = Store::memory(MemoryLimits {
        max_entries: 2 * n as u64,
        max_bytes: 2 * n as u64 * SLOT_BYTES,
    })
    .expect("memory store");
    prefill(rt, &store, n);
    assert_eq!(
        count_hits(rt, &store, n),
        n,
        "every prefilled key must be resident"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut key = String::with_capacity(32);

    let mut g = group(c, "memory_store/get_hit");
    g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    format_key(&mut key, KEY_PREFIX, rng.below(n));
                    let v = store.get_raw(&key).await;
                    black_box(v.expect("get").expect("hit"));
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    let value = Bytes::from(vec![7u8; VALUE_LEN]);
    let mut g = group(c, "memory_store/set_overwrite");
    g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    format_key(&mut key, KEY_PREFIX, rng.below(n));
                    store
                        .set_raw(&key, value.clone(), Some(TTL))
                        .await
                        .expect("set");
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    // Nothing was evicted: every key is still resident. (`stats().evictions` is not
    // checked: quick_cache 0.7 reports a replaced value through `on_evict`, so that
    // counter also counts overwrites.)
    let stats = rt.block_on(store.stats()).expect("stats");
    assert_eq!(stats.keys, n as u64, "overwrites must not change the count");
    assert_eq!(
        count_hits(rt, &store, n),
        n,
        "no key may be evicted with room for 2n"
    );
}

/// set of fresh keys into a store that holds exactly `n` entries and is full.
fn bench_set_evict(c: &mut Criterion, rt: &Runtime, n: usize) {
    // Every entry weighs max_bytes / max_entries = SLOT_BYTES, so the store holds n.
    let store = Store::memory(MemoryLimits {
        max_entries: n as u64,
        max_bytes: n as u64 * SLOT_BYTES,
    })
    .expect("memory store");
    prefill(rt, &store, n);
    let before = rt.block_on(store.stats()).expect("stats");
    let value = Bytes::from(vec![7u8; VALUE_LEN]);
    let mut next = n;
    let mut key = String::with_capacity(32);

    let mut g = group(c, "memory_store/set_evict");
    g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    format_key(&mut key, KEY_PREFIX, next);
                    next += 1;
                    store
                        .set_raw(&key, value.clone(), Some(TTL))
                        .await
                        .expect("set");
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    let after = rt.block_on(store.stats()).expect("stats");
    let sets = (next - n) as u64;
    assert!(
        after.keys <= n as u64,
        "{} keys over the bound {n}",
        after.keys
    );
    assert!(
        after.evictions - before.evictions + (n as u64) >= sets,
        "expected about one eviction per set: {} evictions for {sets} sets",
        after.evictions - before.evictions
    );
}

/// The full typed path: key check, store, decode, counters.
fn bench_typed_get(c: &mut Criterion, rt: &Runtime) {
    const N: usize = 100_000;
    let ns = rt.block_on(async {
        let cache = Cache::builder().memory().build().await.expect("cache");
        let ns = cache.namespace("bench").expect("namespace");
        for i in 0..N as u64 {
            ns.set(&format!("key:{i}"), &i, Ttl::secs(3600))
                .await
                .expect("set");
        }
        ns
    });
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut key = String::with_capacity(32);

    let mut g = group(c, "memory_store/typed_get_hit");
    g.bench_with_input(BenchmarkId::from_parameter(N), &N, |b, &n| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let i = rng.below(n);
                    format_key(&mut key, "key:", i);
                    let v: Option<u64> = ns.get(&key).await.expect("get");
                    debug_assert_eq!(v, Some(i as u64));
                    black_box(v);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

/// What formatting one fresh key costs (part of every `set_evict` operation).
fn bench_keygen(c: &mut Criterion) {
    let mut next = 1_000_000usize;
    let mut key = String::with_capacity(32);
    let mut g = group(c, "memory_store/keygen");
    g.bench_function("format", |b| {
        b.iter(|| {
            format_key(&mut key, KEY_PREFIX, next);
            next += 1;
            black_box(key.len())
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    for n in SIZES {
        bench_get_and_set(c, &rt, n);
    }
    for n in SIZES {
        bench_set_evict(c, &rt, n);
    }
    bench_typed_get(c, &rt);
    bench_keygen(c);
}

criterion_group!(memory_store, benches);
criterion_main!(memory_store);
