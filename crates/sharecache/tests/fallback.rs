//! Fallback to memory while Redis is down, against a real redis-server that the tests
//! kill, pause (SIGSTOP) and restart.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sharecache::{BackendState, Cache, ErrorKind, Fallback, MemoryLimits, Ttl};
use sharecache_testkit::{RedisConfig, RedisServer, RespReply};
use support::eventually;

const TIMEOUT: Duration = Duration::from_millis(200);

/// A cache on `server` that fails fast (and can hold sessions).
async fn cache_on(server: &RedisServer, fallback: Fallback) -> Cache {
    cache_with(server, fallback, |b| b).await
}

/// [`cache_on`], adjusted by `more`.
async fn cache_with(
    server: &RedisServer,
    fallback: Fallback,
    more: impl FnOnce(sharecache::CacheBuilder) -> sharecache::CacheBuilder,
) -> Cache {
    use sharecache::session::SessionKeys;
    let b = Cache::builder()
        .redis(server.url())
        .fallback(fallback)
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .probe_interval(Duration::from_millis(50))
        .session_keys(SessionKeys::new(&[SessionKeys::generate()]).unwrap());
    more(b).build().await.unwrap()
}

async fn wait_connected(cache: &Cache) {
    let c = cache.clone();
    assert!(
        eventually(Duration::from_secs(10), async || c.state()
            == BackendState::Connected)
        .await,
        "cache did not recover: state {}",
        cache.state()
    );
}

/// Spawns `n` tasks doing set/get/mget/del until `stop`; returns (ok, failed) counters.
fn spawn_load(
    cache: &Cache,
    n: usize,
    stop: Arc<AtomicBool>,
) -> (
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let handles = (0..n)
        .map(|t| {
            let ns = cache.namespace("load").unwrap();
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                // Bounded: at most 200k operations per task, and the test stops it sooner.
                while !stop.load(Ordering::Relaxed) && i < 200_000 {
                    let k = format!("t{t}:{}", i % 50);
                    let r = match i % 4 {
                        0 => ns.set(&k, &i, Ttl::secs(60)).await.map(|_| ()),
                        1 => ns.get::<u64>(&k).await.map(|_| ()),
                        2 => ns.mget::<u64>(&[k.as_str(), "other"]).await.map(|_| ()),
                        _ => ns.del(&k).await.map(|_| ()),
                    };
                    match r {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("call failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    i += 1;
                }
            })
        })
        .collect();
    (ok, failed, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_mid_run_fails_no_call() {
    let server = RedisServer::start();
    let cache = cache_on(&server, Fallback::Memory).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, handles) = spawn_load(&cache, 16, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.state(), BackendState::Degraded);
    let during = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ok.load(Ordering::Relaxed) > during + 100,
        "calls must keep succeeding during the outage"
    );
    server.restart();
    wait_connected(&cache).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    println!(
        "ok calls: {}, failed: {}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no call may fail with the memory fallback"
    );
    assert!(ok.load(Ordering::Relaxed) > 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_costs_at_most_the_timeout() {
    let server = RedisServer::start();
    let cache = cache_on(&server, Fallback::Memory).await;
    let ns = cache.namespace("pause").unwrap();
    ns.set("k", &1u32, Ttl::secs(60)).await.unwrap();
    server.pause();
    // Concurrent callers: each returns within the timeout (plus scheduling slack).
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let r = if i % 2 == 0 {
                ns.get::<u32>("k").await.map(|_| ())
            } else {
                ns.set("k", &i, Ttl::secs(60)).await
            };
            (start.elapsed(), r.is_ok())
        }));
    }
    let mut worst = Duration::ZERO;
    for t in tasks {
        let (took, ok) = t.await.unwrap();
        assert!(ok, "calls must succeed from the fallback");
        worst = worst.max(took);
    }
    println!("worst call latency while paused: {worst:?}");
    assert!(
        worst < TIMEOUT + Duration::from_millis(300),
        "a call took {worst:?} with a {TIMEOUT:?} timeout"
    );
    assert_eq!(cache.state(), BackendState::Degraded);
    // Once the circuit is open, calls do not wait at all.
    let start = Instant::now();
    for _ in 0..100 {
        ns.get::<u32>("k").await.unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "100 calls with an open circuit took {:?}",
        start.elapsed()
    );
    server.resume();
    wait_connected(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reader_sees_a_pre_outage_value_after_recovery() {
    // Persistent, so the pre-outage value v1 comes back with the restart: the replay must
    // overwrite it before Redis serves reads again.
    let server = RedisServer::start_with(RedisConfig {
        persistent: true,
        ..Default::default()
    });
    let cache = cache_on(&server, Fallback::Memory).await;
    let ns = cache.namespace("co").unwrap();
    ns.set("k", &"v1", Ttl::secs(600)).await.unwrap();
    ns.set("gone", &"old", Ttl::secs(600)).await.unwrap();
    ns.set("in-cleared", &"old", Ttl::secs(600)).await.unwrap();
    ns.set("ttl", &"old", Ttl::secs(600)).await.unwrap();
    server.kill();

    // Writes during the outage.
    ns.set("k", &"v2", Ttl::secs(600)).await.unwrap();
    assert_eq!(cache.state(), BackendState::Degraded);
    assert!(ns.del("gone").await.is_ok());
    ns.delete_pattern("in-*").await.unwrap();
    ns.set("ttl", &"new", Ttl::secs(100)).await.unwrap();
    let ttl_set_at = Instant::now();
    assert_eq!(
        ns.get::<String>("k").await.unwrap().as_deref(),
        Some("v2"),
        "read-your-write during the outage"
    );

    // Readers run through the restart and the recovery.
    let stop = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (ns, stop, stale, reads) = (ns.clone(), stop.clone(), stale.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 1_000_000 {
                let v = ns.get::<String>("k").await.unwrap();
                if v.as_deref() != Some("v2") {
                    stale.fetch_add(1, Ordering::Relaxed);
                }
                if ns.exists("gone").await.unwrap() || ns.exists("in-cleared").await.unwrap() {
                    stale.fetch_add(1, Ordering::Relaxed);
                }
                reads.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.restart();
    assert_eq!(
        server.cmd(&["EXISTS", "co:gone"]),
        RespReply::Value("1".into()),
        "restart brought v1 back"
    );
    wait_connected(&cache).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    println!(
        "reads: {}, stale: {}",
        reads.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed)
    );
    assert_eq!(
        stale.load(Ordering::Relaxed),
        0,
        "a reader saw a value older than the outage's write"
    );

    // Redis itself now holds the outage's state.
    assert_eq!(
        server.cmd(&["EXISTS", "co:gone"]),
        RespReply::Value("0".into())
    );
    assert_eq!(
        server.cmd(&["EXISTS", "co:in-cleared"]),
        RespReply::Value("0".into())
    );
    let ttl: u64 = server
        .cmd(&["TTL", "co:ttl"])
        .text()
        .unwrap()
        .parse()
        .unwrap();
    let lower = 100 - ttl_set_at.elapsed().as_secs() - 1;
    assert!(
        (lower..=100).contains(&ttl),
        "the replay keeps the remaining TTL: got {ttl}, want {lower}..=100"
    );
    assert_eq!(
        ns.get::<String>("ttl").await.unwrap().as_deref(),
        Some("new")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_policy_fails_fast_and_recovers() {
    let server = RedisServer::start();
    let cache = cache_on(&server, Fallback::Fail).await;
    let ns = cache.namespace("ff").unwrap();
    ns.set("k", &1u32, Ttl::secs(60)).await.unwrap();
    server.kill();
    let e = ns.get::<u32>("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_unavailable());
    let start = Instant::now();
    for _ in 0..100 {
        assert!(
            ns.set("k", &2u32, Ttl::secs(60))
                .await
                .unwrap_err()
                .is_unavailable()
        );
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "an open circuit must fail fast"
    );
    server.restart();
    wait_connected(&cache).await;
    ns.set("k", &3u32, Ttl::secs(60)).await.unwrap();
    assert_eq!(ns.get::<u32>("k").await.unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_degraded_when_redis_is_down_and_recovers() {
    let server = RedisServer::start();
    let url = server.url();
    server.kill();
    let cache = Cache::builder()
        .redis(url)
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .probe_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    assert_eq!(cache.state(), BackendState::Degraded);
    let ns = cache.namespace("boot").unwrap();
    ns.set("k", &"during", Ttl::secs(60)).await.unwrap();
    server.restart();
    wait_connected(&cache).await;
    assert_eq!(
        ns.get::<String>("k").await.unwrap().as_deref(),
        Some("during")
    );
    assert!(
        server.cmd(&["GET", "boot:k"]).text().is_some(),
        "the boot-time write reached redis"
    );
    // Fail policy refuses to start on an unreachable Redis, with a clear error.
    server.kill();
    let e = Cache::builder()
        .redis(server.url())
        .fallback(Fallback::Fail)
        .connect_timeout(TIMEOUT)
        .build()
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_buffered_in_a_paused_redis_does_not_win_over_a_later_one() {
    let server = RedisServer::start();
    let cache = cache_on(&server, Fallback::Memory).await;
    let ns = cache.namespace("buf").unwrap();
    ns.set("k", &"v1", Ttl::secs(60)).await.unwrap();
    server.pause();
    // This SET reaches the paused server's socket and times out: it will execute on resume.
    ns.set("k", &"v2", Ttl::secs(60)).await.unwrap();
    assert_eq!(cache.state(), BackendState::Degraded);
    ns.set("k", &"v3", Ttl::secs(60)).await.unwrap();
    server.resume();
    wait_connected(&cache).await;
    for _ in 0..100 {
        assert_eq!(ns.get::<String>("k").await.unwrap().as_deref(), Some("v3"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordination_during_and_after_an_outage() {
    let server = RedisServer::start_with(RedisConfig {
        persistent: true,
        ..Default::default()
    });
    let cache = cache_on(&server, Fallback::Memory).await;
    let ns = cache.namespace("coord").unwrap();
    let before = ns
        .locks()
        .acquire_lease("job", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(ns.locks().release("job", &before.token).await.unwrap());
    ns.presence("room")
        .unwrap()
        .beat("ada", Duration::from_secs(60))
        .await
        .unwrap();
    server.kill();
    // Locks fail closed: a lock in one process's memory would exclude nobody else.
    let e = ns
        .locks()
        .acquire_lease("job", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    // Presence keeps answering locally; rate limits fail closed (see
    // `coordination_fails_closed_and_keeps_what_redis_holds`).
    ns.presence("room")
        .unwrap()
        .beat("bob", Duration::from_secs(60))
        .await
        .unwrap();
    let e = ns
        .rate_limits()
        .check(
            "k",
            sharecache::ratelimit::Limit::per(5, Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    server.restart();
    wait_connected(&cache).await;
    // After recovery the Redis-side structures are intact (no JSON replayed over a set)
    // and fences keep growing from where Redis was.
    ns.presence("room")
        .unwrap()
        .beat("eve", Duration::from_secs(60))
        .await
        .unwrap();
    let names: Vec<String> = ns
        .presence("room")
        .unwrap()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert!(
        names.contains(&"ada".to_owned()) && names.contains(&"eve".to_owned()),
        "{names:?}"
    );
    let after = ns
        .locks()
        .acquire_lease("job", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(
        after.fence > before.fence,
        "fences only grow: {} then {}",
        before.fence,
        after.fence
    );
}

/// While Redis is paused, nothing that coordinates processes is decided from one
/// process's memory: a release (by anyone) cannot delete the real lock, a spent rate
/// limit is not handed out again, ending every session of a user does not report done
/// while Redis still holds them. After recovery Redis's state is as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordination_fails_closed_and_keeps_what_redis_holds() {
    use sharecache::ratelimit::Limit;
    let server = RedisServer::start();
    let cache = cache_on(&server, Fallback::Memory).await;
    let ns = cache.namespace("user").unwrap();
    let (locks, limits, sessions) = (ns.locks(), ns.rate_limits(), ns.sessions());
    let lease = locks
        .acquire_lease("payroll", Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .expect("free");
    let budget = Limit::per(3, Duration::from_secs(600));
    for _ in 0..3 {
        assert!(limits.check("login:ada", budget).await.unwrap().allowed);
    }
    assert!(!limits.check("login:ada", budget).await.unwrap().allowed);
    let day = Duration::from_secs(86_400);
    let before = sessions
        .create_for("ada", serde_json::json!({"n": 1}), day, day)
        .await
        .unwrap();

    server.pause();
    let unavailable = |r: sharecache::Result<()>, what: &str| match r {
        Err(e) if e.is_unavailable() => {}
        other => panic!("{what} during the outage: {other:?}"),
    };
    unavailable(
        locks.release("payroll", "not-the-owner").await.map(drop),
        "a stranger's release",
    );
    unavailable(
        locks.release("payroll", &lease.token).await.map(drop),
        "the owner's release",
    );
    unavailable(
        limits.check("login:ada", budget).await.map(drop),
        "a spent rate limit",
    );
    unavailable(sessions.end_all("ada").await.map(drop), "end_all");
    unavailable(sessions.list("ada").await.map(drop), "list");
    unavailable(
        sessions
            .create_for("ada", serde_json::json!({"n": 2}), day, day)
            .await
            .map(drop),
        "create_for",
    );
    server.resume();
    wait_connected(&cache).await;

    assert!(
        locks
            .acquire_lease("payroll", Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap()
            .is_none(),
        "the lease survived the outage: nobody else gets the lock"
    );
    assert!(
        locks
            .extend("payroll", &lease.token, Duration::from_secs(30))
            .await
            .unwrap(),
        "the owner still holds it"
    );
    assert!(
        !limits.check("login:ada", budget).await.unwrap().allowed,
        "the spent budget stays spent"
    );
    assert!(sessions.get(&before.id).await.unwrap().is_some());
    assert_eq!(sessions.end_all("ada").await.unwrap(), 1);
    assert!(sessions.get(&before.id).await.unwrap().is_none());
}

/// Fences only grow, even when Redis loses the fence counter: restarted without
/// persistence, or with the counter evicted (the same loss, done here with DEL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fences_grow_after_redis_loses_the_counter() {
    let server = RedisServer::start();
    let cache = cache_on(&server, Fallback::Fail).await;
    let ns = cache.namespace("user").unwrap();
    let locks = ns.locks();
    // The first call on a link Redis dropped may fail before it reconnects: retry those.
    let take = async || {
        let mut tries = 0;
        let l = loop {
            match locks
                .acquire_lease("payroll", Duration::from_secs(30), Duration::ZERO)
                .await
            {
                Err(e) if e.is_unavailable() && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => break r.unwrap().expect("free"),
            }
        };
        assert!(locks.release("payroll", &l.token).await.unwrap());
        l.fence
    };
    let mut last = 0;
    for _ in 0..3 {
        let f = take().await;
        assert!(f > last, "{f} after {last}");
        last = f;
    }
    server.kill();
    server.restart();
    wait_connected(&cache).await;
    assert_eq!(
        server.cmd(&["DBSIZE"]),
        RespReply::Value("0".into()),
        "restarted without the counter"
    );
    let f = take().await;
    assert!(
        f > last,
        "after a restart without persistence: {f} after {last}"
    );
    last = f;
    let fence_keys = server.cmd(&["KEYS", "*fence*"]);
    let RespReply::Array(names) = fence_keys else {
        panic!("{fence_keys:?}")
    };
    assert_eq!(names.len(), 1, "{names:?}");
    let RespReply::Value(name) = &names[0] else {
        panic!("{names:?}")
    };
    server.cmd(&["DEL", name]);
    let f = take().await;
    assert!(f > last, "after the counter was evicted: {f} after {last}");
}

/// `len` bytes of hex that LZ4 cannot shrink (a xorshift stream), so a value weighs what
/// it says in the fallback's budget.
fn incompressible(len: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(len);
    out
}

/// One tenant filling the memory fallback cannot push out another's acknowledged writes
/// (issue 11, item 6): with a 4 MiB fallback, `user` writing 60 x 200 KB is refused
/// (`FallbackFull`, naming its namespace) once its quarter is spent, while every one of
/// `auth`'s 50 writes stays readable, takes new writes, and reaches Redis on recovery;
/// so does each of `user`'s writes that was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_fallback_refuses_rather_than_evicts() {
    let server = RedisServer::start();
    let cache = cache_with(&server, Fallback::Memory, |b| {
        b.memory_limits(MemoryLimits {
            max_bytes: 4 << 20,
            max_entries: 100_000,
        })
    })
    .await;
    let (auth, user) = (
        cache.namespace("auth").unwrap(),
        cache.namespace("user").unwrap(),
    );
    server.kill();
    for i in 0..50 {
        auth.set(&format!("k{i}"), &format!("v{i}"), Ttl::secs(600))
            .await
            .unwrap();
    }
    assert_eq!(cache.state(), BackendState::Degraded);
    let mut stored = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        match user
            .set(
                &format!("b{i}"),
                &incompressible(200_000, i),
                Ttl::secs(600),
            )
            .await
        {
            Ok(()) => stored.push(i),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::FallbackFull, "{e}");
                assert!(e.message().contains("\"user\""), "names the namespace: {e}");
                refused += 1;
            }
        }
    }
    // A quarter of 4 MiB holds 5 of them: the rest are refused, none evicts.
    assert!(
        (3..=5).contains(&stored.len()) && refused == 60 - stored.len(),
        "stored {stored:?}, refused {refused}"
    );
    auth.set("later", &"still room", Ttl::secs(600))
        .await
        .unwrap();
    for i in 0..50 {
        assert_eq!(
            auth.get::<String>(&format!("k{i}")).await.unwrap(),
            Some(format!("v{i}")),
            "auth's k{i} during the outage"
        );
    }
    // Deleting frees the share again.
    user.del(&format!("b{}", stored[0])).await.unwrap();
    let again = stored.remove(0);
    user.set(
        &format!("b{again}"),
        &incompressible(200_000, again),
        Ttl::secs(600),
    )
    .await
    .unwrap();
    stored.push(again);

    server.restart();
    wait_connected(&cache).await;
    for i in 0..50 {
        assert_eq!(
            server.cmd(&["EXISTS", &format!("auth:k{i}")]).text(),
            Some("1"),
            "auth:k{i} reached redis"
        );
        assert_eq!(
            auth.get::<String>(&format!("k{i}")).await.unwrap(),
            Some(format!("v{i}"))
        );
    }
    for i in &stored {
        assert_eq!(
            user.get::<String>(&format!("b{i}")).await.unwrap(),
            Some(incompressible(200_000, *i)),
            "user's acknowledged b{i}"
        );
    }
}

/// An acquire in flight when Redis stops answers `Unavailable` after the timeout, but the
/// paused server runs it when it resumes (issue 11, item 3): the failed attempt releases
/// it with its token, so the lock is free again at once instead of being held by nobody
/// for its 30 s TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_acquire_does_not_leave_the_lock_held() {
    let server = RedisServer::start();
    let cache = cache_on(&server, Fallback::Memory).await;
    let locks = cache.namespace("user").unwrap().locks();
    let ttl = Duration::from_secs(30);
    // Once taken and released first, so the server has the script (an EVALSHA of an
    // unknown script would fail on resume anyway).
    let first = locks
        .acquire_lease("payroll", ttl, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(locks.release("payroll", &first.token).await.unwrap());
    server.pause();
    let e = locks
        .acquire_lease("payroll", ttl, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    server.resume();
    wait_connected(&cache).await;
    let started = Instant::now();
    let lease = loop {
        if let Some(l) = locks
            .acquire_lease("payroll", ttl, Duration::ZERO)
            .await
            .unwrap()
        {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the lock stayed held by nobody after a failed acquire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(lease.fence > 0);
    assert!(locks.release("payroll", &lease.token).await.unwrap());
}

/// Durability (issue 11): with `appendonly yes` and `appendfsync always` (the testkit's
/// persistent server), a kill -9 of Redis loses nothing that was acknowledged: a
/// session and its user's index, a queued message, a durable event, a fence counter and a
/// cache value are all there after the restart, and fences keep growing from where they
/// were. (`everysec`, Redis's default, may lose the last second: docs/operations.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_kill_9_with_appendfsync_always() {
    let server = RedisServer::start_with(RedisConfig {
        persistent: true,
        ..Default::default()
    });
    let cache = cache_on(&server, Fallback::Fail).await;
    let ns = cache.namespace("durable").unwrap();
    let day = Duration::from_secs(86_400);
    let session = ns
        .sessions()
        .create_for("ada", serde_json::json!({"cart": 3}), day, day)
        .await
        .unwrap();
    let queued = ns.queue("jobs").unwrap().push(&"resize 42").await.unwrap();
    let (event, _) = ns
        .channel("audit")
        .unwrap()
        .publish_durable(&"paid")
        .await
        .unwrap();
    let lease = ns
        .locks()
        .acquire_lease("payroll", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(ns.locks().release("payroll", &lease.token).await.unwrap());
    ns.set("k", &"v", Ttl::NEVER).await.unwrap();

    server.kill();
    server.restart();
    // Nothing called during the outage, so the first call learns of it: wait until the
    // connection is back.
    let c = cache.clone();
    assert!(
        eventually(Duration::from_secs(10), async || c
            .namespace("durable")
            .unwrap()
            .get::<String>("k")
            .await
            .is_ok())
        .await
    );
    wait_connected(&cache).await;

    let s = ns.sessions().get(&session.id).await.unwrap();
    assert_eq!(s.map(|s| s.data), Some(serde_json::json!({"cart": 3})));
    assert_eq!(ns.sessions().list("ada").await.unwrap().len(), 1);
    let claimed = ns
        .queue("jobs")
        .unwrap()
        .claim("w", 10, Duration::ZERO, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [queued.as_str()]
    );
    let events = ns.channel("audit").unwrap().since(None, 10).await.unwrap();
    assert!(events.iter().any(|(id, _)| *id == event), "{events:?}");
    let after = ns
        .locks()
        .acquire_lease("payroll", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(
        after.fence > lease.fence,
        "{} then {}",
        lease.fence,
        after.fence
    );
    assert_eq!(ns.get::<String>("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(
        server.cmd(&["CONFIG", "GET", "appendfsync"]),
        RespReply::Array(vec![
            RespReply::Value("appendfsync".into()),
            RespReply::Value("always".into())
        ]),
        "the setting this guarantee depends on"
    );
}
