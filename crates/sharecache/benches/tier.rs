//! L1 hit through the library API against a plain Redis get, in the same run, on a real
//! redis-server started by the testkit.
//!
//! * `tier/l1_hit`: `Namespace::get::<Profile>` of a key resident in L1 (a clone of the
//!   decoded value; no parsing, no network).
//! * `tier/l1_hit_shared`: `Namespace::get_shared::<Profile>` (an `Arc` of the decoded
//!   value: no clone).
//! * `tier/l1_hit_u64`: the same for a `u64` (what the tier itself costs, without the
//!   clone of a struct holding strings).
//! * `tier/redis_get`: the same call on a cache without L1 (one round trip to Redis and a
//!   JSON decode).
//!
//! Run: `cargo bench -p sharecache --bench tier`. Needs redis-server (scripts/test
//! installs it).

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use sharecache::{Cache, LocalTier, Ttl};
use sharecache_testkit::RedisServer;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    roles: Vec<String>,
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let (tiered, plain) = rt.block_on(async {
        let tiered = Cache::builder()
            .redis(server.url())
            .local_tier(LocalTier::max_bytes(64 << 20))
            .build()
            .await
            .unwrap();
        let plain = Cache::builder().redis(server.url()).build().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tiered.tier_stats().unwrap().link_up {
            assert!(Instant::now() < deadline, "tracking link did not come up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let p = Profile {
            id: 42,
            name: "Ada Lovelace".into(),
            roles: vec!["admin".into(), "author".into()],
        };
        tiered
            .namespace("user")
            .unwrap()
            .set("profile:42", &p, Ttl::secs(3600))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await; // our own invalidation push
        let ns = tiered.namespace("user").unwrap();
        ns.get::<Profile>("profile:42").await.unwrap().unwrap(); // fill L1
        (tiered, plain)
    });
    let mut g = c.benchmark_group("tier");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    let ns = tiered.namespace("user").unwrap();
    g.bench_function("l1_hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(ns.get::<Profile>("profile:42").await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("l1_hit_shared", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(ns.get_shared::<Profile>("profile:42").await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let small = tiered.namespace("n").unwrap();
    rt.block_on(async {
        small.set("counter", &7u64, Ttl::secs(3600)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        small.get::<u64>("counter").await.unwrap();
    });
    g.bench_function("l1_hit_u64", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(small.get::<u64>("counter").await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let hits_before = tiered.tier_stats().unwrap().hits;
    let ns = plain.namespace("user").unwrap();
    g.bench_function("redis_get", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(ns.get::<Profile>("profile:42").await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    assert!(
        tiered.tier_stats().unwrap().hits >= hits_before,
        "l1_hit must have been served by L1"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
