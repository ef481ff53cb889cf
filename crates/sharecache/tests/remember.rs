//! `remember`: single-flight loads, errors not cached, handoff when the loading caller is
//! cancelled; on the memory store and on Redis with the L1 tier.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sharecache::{Cache, LocalTier, RememberError, Ttl};
use sharecache_testkit::RedisServer;

async fn caches() -> (Vec<Cache>, RedisServer) {
    let server = RedisServer::start();
    let redis = Cache::builder()
        .redis(server.url())
        .local_tier(LocalTier::max_bytes(8 << 20))
        .build()
        .await
        .unwrap();
    (
        vec![Cache::builder().memory().build().await.unwrap(), redis],
        server,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_misses_cost_one_load() {
    let (caches, _server) = caches().await;
    for cache in caches {
        let ns = cache.namespace("sf").unwrap();
        let loads = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..2000 {
            let (ns, loads) = (ns.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                ns.remember("hot", Ttl::secs(60), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>(vec![1u64, 2, 3])
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), vec![1, 2, 3]);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "{:?}: 2000 concurrent misses must load once",
            cache.state()
        );
        // The value was stored: later calls do not load.
        let v: Vec<u64> = ns
            .remember("hot", Ttl::secs(60), || async {
                Err::<Vec<u64>, _>("must not run")
            })
            .await
            .unwrap();
        assert_eq!(v, vec![1, 2, 3]);
        assert_eq!(
            ns.get::<Vec<u64>>("hot").await.unwrap(),
            Some(vec![1, 2, 3])
        );
    }
}

#[derive(Debug, PartialEq)]
struct Boom(u32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_errors_are_shared_by_the_flight_and_never_cached() {
    let (caches, _server) = caches().await;
    for cache in caches {
        let ns = cache.namespace("err").unwrap();
        let loads = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (ns, loads) = (ns.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                ns.remember("k", Ttl::secs(60), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Err::<u64, _>(Boom(7))
                })
                .await
            }));
        }
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert_eq!(e.loader_error(), Some(&Boom(7)));
            assert!(matches!(e, RememberError::Loader(_)));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(
            ns.get::<u64>("k").await.unwrap(),
            None,
            "an error is never stored"
        );
        // The next call loads again.
        let v = ns
            .remember("k", Ttl::secs(60), || async { Ok::<_, Boom>(5u64) })
            .await
            .unwrap();
        assert_eq!(v, 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_loader_hands_off_to_a_waiting_caller() {
    let (caches, _server) = caches().await;
    for cache in caches {
        let ns = cache.namespace("handoff").unwrap();
        let loads = Arc::new(AtomicU64::new(0));
        let (n1, l1) = (ns.clone(), loads.clone());
        let leader = tokio::spawn(async move {
            n1.remember("k", Ttl::secs(60), || async move {
                l1.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(30)).await; // never finishes
                Ok::<_, Boom>(1u64)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (n2, l2) = (ns.clone(), loads.clone());
        let waiter = tokio::spawn(async move {
            n2.remember("k", Ttl::secs(60), || async move {
                l2.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Boom>(2u64)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        let v = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter must not hang");
        assert_eq!(v.unwrap().unwrap(), 2);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn remember_refuses_bad_input_without_loading() {
    let cache = Cache::builder().memory().build().await.unwrap();
    let ns = cache.namespace("bad").unwrap();
    let e = ns
        .remember("bad\nkey", Ttl::secs(1), || async { Ok::<_, Boom>(1u64) })
        .await
        .unwrap_err();
    assert!(
        matches!(e, RememberError::Cache(ref c) if c.kind() == sharecache::ErrorKind::InvalidKey),
        "{e:?}"
    );
    let e = ns
        .remember("k", Ttl::millis(0), || async { Ok::<_, Boom>(1u64) })
        .await
        .unwrap_err();
    assert!(
        matches!(e, RememberError::Cache(ref c) if c.kind() == sharecache::ErrorKind::InvalidTtl),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_makes_three_instances_cost_one_load() {
    let server = RedisServer::start();
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Cache::builder().redis(server.url()).build().await.unwrap());
    }
    let loads = Arc::new(AtomicU64::new(0));
    let opts = sharecache::RememberOptions::default().lease(Duration::from_secs(2));
    let mut tasks = Vec::new();
    for c in &instances {
        for _ in 0..100 {
            let (ns, loads, opts) = (c.namespace("lease").unwrap(), loads.clone(), opts.clone());
            tasks.push(tokio::spawn(async move {
                ns.remember_with("hot", Ttl::secs(60), &opts, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, Boom>(42u64)
                })
                .await
                .unwrap()
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 42);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "300 callers on 3 instances must load once"
    );
    // The lease was handed back: no lease key is left behind.
    assert_eq!(
        server.cmd(&["EXISTS", "#lease:lease:hot"]).text(),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_hands_the_load_to_a_waiting_instance() {
    let server = RedisServer::start();
    let a = Cache::builder().redis(server.url()).build().await.unwrap();
    let b = Cache::builder().redis(server.url()).build().await.unwrap();
    let opts = sharecache::RememberOptions::default().lease(Duration::from_millis(300));
    let loads = Arc::new(AtomicU64::new(0));
    let (na, la, oa) = (a.namespace("lease").unwrap(), loads.clone(), opts.clone());
    let stuck = tokio::spawn(async move {
        na.remember_with("k", Ttl::secs(60), &oa, || async move {
            la.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(30)).await; // outlives its lease
            Ok::<_, Boom>(1u64)
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let nb = b.namespace("lease").unwrap();
    let lb = loads.clone();
    let start = std::time::Instant::now();
    let v = nb
        .remember_with("k", Ttl::secs(60), &opts, || async move {
            lb.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Boom>(2u64)
        })
        .await
        .unwrap();
    let waited = start.elapsed();
    println!("took over an expired lease after {waited:?}");
    assert_eq!(v, 2);
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    stuck.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_caching_remembers_absence_for_its_own_ttl() {
    let (caches, _server) = caches().await;
    for cache in caches {
        let ns = cache.namespace("neg").unwrap();
        let loads = Arc::new(AtomicU64::new(0));
        let opts = sharecache::RememberOptions::default().negative_ttl(Ttl::millis(400));
        let load = |loads: Arc<AtomicU64>| async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<u64>, Boom>(None)
        };
        assert_eq!(
            ns.remember_optional("ghost", Ttl::secs(60), &opts, || load(loads.clone()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            ns.remember_optional("ghost", Ttl::secs(60), &opts, || load(loads.clone()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(loads.load(Ordering::SeqCst), 1, "the absence was cached");
        // Plain reads see a miss, never a value or a decode error.
        assert_eq!(ns.get::<u64>("ghost").await.unwrap(), None);
        assert_eq!(ns.get::<Option<u64>>("ghost").await.unwrap(), None);
        assert_eq!(ns.get::<sharecache::RawJson>("ghost").await.unwrap(), None);
        assert_eq!(ns.stats().await.unwrap().decode_errors, 0);
        // After the negative TTL the loader runs again, and a found value replaces it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let v = ns
            .remember_optional("ghost", Ttl::secs(60), &opts, || async {
                Ok::<_, Boom>(Some(9u64))
            })
            .await
            .unwrap();
        assert_eq!(v, Some(9));
        assert_eq!(ns.get::<u64>("ghost").await.unwrap(), Some(9));
        // Without a negative TTL, absence is not cached.
        let plain = sharecache::RememberOptions::default();
        ns.remember_optional("nothing", Ttl::secs(60), &plain, || load(loads.clone()))
            .await
            .unwrap();
        ns.remember_optional("nothing", Ttl::secs(60), &plain, || load(loads.clone()))
            .await
            .unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refresh_keeps_a_hot_key_from_expiring_under_load() {
    let server = RedisServer::start();
    let cache = Cache::builder().redis(server.url()).build().await.unwrap();
    let ns = cache.namespace("xfetch").unwrap();
    let opts = sharecache::RememberOptions::default().early_refresh(1.5);
    let loads = Arc::new(AtomicU64::new(0));
    let loader = |loads: Arc<AtomicU64>| async move {
        let n = loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, Boom>(n)
    };
    ns.remember_with("hot", Ttl::secs(1), &opts, || loader(loads.clone()))
        .await
        .unwrap();
    // Watch the key in Redis while callers hit it for 2.5 s (2.5 TTLs).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = server.port();
    let (stop2, gone) = (stop.clone(), Arc::new(AtomicU64::new(0)));
    let gone2 = gone.clone();
    let watcher = tokio::task::spawn_blocking(move || {
        while !stop2.load(Ordering::Relaxed) {
            if sharecache_testkit::command(port, &["EXISTS", "xfetch:hot"])
                .unwrap()
                .text()
                == Some("0")
            {
                gone2.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (ns, opts, loads) = (ns.clone(), opts.clone(), loads.clone());
        tasks.push(tokio::spawn(async move {
            let end = tokio::time::Instant::now() + Duration::from_millis(2500);
            while tokio::time::Instant::now() < end {
                ns.remember_with("hot", Ttl::secs(1), &opts, || loader(loads.clone()))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let n = loads.load(Ordering::SeqCst);
    println!(
        "loads in 2.5 s with a 1 s TTL: {n}; samples where the key was gone: {}",
        gone.load(Ordering::Relaxed)
    );
    assert_eq!(
        gone.load(Ordering::Relaxed),
        0,
        "the hot key expired under load"
    );
    assert!(
        (3..=25).contains(&n),
        "refreshed {n} times: expected a few per TTL, not one per call"
    );
}
