//! L1: an in-process tier over Redis, kept coherent across instances.
//!
//! A hit costs a hash-map lookup instead of a network round trip. Coherence comes from
//! Redis server-assisted client tracking (RESP3, `CLIENT TRACKING ON BCAST`): one
//! dedicated connection per instance receives an `invalidate` push for every key any
//! client modifies (writes, deletes, expiry, eviction), and `invalidate nil` when the
//! database is flushed. `docs/decisions/0002-l1-invalidation.md` says why tracking was
//! chosen over an invalidation channel of our own.
//!
//! **Guarantees**
//!
//! * An entry is removed as soon as its invalidation arrives (p99 well under 5 ms on
//!   loopback; measured in `tests/tier.rs`).
//! * A value read from Redis is not cached if an invalidation of its key (or a flush)
//!   was handled while the read was in flight: each read takes a *ticket* (the version of
//!   the key's stripe and the flush epoch) before asking Redis, and the value is inserted
//!   only if the ticket is still current *after* the insert; an invalidation bumps the
//!   stripe *before* removing the key, so one of the two always wins.
//! * A write or delete made through this instance bumps the key's stripe and removes the
//!   key from L1 before returning, so the writer reads its own write.
//! * When the tracking link is lost (disconnect, `CLIENT KILL`, a ping unanswered within
//!   the probe timeout), L1 is flushed and bypassed until tracking is re-established on a
//!   new connection.
//! * Entries live at most `ttl_cap` (and never past the key's own TTL in Redis).

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache as QuickCache;

use crate::store::clock::Clock;
use crate::store::redis::link::Link;

/// Stripes of invalidation versions; a key maps to one by hash.
const STRIPES: usize = 4096;

/// Settings of the in-process tier.
///
/// ```
/// use sharecache::LocalTier;
/// use std::time::Duration;
/// let tier = LocalTier::max_bytes(64 << 20).ttl_cap(Duration::from_secs(30)).disable("audit");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LocalTier {
    pub(crate) max_bytes: u64,
    pub(crate) ttl_cap: Duration,
    pub(crate) disabled: HashSet<String>,
    pub(crate) probe_interval: Duration,
}

impl LocalTier {
    /// A tier holding at most `bytes` of values (keys and overhead included).
    pub fn max_bytes(bytes: u64) -> Self {
        Self {
            max_bytes: bytes.max(4096),
            ttl_cap: Duration::from_secs(60),
            disabled: HashSet::new(),
            probe_interval: Duration::from_millis(250),
        }
    }

    /// Longest time an entry stays in L1 (default 60 s), whatever its TTL in Redis.
    pub fn ttl_cap(mut self, cap: Duration) -> Self {
        self.ttl_cap = cap.max(Duration::from_millis(1));
        self
    }

    /// Keeps namespace `ns` out of L1 (every read goes to Redis).
    pub fn disable(mut self, ns: &str) -> Self {
        self.disabled.insert(ns.to_owned());
        self
    }

    /// How often the tracking link is pinged; a ping unanswered for this long counts as
    /// a lost link (default 250 ms).
    pub fn probe_interval(mut self, every: Duration) -> Self {
        self.probe_interval = every.max(Duration::from_millis(10));
        self
    }
}

/// One L1 entry: the stored bytes, and the decoded value once a typed read made one.
#[derive(Clone)]
pub(crate) struct L1Entry {
    pub(crate) bytes: Bytes,
    pub(crate) decoded: Option<Arc<dyn Any + Send + Sync>>,
    /// Clock deadline (ms); always set (ttl_cap).
    expires_at: u64,
    /// When the key itself expires in Redis (clock ms), if it has a TTL.
    key_deadline: Option<u64>,
    /// Flush epoch the entry was inserted in.
    epoch: u64,
}

#[derive(Clone)]
struct L1Weighter;

impl Weighter<String, Arc<L1Entry>> for L1Weighter {
    fn weight(&self, key: &String, val: &Arc<L1Entry>) -> u64 {
        // Decoded values are counted at their encoded size: a fair, cheap estimate.
        (key.len() + val.bytes.len() * if val.decoded.is_some() { 2 } else { 1 } + 96) as u64
    }
}

/// Counts L1 evictions (entries pushed out for space). quick_cache also reports the
/// value an insert replaces, so an insert passes its key's hash, which is not counted.
#[derive(Clone, Default)]
struct L1Lifecycle {
    hasher: quick_cache::DefaultHashBuilder,
    evictions: Arc<AtomicU64>,
}

#[derive(Default)]
struct L1Insert {
    inserting: u64,
}

impl quick_cache::Lifecycle<String, Arc<L1Entry>> for L1Lifecycle {
    type RequestState = L1Insert;

    fn on_evict(&self, state: &mut L1Insert, key: String, _val: Arc<L1Entry>) {
        use std::hash::BuildHasher;
        if self.hasher.hash_one(&key) != state.inserting {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type L1Map =
    QuickCache<String, Arc<L1Entry>, L1Weighter, quick_cache::DefaultHashBuilder, L1Lifecycle>;

/// Taken before a read from Redis; the read's value may enter L1 only if it is still
/// current afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    stripe: usize,
    version: u64,
    epoch: u64,
}

/// Tier counters.
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) flushes: AtomicU64,
}

/// The L1 tier. Shared by every namespace of a cache.
pub(crate) struct Tier {
    /// Values behind an `Arc`: a hit costs one reference count, not a clone of each field.
    map: L1Map,
    lifecycle: L1Lifecycle,
    stripes: Box<[AtomicU64]>,
    epoch: AtomicU64,
    link_up: AtomicBool,
    clock: Clock,
    pub(crate) config: LocalTier,
    pub(crate) counters: TierCounters,
    hasher: quick_cache::DefaultHashBuilder,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("entries", &self.map.len())
            .field("link_up", &self.link_up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Tier {
    pub(crate) fn new(config: LocalTier) -> Self {
        let lifecycle = L1Lifecycle::default();
        let map = L1Map::with(
            (config.max_bytes / 512).max(16) as usize,
            config.max_bytes,
            L1Weighter,
            quick_cache::DefaultHashBuilder::default(),
            lifecycle.clone(),
        );
        Self {
            map,
            lifecycle,
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            link_up: AtomicBool::new(false),
            clock: Clock::system(),
            config,
            counters: TierCounters::default(),
            hasher: quick_cache::DefaultHashBuilder::default(),
        }
    }

    fn stripe_of(&self, key: &str) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(key) as usize) & (STRIPES - 1)
    }

    /// Whether L1 may be used for namespace `ns` right now.
    #[inline]
    pub(crate) fn active_for(&self, ns: &str) -> bool {
        self.link_up.load(Ordering::Acquire) && !self.config.disabled.contains(ns)
    }

    /// Whether the tracking link is up.
    pub(crate) fn link_up(&self) -> bool {
        self.link_up.load(Ordering::Acquire)
    }

    /// A live entry for `key`, counting the hit or miss.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<L1Entry>> {
        if let Some(e) = self.map.get(key)
            && e.epoch == self.epoch.load(Ordering::Acquire)
            && e.expires_at > self.clock.now_ms()
        {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Some(e);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Time left before the key expires in Redis, as known when the entry was filled.
    pub(crate) fn remaining(&self, e: &L1Entry) -> Option<Duration> {
        e.key_deadline
            .map(|d| Duration::from_millis(d.saturating_sub(self.clock.now_ms())))
    }

    /// Takes a ticket before reading `key` from Redis.
    #[inline]
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        let stripe = self.stripe_of(key);
        Ticket {
            stripe,
            // Epoch first: a flush bumps the epoch after clearing; reading it first means
            // a flush that completes during the read is always seen.
            epoch: self.epoch.load(Ordering::SeqCst),
            version: self.stripes[stripe].load(Ordering::SeqCst),
        }
    }

    fn ticket_current(&self, t: &Ticket) -> bool {
        self.link_up.load(Ordering::SeqCst)
            && self.epoch.load(Ordering::SeqCst) == t.epoch
            && self.stripes[t.stripe].load(Ordering::SeqCst) == t.version
    }

    /// Inserts what a read returned, if no invalidation of the key was handled since the
    /// ticket was taken. `ttl` is the key's remaining TTL in Redis, if any.
    pub(crate) fn insert(
        &self,
        key: &str,
        ticket: Ticket,
        bytes: Bytes,
        decoded: Option<Arc<dyn Any + Send + Sync>>,
        ttl: Option<Duration>,
    ) {
        if !self.ticket_current(&ticket) {
            return;
        }
        let life = ttl.map_or(self.config.ttl_cap, |t| t.min(self.config.ttl_cap));
        let now = self.clock.now_ms();
        let expires_at = now + life.as_millis().max(1) as u64;
        let key_deadline = ttl.map(|t| now + t.as_millis() as u64);
        let mut state = L1Insert {
            inserting: std::hash::BuildHasher::hash_one(&self.lifecycle.hasher, key),
        };
        self.map.insert_with_lifecycle(
            key.to_owned(),
            Arc::new(L1Entry {
                bytes,
                decoded,
                expires_at,
                key_deadline,
                epoch: ticket.epoch,
            }),
            &mut state,
        );
        // Insert, then re-check: an invalidation that bumped the stripe after our first
        // check may have run its removal before our insert.
        if !self.ticket_current(&ticket) {
            self.map.remove(key);
        }
    }

    /// Invalidates one key (a write through this instance, or a push from Redis).
    pub(crate) fn invalidate(&self, key: &str) {
        let stripe = self.stripe_of(key);
        self.stripes[stripe].fetch_add(1, Ordering::SeqCst);
        self.map.remove(key);
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops everything (flush of the database, lost link, pattern delete).
    pub(crate) fn flush(&self) {
        self.map.clear();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_link(&self, up: bool) {
        if !up {
            // Down: stop serving first, then drop what may now be stale.
            self.link_up.store(false, Ordering::SeqCst);
            self.flush();
        } else {
            // Up: anything cached before is suspect; start empty.
            self.flush();
            self.link_up.store(true, Ordering::SeqCst);
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub(crate) fn weight(&self) -> u64 {
        self.map.weight()
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.lifecycle.evictions.load(Ordering::Relaxed)
    }
}

/// Keeps the tracking connections (one per master: one on standalone and Sentinel, one
/// per shard on a cluster): connects with RESP3, enables BCAST tracking, applies
/// invalidation pushes, checks every node (PING; on Cluster and Sentinel `ROLE`, which
/// must still say `master`) and the master set itself, and on any loss or change flushes
/// L1 and starts over.
pub(crate) async fn run_tracking(
    tier: std::sync::Weak<Tier>,
    link: Arc<Link>,
    prefix: Option<String>,
    connect_timeout: Duration,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(t) = tier.upgrade() else { return };
        let probe = t.config.probe_interval;
        drop(t);
        match track_once(&tier, &link, prefix.as_deref(), connect_timeout, probe).await {
            Ok(()) => return, // the tier was dropped
            Err(e) => {
                link.recheck();
                if let Some(t) = tier.upgrade() {
                    if t.link_up() {
                        tracing::warn!(error = %e, "L1 invalidation link lost: L1 flushed and bypassed until it is back");
                        backoff = Duration::from_millis(50);
                    }
                    t.set_link(false);
                } else {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn with_resp3(url: &str) -> String {
    if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// One tracking connection to one node.
async fn open_tracking(
    url: &str,
    tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    prefix: Option<&str>,
    connect_timeout: Duration,
    probe: Duration,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(with_resp3(url)).map_err(|e| e.to_string())?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(probe.max(Duration::from_millis(100))))
        .set_push_sender(tx);
    let setup = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| e.to_string())?;
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("TRACKING").arg("ON").arg("BCAST");
        if let Some(p) = prefix {
            cmd.arg("PREFIX").arg(p);
        }
        cmd.query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("CLIENT TRACKING: {e}"))?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("sharecache-l1-tracking")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(conn)
    };
    tokio::time::timeout(connect_timeout + probe, setup)
        .await
        .map_err(|_| {
            format!(
                "tracking setup timed out on {}",
                crate::store::redis::url::redact_url(url)
            )
        })?
}

/// Whether a tracking connection's node is alive and, where `check_role`, still a master
/// (a node demoted to replica no longer sees the writes).
async fn alive(
    conn: &mut redis::aio::MultiplexedConnection,
    check_role: bool,
) -> Result<(), String> {
    if !check_role {
        return redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("ping failed: {e}"));
    }
    match crate::store::redis::link::node_role(conn).await {
        Ok(r) if r == "master" => Ok(()),
        Ok(r) => Err(format!("tracked node is now {r:?}, not master")),
        Err(e) => Err(format!("role check failed: {e}")),
    }
}

async fn track_once(
    tier: &std::sync::Weak<Tier>,
    link: &Link,
    prefix: Option<&str>,
    connect_timeout: Duration,
    probe: Duration,
) -> Result<(), String> {
    use redis::PushKind;
    let mut switches = link.switches();
    let urls = tokio::time::timeout(connect_timeout + probe, link.master_urls())
        .await
        .map_err(|_| "no master list within the connect timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut conns = Vec::with_capacity(urls.len());
    let check_role = link.checks_role();
    for url in &urls {
        let mut conn = open_tracking(url, tx.clone(), prefix, connect_timeout, probe).await?;
        // A master list a moment old may name a node demoted since: L1 comes up only on
        // nodes that are masters now.
        tokio::time::timeout(probe, alive(&mut conn, check_role))
            .await
            .map_err(|_| format!("tracked node unanswered within {probe:?}"))??;
        conns.push(conn);
    }
    drop(tx);
    match tier.upgrade() {
        Some(t) => t.set_link(true),
        None => return Ok(()),
    }
    tracing::info!(
        nodes = conns.len(),
        "L1 invalidation link up (RESP3 client tracking, BCAST)"
    );
    let mut ping = tokio::time::interval(probe);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            push = rx.recv() => {
                let Some(push) = push else { return Err("push channel closed".into()) };
                let Some(t) = tier.upgrade() else { return Ok(()) };
                match push.kind {
                    PushKind::Invalidate => apply_invalidation(&t, push.data),
                    PushKind::Disconnection => return Err("connection closed".into()),
                    _ => {}
                }
            }
            () = crate::store::redis::link::switched(&mut switches) => {
                return Err("the master changed (sentinel switch)".into());
            }
            _ = ping.tick() => {
                if tier.strong_count() == 0 {
                    return Ok(());
                }
                for conn in &mut conns {
                    match tokio::time::timeout(probe, alive(conn, check_role)).await {
                        Ok(r) => r?,
                        Err(_) => return Err(format!("tracked node unanswered within {probe:?}")),
                    }
                }
                // A different master list (as the cluster link's watcher last read it)
                // ends the link.
                if link.is_cluster() && link.master_urls().await.is_ok_and(|now| now != urls) {
                    return Err("cluster masters changed".into());
                }
            }
        }
    }
}

fn apply_invalidation(tier: &Tier, data: Vec<redis::Value>) {
    use redis::Value;
    for v in data {
        match v {
            // `invalidate nil`: the database was flushed (FLUSHALL/FLUSHDB).
            Value::Nil => tier.flush(),
            Value::Array(keys) | Value::Set(keys) => {
                for k in keys {
                    match k {
                        Value::BulkString(b) => tier.invalidate(&String::from_utf8_lossy(&b)),
                        Value::SimpleString(s) => tier.invalidate(&s),
                        _ => tier.flush(),
                    }
                }
            }
            // Anything we do not understand: be safe.
            _ => tier.flush(),
        }
    }
}
