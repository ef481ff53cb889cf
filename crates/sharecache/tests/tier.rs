//! The L1 tier over a real Redis, with two and three instances in one process: cross-
//! instance invalidation and its latency, read-your-own-write, FLUSHALL, a killed
//! tracking connection, a paused Redis, and no stale read after quiescence.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sharecache::{Cache, Fallback, LocalTier, Ttl};
use sharecache_testkit::{RedisServer, RespReply};
use support::eventually;

async fn instance(server: &RedisServer) -> Cache {
    let cache = Cache::builder()
        .redis(server.url())
        .fallback(Fallback::Memory)
        .command_timeout(Duration::from_millis(300))
        .probe_interval(Duration::from_millis(50))
        .local_tier(LocalTier::max_bytes(16 << 20).probe_interval(Duration::from_millis(100)))
        .build()
        .await
        .unwrap();
    let c = cache.clone();
    assert!(
        eventually(Duration::from_secs(5), async || c
            .tier_stats()
            .unwrap()
            .link_up)
        .await,
        "tracking link did not come up"
    );
    cache
}

fn l1_hits(c: &Cache) -> u64 {
    c.tier_stats().unwrap().hits
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_reaches_the_other_l1() {
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let (na, nb) = (a.namespace("t").unwrap(), b.namespace("t").unwrap());
    na.set("k", &0u64, Ttl::secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // let the write's own invalidation pass
    assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(0));
    let before = l1_hits(&b);
    assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(0));
    assert_eq!(l1_hits(&b), before + 1, "the second read must be an L1 hit");
    assert_eq!(
        nb.stats().await.unwrap().l1_hits,
        1,
        "counted for the namespace too"
    );

    // Invalidation latency: write on A, poll B until it sees the new value.
    let mut lat = Vec::new();
    for i in 1..=200u64 {
        assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(i - 1)); // B holds the old value in L1
        let start = Instant::now();
        na.set("k", &i, Ttl::secs(60)).await.unwrap();
        loop {
            if nb.get::<u64>("k").await.unwrap() == Some(i) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "B never saw write {i}"
            );
            tokio::task::yield_now().await;
        }
        lat.push(start.elapsed());
    }
    lat.sort();
    println!(
        "invalidation visible on the other instance: p50 {:?} p99 {:?} max {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    // Deletes and pattern deletes reach the other L1 too.
    assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(200));
    na.del("k").await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), async || nb
            .get::<u64>("k")
            .await
            .unwrap()
            .is_none())
        .await
    );
    na.set("p:1", &1u64, Ttl::secs(60)).await.unwrap();
    assert_eq!(nb.get::<u64>("p:1").await.unwrap(), Some(1));
    na.delete_pattern("p:*").await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), async || nb
            .get::<u64>("p:1")
            .await
            .unwrap()
            .is_none())
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_reads_its_own_write_at_once() {
    let server = RedisServer::start();
    let a = instance(&server).await;
    let na = a.namespace("ryw").unwrap();
    for i in 0..1000u64 {
        na.set("k", &i, Ttl::secs(60)).await.unwrap();
        assert_eq!(na.get::<u64>("k").await.unwrap(), Some(i));
        assert_eq!(na.get::<u64>("k").await.unwrap(), Some(i)); // now from L1
        assert_eq!(
            na.get_shared::<u64>("k").await.unwrap().as_deref(),
            Some(&i)
        );
    }
    // The write's own invalidation push may land between the two reads (an extra miss,
    // never a stale read), so not every second read is a hit.
    assert!(
        l1_hits(&a) > 100,
        "reads after the first must mostly hit L1: {:?}",
        a.tier_stats()
    );
    na.del("k").await.unwrap();
    assert_eq!(na.get::<u64>("k").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_empties_l1() {
    let server = RedisServer::start();
    let a = instance(&server).await;
    let na = a.namespace("f").unwrap();
    for i in 0..50u64 {
        na.set(&format!("k{i}"), &i, Ttl::secs(60)).await.unwrap();
    }
    // Our own writes come back as invalidation pushes too; let them drain, then fill L1.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..50u64 {
        na.get::<u64>(&format!("k{i}")).await.unwrap();
    }
    assert_eq!(a.tier_stats().unwrap().entries, 50);
    assert_eq!(server.cmd(&["FLUSHALL"]), RespReply::Value("OK".into()));
    let c = a.clone();
    assert!(
        eventually(Duration::from_secs(2), async || c
            .tier_stats()
            .unwrap()
            .entries
            == 0)
        .await
    );
    for i in 0..50u64 {
        assert_eq!(na.get::<u64>(&format!("k{i}")).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_flushes_and_bypasses_l1_until_it_is_back() {
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let (na, nb) = (a.namespace("kill").unwrap(), b.namespace("kill").unwrap());
    na.set("k", &1u64, Ttl::secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // let the write's own invalidation pass
    assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(1));
    assert_eq!(b.tier_stats().unwrap().entries, 1);
    // Kill every tracking connection (both instances'): invalidations would be lost.
    let list = match server.cmd(&["CLIENT", "LIST"]) {
        RespReply::Value(s) => s,
        other => panic!("{other:?}"),
    };
    let ids: Vec<String> = list
        .lines()
        .filter(|l| l.contains("name=sharecache-l1-tracking"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    for id in &ids {
        server.cmd(&["CLIENT", "KILL", "ID", id]);
    }
    // Loss is detected: L1 is flushed, and while the link is down nothing is served from it.
    let c = b.clone();
    assert!(
        eventually(Duration::from_secs(2), async || c
            .tier_stats()
            .unwrap()
            .entries
            == 0
            || !c.tier_stats().unwrap().link_up)
        .await
    );
    // A write made while B's link may be down must be seen by B.
    na.set("k", &2u64, Ttl::secs(60)).await.unwrap();
    assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(2));
    // The link comes back by itself and L1 serves again.
    let c = b.clone();
    assert!(
        eventually(Duration::from_secs(5), async || c
            .tier_stats()
            .unwrap()
            .link_up)
        .await
    );
    assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(2));
    let h = l1_hits(&b);
    assert_eq!(nb.get::<u64>("k").await.unwrap(), Some(2));
    assert_eq!(l1_hits(&b), h + 1);
    na.set("k", &3u64, Ttl::secs(60)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), async || nb
            .get::<u64>("k")
            .await
            .unwrap()
            == Some(3))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_stops_l1_from_serving() {
    let server = RedisServer::start();
    let a = instance(&server).await;
    let na = a.namespace("pause").unwrap();
    na.set("k", &1u64, Ttl::secs(60)).await.unwrap();
    assert_eq!(na.get::<u64>("k").await.unwrap(), Some(1));
    server.pause();
    let c = a.clone();
    assert!(
        eventually(Duration::from_secs(3), async || !c
            .tier_stats()
            .unwrap()
            .link_up)
        .await,
        "an unanswered ping must take the link down"
    );
    let hits = l1_hits(&a);
    for _ in 0..20 {
        let _ = na.get::<u64>("k").await; // answered by the memory fallback, not by L1
    }
    assert_eq!(l1_hits(&a), hits, "L1 served after the loss was detected");
    server.resume();
    let c = a.clone();
    assert!(
        eventually(Duration::from_secs(10), async || c
            .tier_stats()
            .unwrap()
            .link_up)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_after_quiescence_across_three_instances() {
    let server = RedisServer::start();
    let caches = [
        instance(&server).await,
        instance(&server).await,
        instance(&server).await,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // 3 instances x 4 tasks, 10 000 operations in all, on 20 hot keys.
    for (ci, c) in caches.iter().enumerate() {
        for t in 0..4u64 {
            let ns = c.namespace("q").unwrap();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut x = 0x9E37_79B9u64 ^ (ci as u64 * 16 + t);
                for i in 0..834u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = format!("k{}", x % 20);
                    if x.is_multiple_of(3) {
                        ns.set(&k, &(ci as u64 * 1_000_000 + t * 10_000 + i), Ttl::secs(60))
                            .await
                            .unwrap();
                    } else {
                        ns.get::<u64>(&k).await.unwrap();
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Quiescence: no more writes. After the invalidation bound, every instance agrees
    // with Redis on every key.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let truth = Cache::builder()
        .redis(server.url())
        .build()
        .await
        .unwrap()
        .namespace("q")
        .unwrap();
    let mut stale = 0;
    for i in 0..20 {
        let k = format!("k{i}");
        let want = truth.get::<u64>(&k).await.unwrap();
        for c in &caches {
            for _ in 0..3 {
                if c.namespace("q").unwrap().get::<u64>(&k).await.unwrap() != want {
                    stale += 1;
                }
            }
        }
    }
    let hits: u64 = caches.iter().map(l1_hits).sum();
    println!("stale reads after quiescence: {stale}; L1 hits during the run: {hits}");
    assert_eq!(stale, 0);
    assert!(hits > 0, "the run must have exercised L1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_bounded_by_bytes_and_counts_evictions() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis(server.url())
        .local_tier(LocalTier::max_bytes(64 << 10).probe_interval(Duration::from_millis(100)))
        .build()
        .await
        .unwrap();
    let c = cache.clone();
    assert!(
        eventually(Duration::from_secs(5), async || c
            .tier_stats()
            .unwrap()
            .link_up)
        .await
    );
    let ns = cache.namespace("bound").unwrap();
    let value = "v".repeat(1000);
    let items: Vec<(String, &str)> = (0..500)
        .map(|i| (format!("k{i}"), value.as_str()))
        .collect();
    ns.mset(&items, Ttl::secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (k, _) in &items {
        assert_eq!(
            ns.get::<String>(k).await.unwrap().as_deref(),
            Some(value.as_str())
        );
    }
    let s = cache.tier_stats().unwrap();
    println!("{s:?}");
    assert!(s.bytes <= 64 << 10, "L1 over its budget: {s:?}");
    assert!(s.evictions > 0 && s.entries < 500, "{s:?}");
    // Reading the same resident keys again replaces nothing and evicts nothing new.
    let before = cache.tier_stats().unwrap().evictions;
    let resident = ns.get::<String>("k499").await.unwrap();
    assert!(resident.is_some());
    assert_eq!(cache.tier_stats().unwrap().evictions, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mget_answers_resident_keys_from_l1_and_stays_coherent() {
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let (na, nb) = (a.namespace("mg").unwrap(), b.namespace("mg").unwrap());
    na.mset(&[("x", 1u64), ("y", 2)], Ttl::secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(nb.get::<u64>("x").await.unwrap(), Some(1)); // x now in B's L1
    let hits = l1_hits(&b);
    assert_eq!(
        nb.mget::<u64>(&["x", "y", "z"]).await.unwrap(),
        vec![Some(1), Some(2), None]
    );
    assert_eq!(l1_hits(&b), hits + 1, "x answered by L1");
    na.set("x", &10u64, Ttl::secs(60)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), async || nb
            .mget::<u64>(&["x", "y"])
            .await
            .unwrap()
            == vec![Some(10), Some(2)])
        .await
    );
}

/// `l1_hits` is part of `hits` whatever the read path: an L1 entry that turns out stale
/// (its tag was invalidated) or does not decode as the asked type is a miss, not an L1
/// hit. Before the single read path, `mget` and the raw JSON read counted such entries
/// as L1 hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_hits_are_hits_on_every_read_path() {
    use sharecache::RawJson;
    let server = RedisServer::start();
    let cache = instance(&server).await;
    let ns = cache.namespace("sub").unwrap();
    ns.set_tagged("t", &1u64, Ttl::secs(60), &["g"])
        .await
        .unwrap();
    ns.set("n", &2u64, Ttl::secs(60)).await.unwrap();
    assert_eq!(ns.get::<u64>("t").await.unwrap(), Some(1)); // both now in L1
    assert_eq!(ns.get::<u64>("n").await.unwrap(), Some(2));
    let before = ns.stats().await.unwrap();
    ns.invalidate_tags(&["g"]).await.unwrap();
    // A stale L1 entry, through each path.
    assert_eq!(ns.mget::<u64>(&["t"]).await.unwrap(), vec![None]);
    assert_eq!(ns.get_with_source::<RawJson>("t").await.unwrap(), None);
    assert_eq!(ns.get_shared::<u64>("t").await.unwrap(), None);
    // An L1 entry that does not decode as the asked type.
    assert_eq!(ns.mget::<String>(&["n"]).await.unwrap(), vec![None]);
    assert_eq!(ns.get::<String>("n").await.unwrap(), None);
    let after = ns.stats().await.unwrap();
    assert_eq!(after.hits, before.hits, "no read above was a hit");
    assert_eq!(after.l1_hits, before.l1_hits, "so none was an L1 hit");
    assert_eq!(after.misses, before.misses + 5);
    assert_eq!(after.decode_errors, before.decode_errors + 2);
    // And a good L1 entry is one hit and one L1 hit on each path.
    let (json, source) = ns.get_with_source::<RawJson>("n").await.unwrap().unwrap();
    assert_eq!((json.get(), source), ("2", sharecache::Source::L1));
    assert_eq!(ns.mget::<u64>(&["n"]).await.unwrap(), vec![Some(2)]);
    let last = ns.stats().await.unwrap();
    assert_eq!(last.hits, after.hits + 2);
    assert_eq!(last.l1_hits, after.l1_hits + 2);
    assert!(last.l1_hits <= last.hits);
}
