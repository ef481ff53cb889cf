//! Failover under load, on real processes: a manual `CLUSTER FAILOVER`, an automatic
//! cluster failover after a master is SIGSTOPped, a Sentinel-driven switch (forced, and
//! after the master is SIGSTOPped), and the L1 tier across each.
//!
//! Writers run while the fault happens; every write the cache acknowledged is read back
//! afterwards. The figures (unavailability window, failed calls, lost acknowledged
//! writes) are printed with `--nocapture`, and recorded in `docs/BENCHMARKS.md`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sharecache::{Cache, Fallback, Ttl};
use sharecache_testkit::{RedisCluster, RedisSentinels};

/// What the writers saw.
#[derive(Debug, Default)]
struct Tally {
    acked: Vec<(String, u64)>,
    failed: u64,
    /// First and last failed call: the unavailability window is between them.
    first_fail: Option<Instant>,
    last_fail: Option<Instant>,
    /// Failures seen after `settled` was set (the fault is over).
    failed_after_settle: u64,
}

/// Writers that each set their own keys, in order, while a fault is injected.
struct Load {
    stop: Arc<AtomicBool>,
    settled: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    /// Starts four writers on `cache`, each making at most `max` writes.
    fn start(cache: &Cache, max: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let settled = Arc::new(AtomicBool::new(false));
        let handles = (0..4)
            .map(|w| {
                let ns = cache.namespace("fo").unwrap();
                let (stop, settled) = (stop.clone(), settled.clone());
                tokio::spawn(async move {
                    let mut t = Tally::default();
                    let mut i = 0u64;
                    // Bounded: at most `max` writes or until told to stop.
                    while !stop.load(Ordering::Relaxed) && i < max {
                        let key = format!("w{w}-{i}");
                        match ns.set(&key, &i, Ttl::secs(600)).await {
                            Ok(()) => t.acked.push((key, i)),
                            Err(_) => {
                                t.failed += 1;
                                if settled.load(Ordering::Relaxed) {
                                    t.failed_after_settle += 1;
                                }
                                let now = Instant::now();
                                t.first_fail.get_or_insert(now);
                                t.last_fail = Some(now);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                        i += 1;
                    }
                    t
                })
            })
            .collect();
        Self {
            stop,
            settled,
            handles,
        }
    }

    /// The fault is over: failures from now on are counted apart. Writes go on for
    /// `tail`, then stop; returns what all writers saw.
    async fn finish(self, tail: Duration) -> Tally {
        self.settled.store(true, Ordering::Relaxed);
        tokio::time::sleep(tail).await;
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for h in self.handles {
            let t = h.await.unwrap();
            all.acked.extend(t.acked);
            all.failed += t.failed;
            all.failed_after_settle += t.failed_after_settle;
            all.first_fail = match (all.first_fail, t.first_fail) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            all.last_fail = all.last_fail.max(t.last_fail);
        }
        all
    }
}

impl Tally {
    /// From the first failed call to the last one (zero if none failed).
    fn window(&self) -> Duration {
        match (self.first_fail, self.last_fail) {
            (Some(a), Some(b)) => b - a,
            _ => Duration::ZERO,
        }
    }
}

/// How many acknowledged writes do not read back (through a fresh cache, in batches).
async fn lost(url: String, acked: &[(String, u64)]) -> usize {
    let cache = writer_cache(url).await;
    let ns = cache.namespace("fo").unwrap();
    let mut lost = 0;
    for chunk in acked.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let got: Vec<Option<u64>> = ns.mget(&keys).await.unwrap();
        lost += chunk
            .iter()
            .zip(got)
            .filter(|((_, v), g)| *g != Some(*v))
            .count();
    }
    lost
}

async fn writer_cache(url: String) -> Cache {
    Cache::builder()
        .redis(url)
        .fallback(Fallback::Fail)
        .command_timeout(Duration::from_millis(1000))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_manual_failover_loses_no_acknowledged_write() {
    let cluster = support::start_cluster().await;
    let cache = writer_cache(cluster.url()).await;
    let load = Load::start(&cache, 200_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let master = cluster.masters()[0];
    let started = Instant::now();
    tokio::task::block_in_place(|| cluster.failover(cluster.replica_of(master)));
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = load.finish(Duration::from_millis(700)).await;
    let lost = lost(cluster.url(), &t.acked).await;
    println!(
        "cluster manual failover: took {took:?}; writes acknowledged {}, failed {}, failures over {:?}, acknowledged but lost {lost}",
        t.acked.len(),
        t.failed,
        t.window()
    );
    assert!(
        t.acked.len() > 1000,
        "writers made progress: {}",
        t.acked.len()
    );
    assert_eq!(
        lost, 0,
        "a manual failover must not lose an acknowledged write"
    );
    assert_eq!(
        t.failed_after_settle, 0,
        "writes fail after the failover ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_automatic_failover_resumes_by_itself() {
    let cluster = support::start_cluster().await;
    let cache = writer_cache(cluster.url()).await;
    let load = Load::start(&cache, 200_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let master = cluster.masters()[0];
    let replica = cluster.replica_of(master);
    let paused_at = Instant::now();
    master.pause();
    let promoted =
        tokio::task::block_in_place(|| cluster.wait_until_master(replica, Duration::from_secs(20)));
    let promotion = paused_at.elapsed();
    // Operations must resume without a restart of anything on our side.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = load.finish(Duration::from_secs(1)).await;
    master.resume();
    promoted.expect("the replica is promoted");
    let lost = lost(cluster.url(), &t.acked).await;
    println!(
        "cluster automatic failover (SIGSTOP master): promotion after {promotion:?}; writes acknowledged {}, failed {}, unavailability window {:?}, acknowledged but lost {lost}",
        t.acked.len(),
        t.failed,
        t.window()
    );
    assert!(t.failed > 0, "a stopped master must be noticed");
    assert!(
        t.window() < Duration::from_secs(15),
        "window {:?}",
        t.window()
    );
    assert_eq!(
        t.failed_after_settle, 0,
        "writes still fail 2 s after the promotion"
    );
    // A write acknowledged by the stopped master just before SIGSTOP may not have reached
    // its replica (Redis replication is asynchronous): reported, and bounded by the
    // writers in flight.
    assert!(lost <= 4, "lost {lost} acknowledged writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_coherent_across_a_cluster_failover() {
    let cluster = support::start_cluster().await;
    let tiered = support::tiered(cluster.url()).await;
    let writer = writer_cache(cluster.url()).await;
    let (r, w) = (
        tiered.namespace("fo").unwrap(),
        writer.namespace("fo").unwrap(),
    );
    assert!(
        support::eventually(Duration::from_secs(5), async || tiered
            .tier_stats()
            .unwrap()
            .link_up)
        .await
    );
    let master = cluster.masters()[0];
    // Keys on the shard that fails over.
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("k{i}"))
        .filter(|k| {
            cluster
                .master_for_slot(RedisCluster::slot_of(format!("fo:{k}")))
                .port()
                == master.port()
        })
        .take(20)
        .collect();
    for k in &keys {
        w.set(k, &1u32, Ttl::secs(600)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for k in &keys {
        assert_eq!(r.get::<u32>(k).await.unwrap(), Some(1));
        assert_eq!(r.get::<u32>(k).await.unwrap(), Some(1));
    }
    let before = tiered.tier_stats().unwrap();
    assert!(
        before.hits >= keys.len() as u64,
        "the keys must be in L1 before the failover: {before:?}"
    );
    tokio::task::block_in_place(|| cluster.failover(cluster.replica_of(master)));
    // Written on the new master right after the switch.
    for k in &keys {
        w.set(k, &2u32, Ttl::secs(600)).await.unwrap();
    }
    for k in &keys {
        assert!(
            support::eventually(Duration::from_secs(3), async || r
                .get::<u32>(k)
                .await
                .ok()
                .flatten()
                == Some(2))
            .await,
            "stale L1 entry for {k} survived the failover"
        );
    }
    // And it stays fresh: no old entry comes back.
    for k in &keys {
        assert_eq!(r.get::<u32>(k).await.unwrap(), Some(2));
    }
    let after = tiered.tier_stats().unwrap();
    assert!(
        after.flushes > before.flushes,
        "the topology change flushed L1"
    );
    assert!(
        support::eventually(Duration::from_secs(5), async || tiered
            .tier_stats()
            .unwrap()
            .link_up)
        .await
    );
}

/// READONLY errors a node has answered (a write that reached it while it was a replica).
fn readonly_errors(node: &sharecache_testkit::RedisServer) -> u64 {
    let info = node.cmd(&["INFO", "errorstats"]);
    info.text()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("errorstat_READONLY:count="))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_switch_is_followed_and_the_old_master_gets_no_writes() {
    let group = tokio::task::spawn_blocking(|| RedisSentinels::start("mymaster"))
        .await
        .unwrap();
    let cache = writer_cache(group.url()).await;
    let old_port = group.master().port();
    let load = Load::start(&cache, 200_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let new_port = tokio::task::block_in_place(|| group.failover());
    let took = started.elapsed();
    assert_ne!(new_port, old_port);
    // The old master is reconfigured as a replica some seconds later; until then it still
    // accepts writes, which would be lost when it resyncs. Keep writing through that.
    tokio::task::block_in_place(|| group.wait_in_sync(Duration::from_secs(45)))
        .expect("old master rejoins as a replica");
    let t = load.finish(Duration::from_millis(500)).await;
    let old = group
        .servers()
        .iter()
        .find(|s| s.port() == old_port)
        .unwrap();
    let lost = lost(group.url(), &t.acked).await;
    println!(
        "sentinel forced switch: took {took:?}; writes acknowledged {}, failed {}, failures over {:?}, acknowledged but lost {lost}, READONLY replies from the old master {}",
        t.acked.len(),
        t.failed,
        t.window(),
        readonly_errors(old)
    );
    assert!(t.acked.len() > 1000);
    assert_eq!(
        lost, 0,
        "writes that went to the old master after the switch were lost"
    );
    assert_eq!(t.failed_after_settle, 0);
    assert_eq!(
        readonly_errors(old),
        0,
        "a write reached the demoted master"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_after_sigstop_and_l1_coherence() {
    let group = tokio::task::spawn_blocking(|| RedisSentinels::start("mymaster"))
        .await
        .unwrap();
    let cache = writer_cache(group.url()).await;
    let tiered = support::tiered(group.url()).await;
    assert!(
        support::eventually(Duration::from_secs(5), async || tiered
            .tier_stats()
            .unwrap()
            .link_up)
        .await
    );
    let r = tiered.namespace("l1").unwrap();
    let w = cache.namespace("l1").unwrap();
    w.set("k", &1u32, Ttl::secs(600)).await.unwrap();
    assert_eq!(r.get::<u32>("k").await.unwrap(), Some(1));
    assert_eq!(r.get::<u32>("k").await.unwrap(), Some(1));

    let load = Load::start(&cache, 200_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = group.master();
    let old_port = old.port();
    let paused_at = Instant::now();
    old.pause();
    let new_port =
        tokio::task::block_in_place(|| group.wait_master_change(old_port, Duration::from_secs(20)));
    let switch = paused_at.elapsed();
    // The value changes on the new master; the tiered instance must not keep 1.
    assert!(
        support::eventually(Duration::from_secs(5), async || w
            .set("k", &2u32, Ttl::secs(600))
            .await
            .is_ok())
        .await,
        "writes resume on the new master"
    );
    assert!(
        support::eventually(Duration::from_secs(3), async || r
            .get::<u32>("k")
            .await
            .ok()
            .flatten()
            == Some(2))
        .await,
        "stale L1 entry survived the sentinel failover"
    );
    // The old master comes back believing it is master until the sentinels demote it.
    old.resume();
    tokio::task::block_in_place(|| group.wait_in_sync(Duration::from_secs(30)))
        .expect("old master rejoins as a replica");
    let t = load.finish(Duration::from_millis(500)).await;
    let lost = lost(group.url(), &t.acked).await;
    println!(
        "sentinel failover (SIGSTOP master): new master {new_port} after {switch:?}; writes acknowledged {}, failed {}, unavailability window {:?}, acknowledged but lost {lost}",
        t.acked.len(),
        t.failed,
        t.window()
    );
    assert_eq!(r.get::<u32>("k").await.unwrap(), Some(2));
    assert!(t.failed > 0);
    assert_eq!(t.failed_after_settle, 0);
    assert!(lost <= 4, "lost {lost} acknowledged writes");
}

/// The events hub subscribes on one master; when that master stops, subscribers must hear
/// events again once the cluster has failed over, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_after_the_subscribed_master_stops() {
    let cluster = support::start_cluster().await;
    let (a, b) = (
        writer_cache(cluster.url()).await,
        writer_cache(cluster.url()).await,
    );
    let (na, nb) = (a.namespace("ev").unwrap(), b.namespace("ev").unwrap());
    let mut sub = na.channel("news").unwrap().subscribe().await.unwrap();
    nb.channel("news").unwrap().publish(&0u32).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), sub.recv()).await;
    assert!(matches!(first, Ok(Some(_))), "event before the fault");
    // The hub subscribes on the master whose URL sorts first.
    let node = cluster
        .masters()
        .into_iter()
        .min_by_key(|m| m.url())
        .unwrap();
    let replica = cluster.replica_of(node);
    node.pause();
    let promoted =
        tokio::task::block_in_place(|| cluster.wait_until_master(replica, Duration::from_secs(20)));
    let started = Instant::now();
    let mut heard = false;
    let mut n = 1u32;
    // Bounded: 15 s of publishing (events are at most once; keep publishing).
    while started.elapsed() < Duration::from_secs(15) && !heard {
        let _ = nb.channel("news").unwrap().publish(&n).await;
        n += 1;
        heard = matches!(
            tokio::time::timeout(Duration::from_millis(200), sub.recv()).await,
            Ok(Some(_))
        );
    }
    node.resume();
    promoted.expect("replica promoted");
    println!(
        "events after the subscribed master stopped: heard again {:?} after the promotion",
        started.elapsed()
    );
    assert!(heard, "no event heard within 15 s of the failover");
}

/// With the memory fallback (the default), a stopped shard costs no failed call: writes
/// during the failover are answered from memory and replayed into the cluster once it
/// is back, so every acknowledged write reads back from Redis afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_with_memory_fallback_loses_nothing() {
    let cluster = support::start_cluster().await;
    let cache = Cache::builder()
        .redis(cluster.url())
        .fallback(Fallback::Memory)
        .command_timeout(Duration::from_millis(1000))
        .build()
        .await
        .unwrap();
    // Paced by the cap: memory answers fast while degraded.
    let load = Load::start(&cache, 25_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let master = cluster.masters()[0];
    let replica = cluster.replica_of(master);
    master.pause();
    let promoted =
        tokio::task::block_in_place(|| cluster.wait_until_master(replica, Duration::from_secs(20)));
    // Back on Redis (replay done) by itself.
    let recovered = support::eventually(Duration::from_secs(20), async || {
        cache.state() == sharecache::BackendState::Connected
    })
    .await;
    let t = load.finish(Duration::from_millis(500)).await;
    master.resume();
    promoted.expect("replica promoted");
    assert!(recovered, "the cache went back to Redis");
    let lost = lost(cluster.url(), &t.acked).await;
    println!(
        "cluster automatic failover, memory fallback: writes acknowledged {}, failed {}, acknowledged but not in Redis afterwards {lost}",
        t.acked.len(),
        t.failed
    );
    assert_eq!(t.failed, 0, "the memory fallback answers every call");
    assert_eq!(lost, 0, "a write made during the outage was not replayed");
}

/// A shard lost whole (its master and its replica killed) and restarted: once the
/// cluster is healthy again the instance leaves the memory fallback by itself. Found by
/// the disaster-recovery drill (docs/operations.md): the cluster connection kept dead
/// node connections, every topology check asked through it, and the instance stayed
/// degraded until restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_lost_whole_and_restarted_is_recovered_from() {
    let cluster = support::start_cluster().await;
    let cache = Cache::builder()
        .redis(cluster.url())
        .fallback(Fallback::Memory)
        .command_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(500))
        .probe_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (ns, stop) = (cache.namespace("drill").unwrap(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            // Bounded: the test stops it within a minute.
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                let _ = ns.set(&format!("k{}", i % 200), &i, Ttl::secs(600)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let master = cluster.masters()[0];
    let replica = cluster.replica_of(master);
    tokio::task::block_in_place(|| {
        master.kill();
        replica.kill();
    });
    let c = cache.clone();
    assert!(
        support::eventually(Duration::from_secs(10), async || c.state()
            != sharecache::BackendState::Connected)
        .await,
        "the outage was noticed"
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    tokio::task::block_in_place(|| {
        master.restart();
        replica.restart();
        cluster.wait_healthy(Duration::from_secs(60)).unwrap();
    });
    let c = cache.clone();
    let recovered = support::eventually(Duration::from_secs(30), async || {
        c.state() == sharecache::BackendState::Connected
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        recovered,
        "still {} 30 s after the cluster was healthy",
        cache.state()
    );
    let ns = cache.namespace("drill").unwrap();
    ns.set("after", &1u32, Ttl::secs(60)).await.unwrap();
    assert_eq!(ns.get::<u32>("after").await.unwrap(), Some(1));
}
