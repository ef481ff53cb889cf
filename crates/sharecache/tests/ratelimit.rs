//! Rate limits on the memory store and on a real Redis: burst then steady rate, TTL on
//! every state key, exact across two instances under concurrency, NOSCRIPT after
//! SCRIPT FLUSH, and what happens while Redis is down.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sharecache::ratelimit::Limit;
use sharecache::{Cache, ErrorKind, Fallback};
use sharecache_testkit::RedisServer;
use support::Case;

async fn behaviour(case: Case<'_>) {
    let cache = case.cache.clone();
    let ns = cache.namespace("auth").unwrap();
    let limit = Limit::per(5, Duration::from_millis(1000));
    for i in 0..5 {
        let d = ns
            .rate_limits()
            .check("attempts:ada@example.com", limit)
            .await
            .unwrap();
        assert!(d.allowed, "attempt {i}");
        assert_eq!(d.remaining, 4 - i);
    }
    let d = ns
        .rate_limits()
        .check("attempts:ada@example.com", limit)
        .await
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert!(
        d.retry_after > Duration::from_millis(100) && d.retry_after <= Duration::from_millis(200),
        "{d:?}"
    );
    // Another key is another bucket.
    assert!(
        ns.rate_limits()
            .check("attempts:bob@example.com", limit)
            .await
            .unwrap()
            .allowed
    );
    // After retry_after, one more call is allowed.
    tokio::time::sleep(d.retry_after + Duration::from_millis(30)).await;
    assert!(
        ns.rate_limits()
            .check("attempts:ada@example.com", limit)
            .await
            .unwrap()
            .allowed
    );
    // Bad input is refused with a clear error and spends nothing.
    for bad in [
        Limit::per(0, Duration::from_secs(1)),
        Limit::per(5, Duration::ZERO),
        limit.cost(6),
    ] {
        assert_eq!(
            ns.rate_limits().check("k", bad).await.unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(
        ns.rate_limits()
            .check("bad\nkey", limit)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidKey
    );
    // Rate-limit state is not a cache key of the namespace.
    assert!(ns.keys("*", None, 100).await.unwrap().keys.is_empty());
    if let Some(s) = case.server() {
        // Every state key has a TTL: no immortal key after a crash mid-request.
        let keys = match s.cmd(&["KEYS", "*"]) {
            sharecache_testkit::RespReply::Array(k) => k,
            other => panic!("{other:?}"),
        };
        assert!(!keys.is_empty());
        for k in keys {
            let k = k.text().unwrap().to_owned();
            let ttl: i64 = s.cmd(&["PTTL", &k]).text().unwrap().parse().unwrap();
            assert!(ttl > 0 && ttl <= 1000, "{k} has PTTL {ttl}");
        }
    }
}

/// One key checked under both algorithms: each keeps its own budget (no script is handed
/// the other's state: that was a 500), and `reset` forgets both.
async fn switching_algorithms(case: Case<'_>) {
    use sharecache::ratelimit::Algorithm;
    let ns = case.cache.namespace("auth").unwrap();
    let limits = ns.rate_limits();
    let gcra = Limit::per(2, Duration::from_secs(60));
    let window = gcra.algorithm(Algorithm::SlidingWindow);
    for (first, then) in [(window, gcra), (gcra, window)] {
        let key = format!("switch:{:?}", first.algorithm);
        for i in 0..2 {
            assert!(limits.check(&key, first).await.unwrap().allowed, "call {i}");
        }
        assert!(!limits.check(&key, first).await.unwrap().allowed, "spent");
        let d = limits.check(&key, then).await.unwrap();
        assert!(
            d.allowed && d.remaining == 1,
            "the other algorithm's budget: {d:?}"
        );
        assert!(limits.reset(&key).await.unwrap());
        assert!(limits.check(&key, first).await.unwrap().allowed, "reset");
        assert_eq!(
            limits.check(&key, then).await.unwrap().remaining,
            1,
            "reset"
        );
    }
}

every_backend!(behaviour, switching_algorithms);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_across_two_instances_under_concurrency() {
    let s = RedisServer::start();
    let a = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let limit = Limit::per(100, Duration::from_secs(60));
    let allowed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in [&a, &b] {
        for _ in 0..150 {
            let (ns, allowed, refused) = (
                c.namespace("api").unwrap(),
                allowed.clone(),
                refused.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let d = ns.rate_limits().check("client:7", limit).await.unwrap();
                if d.allowed {
                    allowed.fetch_add(1, Ordering::SeqCst)
                } else {
                    refused.fetch_add(1, Ordering::SeqCst)
                };
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        allowed.load(Ordering::SeqCst),
        100,
        "allowed == limit exactly: none over, none wrongly refused"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 200);
}

#[tokio::test]
async fn noscript_after_script_flush_is_retried() {
    let s = RedisServer::start();
    let c = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let ns = c.namespace("ns").unwrap();
    let limit = Limit::per(3, Duration::from_secs(10));
    assert!(ns.rate_limits().check("k", limit).await.unwrap().allowed);
    assert_eq!(s.cmd(&["SCRIPT", "FLUSH"]).text(), Some("OK"));
    let d = ns.rate_limits().check("k", limit).await.unwrap();
    assert!(d.allowed);
    assert_eq!(
        d.remaining, 1,
        "the state survived the flush of the script cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down() {
    let s = RedisServer::start();
    let open = Cache::builder()
        .redis(s.url())
        .command_timeout(Duration::from_millis(200))
        .probe_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let closed = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .command_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let limit = Limit::per(2, Duration::from_secs(60));
    s.kill();
    // Under either policy: an error (the HTTP service answers 503), never a decision
    // from one process's memory, which knows nothing of what others spent, and never a
    // bogus refusal. `tests/fallback.rs` shows a spent budget staying spent across one.
    for (policy, cache) in [("memory", &open), ("fail", &closed)] {
        for _ in 0..3 {
            let e = cache
                .namespace("down")
                .unwrap()
                .rate_limits()
                .check("k", limit)
                .await
                .unwrap_err();
            assert!(e.is_unavailable(), "{policy}: {e}");
        }
    }
}

async fn sliding(cache: Cache, other: Cache) {
    use sharecache::ratelimit::Algorithm;
    let ns = cache.namespace("sw").unwrap();
    let l = Limit::per(3, Duration::from_millis(1000)).algorithm(Algorithm::SlidingWindow);
    for i in 0..3 {
        assert!(
            ns.rate_limits().check("k", l).await.unwrap().allowed,
            "call {i}"
        );
    }
    let d = ns.rate_limits().check("k", l).await.unwrap();
    assert!(
        !d.allowed && d.retry_after <= Duration::from_millis(1000),
        "{d:?}"
    );
    // Exact across instances under concurrency within one window (a one-hour window:
    // the test cannot straddle a boundary in a way that frees a call).
    let limit = Limit::per(100, Duration::from_secs(3600)).algorithm(Algorithm::SlidingWindow);
    let allowed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in [&cache, &other] {
        for _ in 0..150 {
            let (ns, allowed) = (c.namespace("sw").unwrap(), allowed.clone());
            tasks.push(tokio::spawn(async move {
                if ns
                    .rate_limits()
                    .check("burst", limit)
                    .await
                    .unwrap()
                    .allowed
                {
                    allowed.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::SeqCst), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_memory() {
    let c = Cache::builder().memory().build().await.unwrap();
    sliding(c.clone(), c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_redis_two_instances() {
    let s = RedisServer::start();
    let a = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    sliding(a, b).await;
}
