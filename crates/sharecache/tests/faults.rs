//! Network faults between the library and a real redis-server, made by the testkit's
//! `FaultProxy` (latency, a stall, dropped connections, a reset in the middle of a reply,
//! slow reads): the fallback, the command timeout, the L1 invalidation link and every
//! coordination primitive through each. Every wait is bounded in count and in time.

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use sharecache::ratelimit::Limit;
use sharecache::session::SessionKeys;
use sharecache::{BackendState, Cache, CacheBuilder, Fallback, LocalTier, Namespace, Ttl};
use sharecache_testkit::{FaultProxy, RedisServer, RespReply};
use support::eventually;

const TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on a loaded machine, on top of the timeout.
const MARGIN: Duration = Duration::from_millis(400);

fn builder(url: String, keys: &SessionKeys, fallback: Fallback) -> CacheBuilder {
    Cache::builder()
        .url(&url)
        .fallback(fallback)
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .probe_interval(Duration::from_millis(50))
        .session_keys(keys.clone())
}

fn keys() -> SessionKeys {
    SessionKeys::new(&[SessionKeys::generate()]).unwrap()
}

/// A cache through `proxy`, with the memory fallback unless `fallback` says otherwise.
async fn via(proxy: &FaultProxy, fallback: Fallback) -> Cache {
    builder(proxy.url(), &keys(), fallback)
        .build()
        .await
        .unwrap()
}

async fn wait_state(cache: &Cache, want: BackendState, within: Duration) {
    let c = cache.clone();
    assert!(
        eventually(within, async || c.state() == want).await,
        "state {} after {within:?}, want {want}",
        cache.state()
    );
}

async fn wait_connected(cache: &Cache) {
    wait_state(cache, BackendState::Connected, Duration::from_secs(10)).await;
}

/// Runs `f`, returning its output and how long it took.
async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

#[track_caller]
fn within_timeout(what: &str, took: Duration) {
    assert!(
        took < TIMEOUT + MARGIN,
        "{what} took {took:?} with a {TIMEOUT:?} timeout"
    );
}

fn exists(server: &RedisServer, key: &str) -> bool {
    server.cmd(&["EXISTS", key]) == RespReply::Value("1".into())
}

/// `len` bytes of hex that LZ4 cannot shrink (a xorshift stream), so the value crosses
/// the proxy at its full size.
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

/// Latency below the timeout only slows calls down; above it, calls answer within the
/// timeout from the memory fallback, and after healing the outage's writes are in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_under_the_timeout_slows_over_it_falls_back() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let cache = via(&proxy, Fallback::Memory).await;
    let ns = cache.namespace("lat").unwrap();
    ns.set("before", &"b", Ttl::secs(60)).await.unwrap();

    // 30 ms each way: a round trip costs 60 ms more, well under 200 ms.
    proxy.latency(Duration::from_millis(30));
    for i in 0..5u32 {
        let (r, took) = timed(ns.set(&format!("slow{i}"), &i, Ttl::secs(60))).await;
        r.unwrap();
        within_timeout("a set with 60 ms of latency", took);
        assert!(
            took >= Duration::from_millis(60),
            "the latency applies: {took:?}"
        );
        assert_eq!(ns.get::<u32>(&format!("slow{i}")).await.unwrap(), Some(i));
    }
    let lease = ns
        .locks()
        .acquire_lease("l", Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(
        server.cmd(&["GET", "#lock:lat:{l}"]).text(),
        Some(lease.token.as_str())
    );
    assert_eq!(cache.state(), BackendState::Connected, "slow is not down");

    // 300 ms each way: every round trip is over the timeout.
    proxy.latency(Duration::from_millis(300));
    let (r, took) = timed(ns.set("during", &"d1", Ttl::secs(60))).await;
    r.unwrap();
    within_timeout("the first set over the latency", took);
    assert_eq!(cache.state(), BackendState::Degraded);
    for i in 0..20u32 {
        let (r, took) = timed(ns.set(&format!("out{i}"), &i, Ttl::secs(60))).await;
        r.unwrap();
        within_timeout("a set on the open circuit", took);
    }
    ns.set("during", &"d2", Ttl::secs(60)).await.unwrap();
    assert_eq!(
        ns.get::<String>("during").await.unwrap().as_deref(),
        Some("d2"),
        "read-your-write from the fallback"
    );
    ns.del("before").await.unwrap();
    let (r, took) = timed(
        ns.locks()
            .acquire_lease("l2", Duration::from_secs(30), Duration::ZERO),
    )
    .await;
    assert!(r.unwrap_err().is_unavailable());
    within_timeout("a lock acquire on the open circuit", took);
    // The probe's PING is as slow as everything else: still degraded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.state(), BackendState::Degraded);

    proxy.heal();
    wait_connected(&cache).await;
    let direct = builder(server.url(), &keys(), Fallback::Fail)
        .build()
        .await
        .unwrap();
    let dn = direct.namespace("lat").unwrap();
    assert_eq!(
        dn.get::<String>("during").await.unwrap().as_deref(),
        Some("d2"),
        "the outage's last write is in Redis"
    );
    for i in 0..20u32 {
        assert!(exists(&server, &format!("lat:out{i}")), "lat:out{i}");
        assert_eq!(dn.get::<u32>(&format!("out{i}")).await.unwrap(), Some(i));
    }
    assert!(
        !exists(&server, "lat:before"),
        "the outage's delete is in Redis"
    );
    assert!(
        !exists(&server, "#lock:lat:{l2}"),
        "a refused lock is not held"
    );
}

/// A stall (bytes held, connections open): no call waits past the timeout; a write held
/// in the stalled connection and delivered on heal never wins over a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_costs_at_most_the_timeout() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let cache = via(&proxy, Fallback::Memory).await;
    let ns = cache.namespace("st").unwrap();
    ns.set("k", &"v1", Ttl::secs(60)).await.unwrap();
    proxy.stall();
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let key = format!("s{i}");
            let r = if i % 2 == 0 {
                ns.get::<u32>("k").await.map(drop)
            } else {
                ns.set(&key, &i, Ttl::secs(60)).await
            };
            (r, start.elapsed())
        }));
    }
    let mut worst = Duration::ZERO;
    for t in tasks {
        let (r, took) = t.await.unwrap();
        r.expect("the fallback answers");
        worst = worst.max(took);
    }
    println!("worst call through a stall: {worst:?}");
    within_timeout("a call through a stall", worst);
    assert_eq!(cache.state(), BackendState::Degraded);
    // The first write of the outage went into the stalled socket before timing out; the
    // second is only in memory. Both reach Redis after the heal, the later one last.
    ns.set("k", &"v3", Ttl::secs(60)).await.unwrap();
    let start = Instant::now();
    for _ in 0..100 {
        ns.get::<String>("k").await.unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "an open circuit answers at once: {:?}",
        start.elapsed()
    );
    proxy.heal();
    wait_connected(&cache).await;
    for _ in 0..50 {
        assert_eq!(ns.get::<String>("k").await.unwrap().as_deref(), Some("v3"));
    }
    for i in (1..16u32).step_by(2) {
        assert!(
            exists(&server, &format!("st:s{i}")),
            "st:s{i} reached Redis"
        );
        assert_eq!(ns.get::<u32>(&format!("s{i}")).await.unwrap(), Some(i));
    }
}

/// A held write delivered after the replay is the one way an old value could win: make
/// sure the write that reached the stalled socket first never overwrites the later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_held_by_a_stall_does_not_win_over_a_later_one() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let cache = via(&proxy, Fallback::Memory).await;
    let ns = cache.namespace("held").unwrap();
    ns.set("k", &"v1", Ttl::secs(60)).await.unwrap();
    proxy.stall();
    // Reaches the stalled socket, times out, is answered from memory.
    let (r, took) = timed(ns.set("k", &"v2", Ttl::secs(60))).await;
    r.unwrap();
    within_timeout("a set through a stall", took);
    assert_eq!(cache.state(), BackendState::Degraded);
    ns.set("k", &"v3", Ttl::secs(60)).await.unwrap();
    proxy.heal();
    wait_connected(&cache).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..50 {
        assert_eq!(ns.get::<String>("k").await.unwrap().as_deref(), Some("v3"));
    }
    let direct = builder(server.url(), &keys(), Fallback::Fail)
        .build()
        .await
        .unwrap();
    assert_eq!(
        direct
            .namespace("held")
            .unwrap()
            .get::<String>("k")
            .await
            .unwrap()
            .as_deref(),
        Some("v3")
    );
}

/// Dropped connections (and every new one refused until healed): calls answer within
/// the timeout from memory; after healing the state is Connected and the outage's
/// writes and deletes are in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_fall_back_and_recover() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let cache = via(&proxy, Fallback::Memory).await;
    let ns = cache.namespace("dr").unwrap();
    ns.set("gone", &1u32, Ttl::secs(60)).await.unwrap();
    let accepted = proxy.accepted();
    proxy.drop_connections();
    let mut worst = Duration::ZERO;
    for i in 0..50u32 {
        let (r, took) = timed(ns.set(&format!("d{i}"), &i, Ttl::secs(60))).await;
        r.expect("the fallback answers");
        worst = worst.max(took);
        let (r, took) = timed(ns.get::<u32>(&format!("d{i}"))).await;
        assert_eq!(r.unwrap(), Some(i));
        worst = worst.max(took);
    }
    ns.del("gone").await.unwrap();
    println!("worst call with dropped connections: {worst:?}");
    within_timeout("a call with dropped connections", worst);
    assert_eq!(cache.state(), BackendState::Degraded);
    // The probe keeps trying: new connections are accepted and closed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.state(), BackendState::Degraded);
    assert_eq!(proxy.open_connections(), 0);
    proxy.heal();
    wait_connected(&cache).await;
    assert!(proxy.accepted() > accepted, "the library reconnected");
    for i in 0..50u32 {
        assert!(
            exists(&server, &format!("dr:d{i}")),
            "dr:d{i} reached Redis"
        );
    }
    assert!(
        !exists(&server, "dr:gone"),
        "the outage's delete reached Redis"
    );
    assert_eq!(ns.get::<u32>("d7").await.unwrap(), Some(7));
}

/// A connection reset after N bytes of a reply (N from 1 to past the end of the header,
/// into the value): the read is the right value or an `Unavailable` error, never a
/// truncated or wrong value, and the cache reconnects after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_reply_never_returns_a_truncated_value() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let cache = via(&proxy, Fallback::Fail).await;
    let ns = cache.namespace("rst").unwrap();
    let big = incompressible(64 << 10, 7);
    ns.set("big", &big, Ttl::secs(600)).await.unwrap();
    ns.set("small", &"tiny", Ttl::secs(600)).await.unwrap();
    let mut errors = 0;
    for (round, cut) in [1usize, 2, 5, 8, 20, 100, 4096, 40_000, 65_000]
        .into_iter()
        .enumerate()
    {
        proxy.reset_mid_reply(cut);
        let (r, took) = timed(ns.get::<String>("big")).await;
        within_timeout("a read cut by a reset", took);
        match r {
            Ok(v) => assert!(
                v.as_deref() == Some(big.as_str()),
                "cut at {cut}: a wrong value"
            ),
            Err(e) => {
                assert!(e.is_unavailable(), "cut at {cut}: {e}");
                errors += 1;
            }
        }
        assert_eq!(proxy.resets(), 2 * round as u64 + 1, "the reset happened");
        wait_connected(&cache).await;
        // mget through a reset too (two values in one reply).
        proxy.reset_mid_reply(cut.min(30));
        match ns.mget::<String>(&["small", "big"]).await {
            Ok(v) => assert_eq!(v, [Some("tiny".to_owned()), Some(big.clone())]),
            Err(e) => assert!(e.is_unavailable(), "mget cut at {cut}: {e}"),
        }
        wait_connected(&cache).await;
    }
    println!("reads cut by a reset: {errors} of 9 failed, none was wrong");
    assert!(errors > 0, "a reset within the reply must fail the read");
    // The connection is good again and so is the data.
    assert_eq!(ns.get::<String>("big").await.unwrap(), Some(big.clone()));
    assert_eq!(
        ns.get::<String>("small").await.unwrap().as_deref(),
        Some("tiny")
    );

    // A write whose reply is cut: Redis holds the old or the new value, whole.
    let v2 = incompressible(64 << 10, 8);
    proxy.reset_mid_reply(1);
    let r = ns.set("big", &v2, Ttl::secs(600)).await;
    wait_connected(&cache).await;
    let now = ns.get::<String>("big").await.unwrap().unwrap();
    match r {
        Ok(()) => assert!(now == v2, "an acknowledged write is in Redis"),
        Err(e) => {
            assert!(e.is_unavailable(), "{e}");
            assert!(now == v2 || now == big, "old or new, whole");
        }
    }
}

/// Slow reads of a 1 MiB value: a trickle fast enough answers the right value, one too
/// slow times out within the bound; after healing the value reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reads_of_a_big_value_are_right_or_time_out() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let cache = builder(proxy.url(), &keys(), Fallback::Fail)
        .command_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let ns = cache.namespace("slow").unwrap();
    let big = incompressible(1 << 20, 9);
    ns.set("big", &big, Ttl::secs(600)).await.unwrap();

    // 16 KiB per ms: about 70 ms for the value, well inside 500 ms.
    proxy.slow_reads(16 << 10, Duration::from_millis(1));
    for _ in 0..3 {
        let got = ns.get::<String>("big").await.unwrap();
        assert!(
            got.as_deref() == Some(big.as_str()),
            "a slow read returned a wrong value"
        );
    }
    // 1 byte per ms: 17 minutes for the value; the read must time out.
    proxy.slow_reads(1, Duration::from_millis(1));
    let (r, took) = timed(ns.get::<String>("big")).await;
    assert!(
        took < Duration::from_millis(500) + MARGIN,
        "a read too slow for the timeout took {took:?}"
    );
    match r {
        Err(e) => assert!(e.is_unavailable(), "{e}"),
        Ok(v) => panic!(
            "a 1 MiB read at 1 byte/ms answered: {:?} bytes",
            v.map(|v| v.len())
        ),
    }
    proxy.heal();
    wait_connected(&cache).await;
    for _ in 0..3 {
        let got = ns.get::<String>("big").await.unwrap();
        assert!(
            got.as_deref() == Some(big.as_str()),
            "the value after a slow read"
        );
    }
}

/// A cache with an L1 tier, its tracking link probed every 100 ms.
async fn tiered(url: String, keys: &SessionKeys) -> Cache {
    let cache = builder(url, keys, Fallback::Memory)
        .local_tier(LocalTier::max_bytes(8 << 20).probe_interval(Duration::from_millis(100)))
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

/// The L1 invalidation link lost to a fault (`drop`: connections closed; `stall`: the
/// link's ping unanswered): a write made meanwhile by another instance is never hidden
/// by a stale L1 entry, during the outage or after it; after healing the link works again.
async fn l1_is_never_stale_after_the_link_is_lost(fault: impl Fn(&FaultProxy)) {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let k = keys();
    let a = tiered(proxy.url(), &k).await;
    let b = tiered(server.url(), &k).await;
    let (na, nb) = (a.namespace("l1").unwrap(), b.namespace("l1").unwrap());
    nb.set("k", &"v1", Ttl::secs(600)).await.unwrap();
    // The write's invalidation reaches A a moment later; until then a fill may be
    // removed again. Read until a read is an L1 hit.
    let (n, c) = (na.clone(), a.clone());
    assert!(
        eventually(Duration::from_secs(3), async || {
            assert_eq!(n.get::<String>("k").await.unwrap().as_deref(), Some("v1"));
            let hits = c.tier_stats().unwrap().hits;
            assert_eq!(n.get::<String>("k").await.unwrap().as_deref(), Some("v1"));
            c.tier_stats().unwrap().hits == hits + 1
        })
        .await,
        "v1 never stayed in A's L1"
    );

    fault(&proxy);
    let c = a.clone();
    assert!(
        eventually(Duration::from_secs(3), async || !c
            .tier_stats()
            .unwrap()
            .link_up)
        .await,
        "A never noticed its tracking link was lost"
    );
    nb.set("k", &"v2", Ttl::secs(600)).await.unwrap();
    for _ in 0..20 {
        let (r, took) = timed(na.get::<String>("k")).await;
        within_timeout("a read while the link is down", took);
        assert_ne!(
            r.unwrap().as_deref(),
            Some("v1"),
            "A's L1 served a value it cannot know is current"
        );
    }
    proxy.heal();
    wait_connected(&a).await;
    let c = a.clone();
    assert!(
        eventually(Duration::from_secs(5), async || c
            .tier_stats()
            .unwrap()
            .link_up)
        .await,
        "tracking came back"
    );
    for _ in 0..50 {
        assert_eq!(
            na.get::<String>("k").await.unwrap().as_deref(),
            Some("v2"),
            "after the heal A reads the write made while its link was down"
        );
    }
    // The link carries invalidations again.
    nb.set("k", &"v3", Ttl::secs(600)).await.unwrap();
    let n = na.clone();
    assert!(
        eventually(Duration::from_secs(2), async || n
            .get::<String>("k")
            .await
            .unwrap()
            .as_deref()
            == Some("v3"))
        .await,
        "A never saw v3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_never_stale_after_its_link_is_dropped() {
    l1_is_never_stale_after_the_link_is_lost(FaultProxy::drop_connections).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_never_stale_after_its_link_stalls() {
    l1_is_never_stale_after_the_link_is_lost(FaultProxy::stall).await;
}

/// What one primitive's call said during the fault.
enum Said {
    Lock(Option<sharecache::lock::LockGuard>),
    Allowed(bool),
    Claimed(usize),
    Session(String),
    Done,
    Unavailable,
}

impl std::fmt::Debug for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Said::Lock(Some(g)) => write!(f, "held (fence {})", g.fence()),
            Said::Lock(None) => write!(f, "taken"),
            Said::Allowed(a) => write!(f, "allowed: {a}"),
            Said::Claimed(n) => write!(f, "claimed {n}"),
            Said::Session(_) => write!(f, "created"),
            Said::Done => write!(f, "ok"),
            Said::Unavailable => write!(f, "unavailable"),
        }
    }
}

const LIMIT: u64 = 100;

fn limit() -> Limit {
    Limit::per(LIMIT, Duration::from_secs(3600))
}

/// Each primitive through `fault`, each on a cache of its own, so each one's first call
/// meets the fault itself (not an already open circuit): every call answers Ok or
/// `Unavailable` within the timeout bound, and every success that Redis must hold is in
/// Redis after the heal (a lock told held exists with its token, an allowed rate-limit
/// check is counted, claimed messages are pending, a created session opens). A lock
/// acquire that failed is not left held by nobody.
async fn every_primitive_through(fault: impl Fn(&FaultProxy), tag: &str, outage: bool) {
    let server = RedisServer::start();
    let proxy = FaultProxy::to(&server);
    let k = keys();
    let mut caches = Vec::new();
    for _ in 0..6 {
        caches.push(
            builder(proxy.url(), &k, Fallback::Memory)
                .build()
                .await
                .unwrap(),
        );
    }
    let direct = builder(server.url(), &k, Fallback::Fail)
        .build()
        .await
        .unwrap();
    let name = format!("prim-{tag}");
    let nss: Vec<Namespace> = caches.iter().map(|c| c.namespace(&name).unwrap()).collect();
    let dn = direct.namespace(&name).unwrap();
    let day = Duration::from_secs(86_400);
    // Warm each path up while healthy (scripts loaded, the stream and group made).
    let lease = nss[0]
        .locks()
        .acquire_lease("warm", Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(nss[0].locks().release("warm", &lease.token).await.unwrap());
    assert!(
        nss[1]
            .rate_limits()
            .check("rl", limit())
            .await
            .unwrap()
            .allowed
    );
    let queue = nss[2].queue("jobs").unwrap();
    let none = queue
        .claim("w0", 10, Duration::ZERO, &Default::default())
        .await
        .unwrap();
    assert!(none.is_empty());
    queue.push(&"job-1").await.unwrap();
    queue.push(&"job-2").await.unwrap();
    nss[3]
        .sessions()
        .create_for("ada", serde_json::json!({"n": 0}), day, day)
        .await
        .unwrap();
    nss[4]
        .presence("room")
        .unwrap()
        .beat("warm", Duration::from_secs(60))
        .await
        .unwrap();
    nss[5]
        .channel("news")
        .unwrap()
        .publish(&"warm")
        .await
        .unwrap();

    fault(&proxy);
    let unavailable = |e: sharecache::Error, what: &str| {
        assert!(e.is_unavailable(), "{what}: {e}");
        Said::Unavailable
    };
    let (lock, rl, claim, session, beat, publish) = tokio::join!(
        timed(async {
            match nss[0]
                .locks()
                .acquire("job", Duration::from_secs(30), Duration::ZERO)
                .await
            {
                Ok(g) => Said::Lock(g),
                Err(e) => unavailable(e, "lock acquire"),
            }
        }),
        timed(async {
            match nss[1].rate_limits().check("rl", limit()).await {
                Ok(d) => Said::Allowed(d.allowed),
                Err(e) => unavailable(e, "rate-limit check"),
            }
        }),
        timed(async {
            match nss[2]
                .queue("jobs")
                .unwrap()
                .claim("w", 10, Duration::ZERO, &Default::default())
                .await
            {
                Ok(m) => Said::Claimed(m.len()),
                Err(e) => unavailable(e, "queue claim"),
            }
        }),
        timed(async {
            match nss[3]
                .sessions()
                .create_for("ada", serde_json::json!({"n": 1}), day, day)
                .await
            {
                Ok(s) => Said::Session(s.id),
                Err(e) => unavailable(e, "session create_for"),
            }
        }),
        timed(async {
            match nss[4]
                .presence("room")
                .unwrap()
                .beat("bob", Duration::from_secs(60))
                .await
            {
                Ok(()) => Said::Done,
                Err(e) => unavailable(e, "presence beat"),
            }
        }),
        timed(async {
            match nss[5].channel("news").unwrap().publish(&"during").await {
                Ok(_) => Said::Done,
                Err(e) => unavailable(e, "publish"),
            }
        }),
    );
    println!(
        "{tag}: lock {lock:?} rate limit {rl:?} claim {claim:?} session {session:?} \
         beat {beat:?} publish {publish:?}"
    );
    for (what, took) in [
        ("lock acquire", lock.1),
        ("rate-limit check", rl.1),
        ("queue claim", claim.1),
        ("session create_for", session.1),
        ("presence beat", beat.1),
        ("publish", publish.1),
    ] {
        within_timeout(&format!("{what} through a {tag}"), took);
    }
    if outage {
        // Each cache met the fault: the circuit is open and answers at once.
        for c in &caches {
            wait_state(c, BackendState::Degraded, Duration::from_secs(2)).await;
        }
        let (r, took) = timed(nss[1].rate_limits().check("rl", limit())).await;
        assert!(r.unwrap_err().is_unavailable(), "rate limits fail closed");
        assert!(
            took < Duration::from_millis(100),
            "an open circuit waits: {took:?}"
        );
    } else {
        // Slow is not down: every call succeeded, so every success check below runs.
        for (what, said) in [
            ("lock", &lock.0),
            ("rate limit", &rl.0),
            ("claim", &claim.0),
            ("session", &session.0),
        ] {
            assert!(
                !matches!(said, Said::Unavailable),
                "{what} under latency: {said:?}"
            );
        }
        for c in &caches {
            assert_eq!(c.state(), BackendState::Connected);
        }
    }

    proxy.heal();
    for c in &caches {
        wait_connected(c).await;
    }
    // The lock: told held -> held in Redis with that token; told unavailable -> not left
    // held by nobody (the background release with the failed attempt's token).
    let lock_key = format!("#lock:{name}:{{job}}");
    match &lock.0 {
        Said::Lock(Some(g)) => {
            assert_eq!(server.cmd(&["GET", &lock_key]).text(), Some(g.token()));
        }
        Said::Lock(None) => panic!("the lock was free"),
        _ => {
            let n = dn.clone();
            assert!(
                eventually(Duration::from_secs(10), async || n
                    .locks()
                    .acquire_lease("job", Duration::from_secs(5), Duration::ZERO)
                    .await
                    .is_ok_and(|l| l.is_some()))
                .await,
                "a failed acquire left the lock held by nobody"
            );
        }
    }
    // The rate limit: an allowed check is counted (two checks before this one, or one).
    let after = dn.rate_limits().check("rl", limit()).await.unwrap();
    assert!(after.allowed);
    match rl.0 {
        Said::Allowed(true) => assert!(
            after.remaining <= LIMIT - 3,
            "an allowed check was not counted: {after:?}"
        ),
        Said::Allowed(false) => panic!("refused with the budget unspent"),
        _ => assert!(after.remaining <= LIMIT - 2, "{after:?}"),
    }
    // The queue: claimed messages are pending in Redis for that consumer.
    if let Said::Claimed(n) = claim.0 {
        assert_eq!(n, 2, "both pushed messages claimed");
        let pending = server.cmd(&["XPENDING", &format!("#q:{name}:{{jobs}}"), "sharecache"]);
        let RespReply::Array(p) = pending else {
            panic!("{pending:?}")
        };
        let count: usize = p[0].text().unwrap().parse().unwrap();
        assert!(count >= n, "claimed {n}, {count} pending in Redis");
    }
    // The session: a created one opens through Redis and is in the user's index.
    if let Said::Session(id) = &session.0 {
        assert!(
            dn.sessions().get(id).await.unwrap().is_some(),
            "a created session is in Redis"
        );
        assert!(dn.sessions().list("ada").await.unwrap().len() >= 2);
    }
    // Presence and publish are local during an outage (documented); after the heal they
    // reach Redis again.
    nss[4]
        .presence("room")
        .unwrap()
        .beat("eve", Duration::from_secs(60))
        .await
        .unwrap();
    let members: Vec<String> = dn
        .presence("room")
        .unwrap()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert!(members.contains(&"eve".to_owned()), "{members:?}");
    nss[5]
        .channel("news")
        .unwrap()
        .publish(&"after")
        .await
        .unwrap();
    if let Said::Lock(Some(g)) = lock.0 {
        assert!(g.release().await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primitive_through_a_stall() {
    every_primitive_through(FaultProxy::stall, "stall", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primitive_through_dropped_connections() {
    every_primitive_through(FaultProxy::drop_connections, "drop", true).await;
}

/// The same calls under 40 ms of latency each way (a round trip 80 ms slower, under the
/// 200 ms timeout): every one succeeds, and each success is what Redis holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primitive_under_latency_succeeds_and_is_recorded() {
    every_primitive_through(|p| p.latency(Duration::from_millis(40)), "latency", false).await;
}
