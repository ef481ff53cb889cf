//! `Cache` and `Namespace`: the typed, namespaced API over a [`Store`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{Codec, Format};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{KeySpace, NamespaceName, validate_namespace};
use crate::load::RememberError;
use crate::store::{
    BackendState, Coord, Fallback, Kv, MemoryLimits, RedisOptions, Store, StoreStats,
};
use crate::tier::{LocalTier, Tier};

/// Longest TTL accepted: ten years.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default most keys in one batch call (`mget`, `mset`, `mdel`).
pub const DEFAULT_MAX_BATCH: usize = 10_000;

/// How long a value lives.
///
/// ```
/// use sharecache::Ttl;
/// let t = Ttl::secs(300);
/// assert_eq!(t.duration(), Some(std::time::Duration::from_secs(300)));
/// assert_eq!(Ttl::NEVER.duration(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ttl(Option<Duration>);

impl Ttl {
    /// No expiry: the value lives until deleted or evicted.
    pub const NEVER: Ttl = Ttl(None);

    /// Expires after `s` seconds.
    pub const fn secs(s: u64) -> Self {
        Ttl(Some(Duration::from_secs(s)))
    }

    /// Expires after `ms` milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Ttl(Some(Duration::from_millis(ms)))
    }

    /// The duration, or `None` for no expiry.
    pub const fn duration(self) -> Option<Duration> {
        self.0
    }

    /// Checks the TTL is within 1 ms..=[`MAX_TTL`]; `Ok(None)` for [`Ttl::NEVER`]. Every
    /// write checks it; callers that take a TTL from outside (the HTTP service) call it
    /// to answer with the same error.
    pub fn validate(self) -> Result<Option<Duration>> {
        match self.0 {
            Some(d) if d < Duration::from_millis(1) => Err(Error::new(
                ErrorKind::InvalidTtl,
                "invalid TTL: must be at least 1 ms (use Ttl::NEVER for no expiry)",
            )),
            Some(d) if d > MAX_TTL => Err(Error::new(
                ErrorKind::InvalidTtl,
                format!(
                    "invalid TTL: {}s is over the maximum of {}s",
                    d.as_secs(),
                    MAX_TTL.as_secs()
                ),
            )),
            other => Ok(other),
        }
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl(Some(d))
    }
}

/// Which store a cache runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BackendChoice {
    Memory,
    Redis(String),
}

/// Builds a [`Cache`]. Nothing connects until [`build`](CacheBuilder::build).
///
/// ```
/// # async fn demo() -> sharecache::Result<()> {
/// use sharecache::{Cache, Fallback, Ttl};
/// let cache = Cache::builder()
///     .memory()                      // or .redis("redis://127.0.0.1:6379")
///     .fallback(Fallback::Memory)
///     .build()
///     .await?;
/// let users = cache.namespace("user")?;
/// users.set("profile:42", &"Ada", Ttl::secs(1800)).await?;
/// assert_eq!(users.get::<String>("profile:42").await?.as_deref(), Some("Ada"));
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until .build().await"]
#[derive(Debug, Clone)]
pub struct CacheBuilder {
    backend: BackendChoice,
    fallback: Fallback,
    codec: Codec,
    memory: MemoryLimits,
    connect_timeout: Duration,
    command_timeout: Duration,
    probe_interval: Duration,
    key_prefix: Option<String>,
    max_batch: usize,
    local_tier: Option<LocalTier>,
    session_keys: Option<crate::session::SessionKeys>,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Memory,
            fallback: Fallback::Memory,
            codec: Codec::default(),
            memory: MemoryLimits::default(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_millis(250),
            key_prefix: None,
            max_batch: DEFAULT_MAX_BATCH,
            local_tier: None,
            session_keys: None,
        }
    }
}

impl CacheBuilder {
    /// Uses the embedded in-memory store (the default).
    pub fn memory(mut self) -> Self {
        self.backend = BackendChoice::Memory;
        self
    }

    /// Uses Redis at `url`:
    ///
    /// * `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS): one server;
    /// * `redis+cluster://[user:password@]host:port,host:port,...`: a Redis Cluster, from
    ///   seed nodes (the rest is discovered);
    /// * `redis+sentinel://[user:password@]host:26379,.../MASTER[/db]`: the master that
    ///   Sentinel names, followed across failovers (the sentinels' own credentials go in
    ///   `?sentinel_username=...&sentinel_password=...`).
    ///
    /// A malformed URL is a [`ErrorKind::Config`] error from [`build`](Self::build).
    /// `docs/deploy.md` describes each topology.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.backend = BackendChoice::Redis(url.into());
        self
    }

    /// Uses a Redis Cluster through its seed nodes (`host:port`); the other nodes are
    /// discovered. For credentials or TLS, use [`redis`](Self::redis) with a
    /// `redis+cluster://user:password@...` or `rediss+cluster://...` URL.
    ///
    /// ```no_run
    /// # async fn f() -> sharecache::Result<()> {
    /// let cache = sharecache::Cache::builder()
    ///     .cluster(["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cluster<I, S>(self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let hosts: Vec<String> = seeds.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self.redis(format!("redis+cluster://{}", hosts.join(",")))
    }

    /// Uses the master that the sentinels (`host:port`) name for `master`, following it
    /// across failovers. For credentials or TLS, use [`redis`](Self::redis) with a
    /// `redis+sentinel://` URL.
    ///
    /// ```no_run
    /// # async fn f() -> sharecache::Result<()> {
    /// let cache = sharecache::Cache::builder()
    ///     .sentinel(["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"], "cache")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn sentinel<I, S>(self, sentinels: I, master: &str) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let hosts: Vec<String> = sentinels
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        self.redis(format!("redis+sentinel://{}/{master}", hosts.join(",")))
    }

    /// Picks the backend from a URL: `memory://` or a Redis URL.
    pub fn url(self, url: &str) -> Self {
        if url == "memory://" || url == "memory" {
            self.memory()
        } else {
            self.redis(url)
        }
    }

    /// Reads the seeds' environment variables: `CACHE_TYPE=redis|memory`, `REDIS_URL`
    /// and `REDIS_KEY_PREFIX`. With `CACHE_TYPE` unset, `REDIS_URL` alone selects Redis.
    pub fn with_env(self) -> Result<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        self.with_vars(get("CACHE_TYPE"), get("REDIS_URL"), get("REDIS_KEY_PREFIX"))
    }

    fn with_vars(
        mut self,
        cache_type: Option<String>,
        redis_url: Option<String>,
        prefix: Option<String>,
    ) -> Result<Self> {
        self = match (cache_type.as_deref(), redis_url) {
            (Some("memory"), _) => self.memory(),
            (Some("redis") | None, Some(url)) => self.redis(url),
            (Some("redis"), None) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "CACHE_TYPE=redis needs REDIS_URL, e.g. redis://127.0.0.1:6379",
                ));
            }
            (None, None) => self,
            (Some(other), _) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("CACHE_TYPE={other:?} is not known; use \"redis\" or \"memory\""),
                ));
            }
        };
        if let Some(p) = prefix {
            self = self.key_prefix(p);
        }
        Ok(self)
    }

    /// What to do while Redis is unreachable (default [`Fallback::Memory`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Serialization format for new values (default JSON). Values written in any known
    /// format are read regardless.
    pub fn format(mut self, format: Format) -> Self {
        self.codec.format = format;
        self
    }

    /// Values whose serialized size reaches this many bytes are LZ4-compressed (default 1 KiB).
    pub fn compress_threshold(mut self, bytes: usize) -> Self {
        self.codec.compress_threshold = bytes;
        self
    }

    /// Largest value accepted, serialized, before compression (default 8 MiB).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.codec.max_value_bytes = bytes;
        self
    }

    /// Limits of the embedded memory store, and of the memory fallback.
    pub fn memory_limits(mut self, limits: MemoryLimits) -> Self {
        self.memory = limits;
        self
    }

    /// How long connecting to Redis may take (default 2 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How long one Redis command may take before the call falls back (default 500 ms).
    pub fn command_timeout(mut self, t: Duration) -> Self {
        self.command_timeout = t;
        self
    }

    /// How often an unreachable Redis is probed for recovery (default 250 ms).
    pub fn probe_interval(mut self, t: Duration) -> Self {
        self.probe_interval = t;
        self
    }

    /// A prefix before every namespace (`prefix:ns:key`), for sharing one Redis database
    /// between several sharecache deployments. Same rules as a namespace name.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// Adds an in-process L1 tier over Redis, kept coherent across instances by Redis
    /// client tracking (see [`LocalTier`]). Ignored on the embedded memory store, which
    /// is in-process already.
    pub fn local_tier(mut self, tier: LocalTier) -> Self {
        self.local_tier = Some(tier);
        self
    }

    /// Keys that seal session data (32 bytes each, newest first; older keys still open
    /// existing sessions). Sessions are refused without them.
    pub fn session_keys(mut self, keys: crate::session::SessionKeys) -> Self {
        self.session_keys = Some(keys);
        self
    }

    /// Most keys one batch call may carry (default 10 000).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Builds the cache. With Redis, checks the connection once: if Redis is unreachable
    /// and the fallback is `Memory`, the cache starts degraded and recovers by itself;
    /// with `Fail`, the error is returned.
    pub async fn build(self) -> Result<Cache> {
        if self.command_timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.probe_interval.is_zero()
        {
            return Err(Error::new(
                ErrorKind::Config,
                "timeouts and the probe interval must be above zero",
            ));
        }
        if self.max_batch == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "max_batch must be at least 1",
            ));
        }
        let prefix = match &self.key_prefix {
            Some(p) => Some(NamespaceName::new(p).map_err(|e| {
                Error::new(ErrorKind::Config, format!("key prefix: {}", e.message()))
            })?),
            None => None,
        };
        let (store, link) = match &self.backend {
            BackendChoice::Memory => (Store::memory(self.memory)?, None),
            BackendChoice::Redis(url) => {
                let opts = RedisOptions {
                    connect_timeout: self.connect_timeout,
                    command_timeout: self.command_timeout,
                };
                let (store, link) =
                    Store::redis(url, opts, self.fallback, self.memory, self.probe_interval)
                        .await?;
                (store, Some(link))
            }
        };
        let tier = match (&link, self.local_tier) {
            (Some(link), Some(cfg)) => {
                let tier = Arc::new(Tier::new(cfg));
                let track_prefix = prefix.as_ref().map(|p| format!("{p}:"));
                tokio::spawn(crate::tier::run_tracking(
                    Arc::downgrade(&tier),
                    link.clone(),
                    track_prefix,
                    self.connect_timeout,
                ));
                Some(tier)
            }
            _ => None,
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                hub: crate::events::Hub::new(link),
                session_keys: self.session_keys,
                store,
                flights: crate::load::Flights::default(),
                tier,
                codec: self.codec,
                prefix,
                max_batch: self.max_batch,
                counters: Mutex::new(HashMap::new()),
            }),
        })
    }
}

struct Inner {
    hub: Arc<crate::events::Hub>,
    session_keys: Option<crate::session::SessionKeys>,
    store: Store,
    flights: crate::load::Flights,
    tier: Option<Arc<Tier>>,
    codec: Codec,
    prefix: Option<NamespaceName>,
    max_batch: usize,
    counters: Mutex<HashMap<NamespaceName, Arc<Counters>>>,
}

/// Per-namespace operation counters.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    decode_errors: AtomicU64,
    /// Reads answered by the L1 tier (a subset of hits).
    l1_hits: AtomicU64,
}

/// A shared, namespaced cache. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Starts a builder (embedded memory store, JSON, memory fallback).
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// A handle on namespace `name` (`[a-z0-9_-]{1,64}`); its keys are stored as `name:key`.
    pub fn namespace(&self, name: &str) -> Result<Namespace> {
        validate_namespace(name)?;
        let name = NamespaceName::new(name)?;
        let counters = self
            .inner
            .counters
            .lock()
            .entry(name.clone())
            .or_default()
            .clone();
        Ok(Namespace {
            space: KeySpace::new(self.inner.prefix.as_ref(), &name),
            name,
            counters,
            inner: self.inner.clone(),
        })
    }

    /// Round-trip latency to the backend (`Duration::ZERO` for memory).
    pub async fn ping(&self) -> Result<Duration> {
        self.inner.store.ping().await
    }

    /// Where calls go right now.
    pub fn state(&self) -> BackendState {
        self.inner.store.state()
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The codec values are written with.
    pub fn codec(&self) -> &Codec {
        &self.inner.codec
    }

    /// Figures of the L1 tier, if the cache has one.
    pub fn tier_stats(&self) -> Option<TierStats> {
        let t = self.inner.tier.as_deref()?;
        let c = &t.counters;
        Some(TierStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            entries: t.len(),
            bytes: t.weight(),
            evictions: t.evictions(),
            link_up: t.link_up(),
        })
    }

    /// Names of the namespaces opened on this cache so far.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .counters
            .lock()
            .keys()
            .map(|n| n.to_string())
            .collect();
        v.sort();
        v
    }
}

/// Statistics of one namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceStats {
    /// Namespace name.
    pub namespace: String,
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing (or a value that did not decode).
    pub misses: u64,
    /// Values written.
    pub sets: u64,
    /// Delete calls that removed at least one key.
    pub deletes: u64,
    /// Stored values that could not be decoded (counted as misses too).
    pub decode_errors: u64,
    /// Reads answered by the in-process L1 tier (part of `hits`).
    pub l1_hits: u64,
    /// Store-wide figures: keys, bytes, evictions and where calls go.
    pub store: StoreStats,
}

/// Figures of the L1 tier ([`Cache::tier_stats`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TierStats {
    /// Reads answered by L1.
    pub hits: u64,
    /// Reads L1 could not answer.
    pub misses: u64,
    /// Keys invalidated (by Redis pushes and by this instance's writes).
    pub invalidations: u64,
    /// Whole-tier flushes (database flush, lost link, pattern delete).
    pub flushes: u64,
    /// Entries held.
    pub entries: u64,
    /// Entries pushed out of L1 for space.
    pub evictions: u64,
    /// Bytes held (weighed).
    pub bytes: u64,
    /// Whether the invalidation link is up (L1 serves only then).
    pub link_up: bool,
}

/// What a namespace holds, from [`Namespace::usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Keys counted (at most the limit passed).
    pub keys: u64,
    /// The walk stopped at the limit: there are more keys.
    pub truncated: bool,
    /// Estimated bytes used by the namespace's keys.
    pub bytes: u64,
}

/// A page of keys from [`Namespace::keys`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct KeyPage {
    /// Keys, relative to the namespace.
    pub keys: Vec<String>,
    /// Pass this back to get the next page; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// One namespace of a [`Cache`]. Cheap to clone.
#[derive(Clone)]
pub struct Namespace {
    inner: Arc<Inner>,
    name: NamespaceName,
    space: KeySpace,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Key-value operations on stored keys.
    fn kv(&self) -> &dyn Kv {
        self.inner.store.kv()
    }

    /// Coordination operations (rate limits, locks, indexes, streams, queues, presence).
    fn coord(&self) -> &dyn Coord {
        self.inner.store.coord()
    }

    fn check_batch(&self, n: usize) -> Result<()> {
        if n > self.inner.max_batch {
            return Err(Error::new(
                ErrorKind::TooManyKeys,
                format!(
                    "{n} keys in one batch, over the limit of {}; split the batch",
                    self.inner.max_batch
                ),
            ));
        }
        Ok(())
    }

    fn decode_counted<T: DeserializeOwned>(&self, key: &str, stored: Option<Bytes>) -> Option<T> {
        let Some(bytes) = stored else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match self.inner.codec.decode(&bytes) {
            Ok(v) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            Err(e) => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                self.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(namespace = %self.name, key, error = %e, "stored value does not decode: counted as a miss");
                None
            }
        }
    }

    /// Reads `key`. A miss, or a stored value that does not decode as `T` (another format,
    /// version or type), is `Ok(None)` and counted as a miss.
    ///
    /// With a [`LocalTier`](crate::LocalTier), a hit in L1 returns a clone of the value
    /// decoded when it entered L1 (no parsing); a miss reads Redis and fills L1 (see
    /// `tier` for the coherence guarantees).
    pub async fn get<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let Some(tier) = self.tier() else {
            let full = self.space.key(key)?;
            let stored = self.kv().get(&full).await?;
            let stored = self.drop_stale(stored).await;
            return Ok(self.decode_counted(key, stored));
        };
        crate::key::validate_key(key)?;
        if let Some(e) = self.space.with_key(key, |full| tier.get(full)) {
            if !self.fresh(&e.bytes).await {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            self.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
            if let Some(v) = e.decoded.as_ref().and_then(|d| d.downcast_ref::<T>()) {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(v.clone()));
            }
            return Ok(self.decode_counted(key, Some(e.bytes.clone())));
        }
        let full = self.space.key(key)?;
        let ticket = tier.ticket(&full);
        let (stored, ttl) = self.kv().get_with_ttl(&full).await?;
        let Some(bytes) = self.drop_stale(stored).await else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        match self.inner.codec.decode::<T>(&bytes) {
            Ok(v) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                if self.inner.store.state() == BackendState::Connected {
                    tier.insert(&full, ticket, bytes, Some(Arc::new(v.clone())), ttl);
                }
                Ok(Some(v))
            }
            Err(_) => Ok(self.decode_counted(key, Some(bytes))),
        }
    }

    /// Like [`get`](Self::get), but returns the value behind an `Arc`: an L1 hit then
    /// costs a reference count instead of a clone of `T` (use it for big values).
    pub async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let Some(tier) = self.tier() else {
            let full = self.space.key(key)?;
            let stored = self.kv().get(&full).await?;
            let stored = self.drop_stale(stored).await;
            return Ok(self.decode_counted::<T>(key, stored).map(Arc::new));
        };
        crate::key::validate_key(key)?;
        if let Some(e) = self.space.with_key(key, |full| tier.get(full)) {
            if !self.fresh(&e.bytes).await {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            self.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
            if let Some(v) = e.decoded.clone().and_then(|d| d.downcast::<T>().ok()) {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(v));
            }
            return Ok(self
                .decode_counted::<T>(key, Some(e.bytes.clone()))
                .map(Arc::new));
        }
        let full = self.space.key(key)?;
        let ticket = tier.ticket(&full);
        let (stored, ttl) = self.kv().get_with_ttl(&full).await?;
        let Some(bytes) = self.drop_stale(stored).await else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        match self.inner.codec.decode::<T>(&bytes) {
            Ok(v) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                let v = Arc::new(v);
                if self.inner.store.state() == BackendState::Connected {
                    tier.insert(&full, ticket, bytes, Some(v.clone()), ttl);
                }
                Ok(Some(v))
            }
            Err(_) => Ok(self.decode_counted::<T>(key, Some(bytes)).map(Arc::new)),
        }
    }

    /// Returns the value of `key`, or runs `loader`, stores its value with `ttl` and
    /// returns it.
    ///
    /// **Single-flight**: concurrent misses of one key in this process run `loader` once;
    /// the other callers wait for that load and get its value (or its error). If the
    /// caller running the loader is cancelled, a waiting caller runs its own loader, so
    /// nobody waits forever. Loader errors are not cached.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use sharecache::{Cache, Ttl};
    /// let users = Cache::builder().memory().build().await?.namespace("user")?;
    /// let name: String = users
    ///     .remember("name:42", Ttl::secs(300), || async { Ok::<_, std::io::Error>("Ada".to_string()) })
    ///     .await?;
    /// assert_eq!(name, "Ada");
    /// # Ok(()) }
    /// ```
    pub async fn remember<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        loader: F,
    ) -> std::result::Result<T, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        self.remember_with(key, ttl, &RememberOptions::default(), loader)
            .await
    }

    /// [`remember`](Self::remember) with options. With
    /// [`RememberOptions::lease`], concurrent misses of one key on *all instances* cost one
    /// load: the instance that takes the key's lease (a short-lived Redis key) loads, the
    /// others poll for the value; if the loading instance dies or its loader outlives the
    /// lease, the lease expires and a waiting instance takes it over.
    pub async fn remember_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        opts: &RememberOptions,
        loader: F,
    ) -> std::result::Result<T, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        let opts = RememberOptions {
            negative_ttl: None,
            ..opts.clone()
        };
        match self
            .remember_core(key, ttl, &opts, || async { loader().await.map(Some) })
            .await?
        {
            Some(v) => Ok(v),
            // Only a concurrent `remember_optional` of the same key can produce this.
            None => Err(RememberError::Cache(Error::new(
                ErrorKind::Decode,
                "remember: the key is cached as absent by remember_optional",
            ))),
        }
    }

    /// Like [`remember_with`](Self::remember_with) for a loader that may find nothing
    /// (`Ok(None)`). With [`RememberOptions::negative_ttl`], that absence is cached too:
    /// later calls within the TTL return `None` without loading (a plain `get` sees a
    /// miss). Without it, absence is not cached.
    pub async fn remember_optional<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        opts: &RememberOptions,
        loader: F,
    ) -> std::result::Result<Option<T>, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Option<T>, E>>,
    {
        self.remember_core(key, ttl, opts, loader).await
    }

    /// Stores a computed value with how long it took (for early refresh).
    async fn set_computed<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Ttl,
        delta_ms: u32,
    ) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let bytes = crate::codec::with_delta(&self.inner.codec.encode(value)?, delta_ms);
        self.tiered_write(&[&full], self.kv().set(&full, bytes, ttl))
            .await?;
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// XFetch: refresh now if `remaining <= -delta * beta * ln(u)`, u uniform in (0, 1].
    async fn refresh_early(&self, key: &str, beta: f64) -> bool {
        let Ok(full) = self.space.key(key) else {
            return false;
        };
        let meta = match self
            .tier()
            .and_then(|t| t.get(&full).map(|e| (t.remaining(&e), e.bytes.clone())))
        {
            Some((remaining, bytes)) => remaining.map(|r| (r, bytes)),
            None => match self.kv().get_with_ttl(&full).await {
                Ok((Some(bytes), Some(ttl))) => Some((ttl, bytes)),
                _ => None,
            },
        };
        let Some((remaining, bytes)) = meta else {
            return false;
        };
        let Some(delta) = crate::codec::delta_of(&bytes) else {
            return false;
        };
        let u = ((new_version() >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        let threshold_ms = -(f64::from(delta.max(1))) * beta * u.ln();
        (remaining.as_millis() as f64) <= threshold_ms
    }

    /// One rate-limit decision for `key` (GCRA, see [`crate::ratelimit`]): allowed or not,
    /// what remains, and when to retry. Exact across instances on Redis (one atomic
    /// script on the server's clock). While Redis is down it is decided by the local
    /// memory fallback (or fails with `Unavailable` under `Fallback::Fail`); it never
    /// refuses a call it did not count against a limit.
    ///
    /// ```
    /// # async fn demo() -> sharecache::Result<()> {
    /// use sharecache::{Cache, ratelimit::Limit};
    /// use std::time::Duration;
    /// let auth = Cache::builder().memory().build().await?.namespace("auth")?;
    /// // Five login attempts per email per 15 minutes.
    /// let d = auth.rate_limit("attempts:ada@example.com", Limit::per(5, Duration::from_secs(900))).await?;
    /// assert!(d.allowed && d.remaining == 4);
    /// # Ok(()) }
    /// ```
    pub async fn rate_limit(
        &self,
        key: &str,
        limit: crate::ratelimit::Limit,
    ) -> Result<crate::ratelimit::Decision> {
        crate::key::validate_key(key)?;
        limit.validate()?;
        self.coord()
            .rate_limit(&self.space.aux_key("rl", key), &limit)
            .await
    }

    /// Tries to take lock `name` for `ttl`, waiting up to `wait` (zero: try once).
    /// Returns the lease (token and fence), or `None` if it stayed held by someone else.
    pub async fn lock_acquire(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<crate::lock::LockLease>> {
        crate::key::validate_key(name)?;
        crate::lock::check_ttl(ttl)?;
        crate::lock::check_wait(wait)?;
        let (key, fence_key) = (
            self.space.aux_key_slot("lock", name),
            self.space.aux_key_slot("fence", name),
        );
        let (key, fence_key) = (&key, &fence_key);
        poll_until(wait, Duration::from_millis(50), || async move {
            let token = crate::lock::new_token();
            let fence = self
                .coord()
                .lock_acquire(key, fence_key, crate::lock::token_bytes(&token), ttl)
                .await?;
            Ok(fence.map(|fence| crate::lock::LockLease { token, fence }))
        })
        .await
    }

    /// Releases lock `name` if `token` holds it; returns whether it did.
    pub async fn lock_release(&self, name: &str, token: &str) -> Result<bool> {
        crate::key::validate_key(name)?;
        self.kv()
            .del_if_eq(
                &self.space.aux_key_slot("lock", name),
                crate::lock::token_bytes(token),
            )
            .await
    }

    /// Sets a new TTL on lock `name` if `token` holds it; returns whether it did.
    pub async fn lock_extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        crate::key::validate_key(name)?;
        crate::lock::check_ttl(ttl)?;
        self.coord()
            .lock_extend(
                &self.space.aux_key_slot("lock", name),
                crate::lock::token_bytes(token),
                ttl,
            )
            .await
    }

    /// Takes lock `name` (waiting up to `wait`) and keeps it: a background task extends
    /// it every `ttl / 3` until the guard is released or dropped, and the guard reports
    /// when an extension fails ([`LockGuard::lost`](crate::lock::LockGuard::lost)).
    pub async fn lock(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<crate::lock::LockGuard>> {
        let Some(lease) = self.lock_acquire(name, ttl, wait).await? else {
            return Ok(None);
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        let keeper =
            crate::lock::spawn_keeper(self.clone(), name.to_owned(), lease.token.clone(), ttl, tx);
        Ok(Some(crate::lock::LockGuard {
            ns: self.clone(),
            name: name.to_owned(),
            lease,
            lost: rx,
            keeper: Some(keeper),
        }))
    }

    /// Presence: marks `member` of presence set `set` alive for `ttl` (a heartbeat).
    /// Members that stop beating vanish when their TTL passes; no sweeper is involved.
    pub async fn presence_beat(&self, set: &str, member: &str, ttl: Duration) -> Result<()> {
        crate::key::validate_key(set)?;
        crate::key::validate_key(member)?;
        if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
            return Err(Error::new(
                ErrorKind::InvalidTtl,
                "presence ttl must be between 1 ms and ten years",
            ));
        }
        self.coord()
            .presence_beat(&self.space.aux_key("presence", set), member, ttl)
            .await
    }

    /// Presence: `member` leaves `set` now; returns whether it was online.
    pub async fn presence_leave(&self, set: &str, member: &str) -> Result<bool> {
        crate::key::validate_key(set)?;
        crate::key::validate_key(member)?;
        self.coord()
            .presence_leave(&self.space.aux_key("presence", set), member)
            .await
    }

    /// Presence: who is online in `set`, with the time each has left, soonest first.
    pub async fn presence_list(&self, set: &str) -> Result<Vec<(String, Duration)>> {
        crate::key::validate_key(set)?;
        self.coord()
            .presence_list(&self.space.aux_key("presence", set))
            .await
    }

    /// Publishes `event` (as JSON) on `channel` of this namespace; returns how many
    /// receivers got it (on Redis: subscribed processes; in memory: subscriptions). At
    /// most once: see [`crate::events`]. While Redis is down, only this process's
    /// subscribers receive it.
    pub async fn publish<T: Serialize + ?Sized>(&self, channel: &str, event: &T) -> Result<u64> {
        crate::key::validate_key(channel)?;
        self.publish_json(channel, json_bytes(event)?).await
    }

    /// Publishes an already-validated JSON document (for the HTTP service).
    pub async fn publish_json(&self, channel: &str, json: Bytes) -> Result<u64> {
        crate::key::validate_key(channel)?;
        self.check_payload(&json, "event")?;
        let full = self.space.aux_key("ev", channel);
        let hub = &self.inner.hub;
        if !hub.is_redis() {
            return Ok(hub.deliver_local(&full, json));
        }
        match self.coord().publish(&full, json.clone()).await {
            Ok(n) => Ok(n),
            Err(e) if e.is_unavailable() => Ok(hub.deliver_local(&full, json)),
            Err(e) => Err(e),
        }
    }

    /// Publishes durably: the event is also kept (the last 10 000 per channel) in a
    /// stream, so a subscriber that was away can replay what it missed with
    /// [`events_since`](Self::events_since). Returns the event's id. Fails with
    /// `Unavailable` while Redis is down (nothing durable can be promised then).
    pub async fn publish_durable_json(&self, channel: &str, json: Bytes) -> Result<(String, u64)> {
        crate::key::validate_key(channel)?;
        self.check_payload(&json, "event")?;
        let id = self
            .coord()
            .stream_add(&self.space.aux_key("evs", channel), json.clone(), 10_000)
            .await?;
        let receivers = self.publish_json(channel, json).await?;
        Ok((id, receivers))
    }

    /// Durable events of `channel` after `after` (an id from `publish_durable_json` or a
    /// previous call; `None`: the oldest kept), at most `count`, oldest first.
    pub async fn events_since(
        &self,
        channel: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>> {
        crate::key::validate_key(channel)?;
        if let Some(a) = after
            && crate::store::memory::parse_stream_id(a).is_none()
        {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "event ids look like 1700000000000-0",
            ));
        }
        self.coord()
            .stream_range(
                &self.space.aux_key("evs", channel),
                after,
                count.clamp(1, 1000),
            )
            .await
    }

    /// Subscribes to `channel` of this namespace. Dropping the subscription
    /// unsubscribes. Resubscribed by itself after a reconnect.
    pub async fn subscribe(&self, channel: &str) -> Result<crate::events::Subscription> {
        crate::key::validate_key(channel)?;
        Ok(self
            .inner
            .hub
            .subscribe(&self.space.aux_key("ev", channel))
            .await)
    }

    /// Appends `message` (as JSON) to `queue`; returns its id. See [`crate::queue`].
    pub async fn queue_push<T: Serialize + ?Sized>(
        &self,
        queue: &str,
        message: &T,
    ) -> Result<String> {
        self.queue_push_json(queue, json_bytes(message)?).await
    }

    /// Appends an already-validated JSON document (for the HTTP service).
    pub async fn queue_push_json(&self, queue: &str, json: Bytes) -> Result<String> {
        crate::key::validate_key(queue)?;
        self.check_payload(&json, "message")?;
        self.coord()
            .queue_push(&self.space.aux_key_slot("q", queue), json)
            .await
    }

    /// Claims up to `count` messages of `queue` for `consumer`, waiting up to `wait` for
    /// one to be available (polling; zero: look once). Redelivers messages left
    /// unacknowledged past `opts.visibility` and dead-letters those delivered
    /// `opts.max_deliveries` times.
    pub async fn queue_claim(
        &self,
        queue: &str,
        consumer: &str,
        count: usize,
        wait: Duration,
        opts: &crate::queue::ClaimOptions,
    ) -> Result<Vec<crate::queue::QueueMessage>> {
        crate::key::validate_key(queue)?;
        crate::key::validate_key(consumer)?;
        opts.validate(count)?;
        crate::lock::check_wait(wait)?;
        let (key, dlq) = (
            self.space.aux_key_slot("q", queue),
            self.space.aux_key_slot("qdl", queue),
        );
        let (key, dlq) = (&key, &dlq);
        let got = poll_until(wait, Duration::from_millis(100), || async move {
            let got = self
                .coord()
                .queue_claim(key, dlq, consumer, count, opts)
                .await?;
            Ok((!got.is_empty()).then_some(got))
        })
        .await?;
        Ok(got.unwrap_or_default())
    }

    /// Acknowledges messages of `queue`: they are done and will not be redelivered.
    /// Returns how many were pending.
    pub async fn queue_ack(&self, queue: &str, ids: &[String]) -> Result<u64> {
        crate::key::validate_key(queue)?;
        self.check_batch(ids.len())?;
        if ids.iter().any(|id| {
            id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        }) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "message ids look like 1700000000000-0",
            ));
        }
        self.coord()
            .queue_ack(&self.space.aux_key_slot("q", queue), ids)
            .await
    }

    /// The first `count` dead-lettered messages of `queue` (delivered too often without
    /// an acknowledgement).
    pub async fn queue_dead_letters(
        &self,
        queue: &str,
        count: usize,
    ) -> Result<Vec<crate::queue::QueueMessage>> {
        crate::key::validate_key(queue)?;
        let count = count.clamp(1, crate::queue::MAX_CLAIM);
        self.coord()
            .queue_dead(
                &self.space.aux_key_slot("q", queue),
                &self.space.aux_key_slot("qdl", queue),
                count,
            )
            .await
    }

    /// Refuses an event or message payload over the value size limit.
    fn check_payload(&self, json: &Bytes, what: &str) -> Result<()> {
        if json.len() > self.inner.codec.max_value_bytes {
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                format!("{what} is over the value size limit"),
            ));
        }
        Ok(())
    }

    fn session_keys(&self) -> Result<&crate::session::SessionKeys> {
        self.inner.session_keys.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "sessions need keys: CacheBuilder::session_keys (service: [sessions] keys)",
            )
        })
    }

    /// Creates a session holding `data`, ending after `idle` without use or `absolute`
    /// after creation, whichever comes first. See [`crate::session`] for the guarantees.
    pub async fn session_create(
        &self,
        data: serde_json::Value,
        idle: Duration,
        absolute: Duration,
    ) -> Result<crate::session::NewSession> {
        use crate::session as s;
        let keys = self.session_keys()?;
        s::check_ttls(idle, absolute)?;
        let now = s::now_ms();
        let record = s::Record {
            data,
            created_ms: now,
            idle_ms: idle.as_millis() as u64,
            absolute_ms: absolute.as_millis() as u64,
        };
        let id = s::new_id();
        let key = self
            .space
            .aux_key("sess", &s::slot(&id).expect("fresh ids are well formed"));
        let sealed = s::seal_record(keys, &key, &record)?;
        let ttl = s::store_ttl(&record, now).expect("a new session has time left");
        self.kv().set(&key, sealed, Some(ttl)).await?;
        Ok(s::NewSession {
            id,
            expires_at_ms: now + ttl.as_millis() as u64,
        })
    }

    /// Like [`session_create`](Self::session_create), and records the session under
    /// `user`, so that [`session_list`](Self::session_list) and
    /// [`session_end_all`](Self::session_end_all) can find it.
    pub async fn session_create_for(
        &self,
        user: &str,
        data: serde_json::Value,
        idle: Duration,
        absolute: Duration,
    ) -> Result<crate::session::NewSession> {
        crate::key::validate_key(user)?;
        let new = self.session_create(data, idle, absolute).await?;
        let slot = crate::session::slot(&new.id).expect("fresh ids are well formed");
        self.coord()
            .index_add(&self.space.aux_key("sessu", user), &slot, absolute)
            .await?;
        Ok(new)
    }

    /// The live sessions of `user`. Each carries a `handle` (not the id, which is never
    /// stored) and its times. Ended or expired sessions are pruned from the index.
    pub async fn session_list(&self, user: &str) -> Result<Vec<crate::session::SessionInfo>> {
        use crate::session as s;
        crate::key::validate_key(user)?;
        let keys = self.session_keys()?;
        let index = self.space.aux_key("sessu", user);
        let now = s::now_ms();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for slot in self.coord().index_members(&index).await? {
            let key = self.space.aux_key("sess", &slot);
            let record = match self.kv().get_with_ttl(&key).await? {
                (Some(sealed), ttl) => s::open_record(keys, &key, &sealed)
                    .filter(|r| !s::expired(r, now))
                    .map(|r| (r, ttl)),
                _ => None,
            };
            match record {
                Some((r, ttl)) => out.push(s::SessionInfo {
                    handle: slot[..16].to_owned(),
                    created_ms: r.created_ms,
                    expires_at_ms: now + ttl.map_or(0, |t| t.as_millis() as u64),
                }),
                None => gone.push(slot),
            }
        }
        self.coord().index_remove(&index, &gone).await?;
        out.sort_by_key(|i| i.created_ms);
        Ok(out)
    }

    /// Ends every session of `user` (after a password change, say); returns how many
    /// were live.
    pub async fn session_end_all(&self, user: &str) -> Result<u64> {
        crate::key::validate_key(user)?;
        self.session_keys()?;
        let index = self.space.aux_key("sessu", user);
        let slots = self.coord().index_members(&index).await?;
        let keys: Vec<String> = slots
            .iter()
            .map(|s| self.space.aux_key("sess", s))
            .collect();
        let ended = if keys.is_empty() {
            0
        } else {
            self.kv().del(&keys).await?
        };
        self.coord().index_remove(&index, &slots).await?;
        Ok(ended)
    }

    async fn session_load(&self, id: &str) -> Result<Option<(String, crate::session::Record)>> {
        use crate::session as s;
        let keys = self.session_keys()?;
        let Some(slot) = s::slot(id) else {
            return Ok(None);
        };
        let key = self.space.aux_key("sess", &slot);
        let Some(sealed) = self.kv().get(&key).await? else {
            return Ok(None);
        };
        let Some(record) = s::open_record(keys, &key, &sealed) else {
            tracing::warn!(namespace = %self.name, "a session did not open (tampered, or sealed with an unknown key)");
            return Ok(None);
        };
        if s::expired(&record, s::now_ms()) {
            self.kv().del(std::slice::from_ref(&key)).await?;
            return Ok(None);
        }
        Ok(Some((key, record)))
    }

    /// Reads a session and renews its idle timeout. `None` for an unknown, expired,
    /// malformed or tampered id.
    pub async fn session_get(&self, id: &str) -> Result<Option<crate::session::SessionData>> {
        use crate::session as s;
        let Some((key, record)) = self.session_load(id).await? else {
            return Ok(None);
        };
        let now = s::now_ms();
        let Some(ttl) = s::store_ttl(&record, now) else {
            return Ok(None);
        };
        // Renew: re-seal (fresh nonce) with the idle TTL, capped by the absolute one.
        let sealed = s::seal_record(self.session_keys()?, &key, &record)?;
        self.kv().set(&key, sealed, Some(ttl)).await?;
        Ok(Some(s::SessionData {
            data: record.data,
            created_ms: record.created_ms,
            expires_at_ms: now + ttl.as_millis() as u64,
        }))
    }

    /// Replaces a session's data (and renews it); `false` if there is no such session.
    pub async fn session_update(&self, id: &str, data: serde_json::Value) -> Result<bool> {
        use crate::session as s;
        let Some((key, mut record)) = self.session_load(id).await? else {
            return Ok(false);
        };
        record.data = data;
        let Some(ttl) = s::store_ttl(&record, s::now_ms()) else {
            return Ok(false);
        };
        let sealed = s::seal_record(self.session_keys()?, &key, &record)?;
        self.kv().set(&key, sealed, Some(ttl)).await?;
        Ok(true)
    }

    /// Ends a session now; `false` if there was none.
    pub async fn session_end(&self, id: &str) -> Result<bool> {
        self.session_keys()?;
        let Some(slot) = crate::session::slot(id) else {
            return Ok(false);
        };
        Ok(self.kv().del(&[self.space.aux_key("sess", &slot)]).await? > 0)
    }

    /// Gives a session a new id (after a login or a privilege change): the same data and
    /// deadlines under a fresh id; the old id is dead at once. `None` if there was none.
    pub async fn session_rotate(&self, id: &str) -> Result<Option<crate::session::NewSession>> {
        use crate::session as s;
        let Some((old_key, record)) = self.session_load(id).await? else {
            return Ok(None);
        };
        let now = s::now_ms();
        let Some(ttl) = s::store_ttl(&record, now) else {
            return Ok(None);
        };
        let new_id = s::new_id();
        let key = self.space.aux_key(
            "sess",
            &s::slot(&new_id).expect("fresh ids are well formed"),
        );
        let sealed = s::seal_record(self.session_keys()?, &key, &record)?;
        self.kv().set(&key, sealed, Some(ttl)).await?;
        self.kv().del(&[old_key]).await?;
        Ok(Some(s::NewSession {
            id: new_id,
            expires_at_ms: now + ttl.as_millis() as u64,
        }))
    }

    /// Value, cached absence, or nothing, for `remember`.
    async fn lookup<T>(&self, key: &str, negatives: bool) -> Result<Lookup<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if let Some(v) = self.get::<T>(key).await? {
            return Ok(Lookup::Found(v));
        }
        if negatives {
            let full = self.space.key(key)?;
            if let Some(raw) = self.kv().get(&full).await?
                && crate::codec::is_negative(&raw)
            {
                return Ok(Lookup::Absent);
            }
        }
        Ok(Lookup::Missing)
    }

    async fn remember_core<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        opts: &RememberOptions,
        loader: F,
    ) -> std::result::Result<Option<T>, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Option<T>, E>>,
    {
        type Erased = Arc<dyn std::any::Any + Send + Sync>;
        let negatives = opts.negative_ttl.is_some();
        let mut refresh = false;
        let mut current: Option<T> = None;
        match self.lookup::<T>(key, negatives).await? {
            Lookup::Found(v) => match opts.early_refresh {
                Some(beta) if self.refresh_early(key, beta).await => {
                    refresh = true;
                    current = Some(v);
                }
                _ => return Ok(Some(v)),
            },
            Lookup::Absent => return Ok(None),
            Lookup::Missing => {}
        }
        ttl.validate()?;
        let negative_ttl = opts.negative_ttl.map(Ttl::validate).transpose()?.flatten();
        let full = self.space.key(key)?;
        let flight = self.inner.flights.join(&full);
        let outcome = flight
            .get_or_init(|| async {
                let found = |v: Option<T>| Ok(Arc::new(v) as Erased);
                let cache_err = |e: Error| Err(Arc::new(RememberError::<E>::Cache(e)) as Erased);
                // A flight that just landed may have stored the value: look once more
                // (unless this flight is an early refresh of a value we already have).
                let lease = match opts.lease {
                    None if refresh => None,
                    // An early refresh takes the lease if it is free; if another instance
                    // holds it, that instance is refreshing: keep the current value.
                    Some(d) if refresh => {
                        let token = Bytes::from(new_version().to_string());
                        match self.kv().set_nx(&self.space.lease_key(key), token.clone(), d).await {
                            Ok(true) => Some(token),
                            Ok(false) => return found(current.clone()),
                            Err(e) => return cache_err(e),
                        }
                    }
                    None => match self.lookup::<T>(key, negatives).await {
                        Ok(Lookup::Found(v)) => return found(Some(v)),
                        Ok(Lookup::Absent) => return found(None),
                        Ok(Lookup::Missing) => None,
                        Err(e) => return cache_err(e),
                    },
                    Some(d) => match self.take_lease::<T>(key, d).await {
                        Ok(Lease::Loaded(v)) => return found(Some(v)),
                        Ok(Lease::Held(token)) => Some(token),
                        Ok(Lease::Unleased) => None,
                        Err(e) => return cache_err(e),
                    },
                };
                let started = std::time::Instant::now();
                let out = match loader().await {
                    Ok(Some(v)) => {
                        let delta = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
                        if let Err(e) = self.set_computed(key, &v, ttl, delta).await {
                            tracing::warn!(namespace = %self.name, key, error = %e, "remember: the loaded value could not be stored");
                        }
                        found(Some(v))
                    }
                    Ok(None) => {
                        if let Some(nttl) = negative_ttl {
                            let stored = self.kv().set(&full, crate::codec::negative_marker(), Some(nttl));
                            if let Err(e) = self.tiered_write(&[&full], stored).await {
                                tracing::warn!(namespace = %self.name, key, error = %e, "remember: the absence could not be stored");
                            }
                        }
                        found(None)
                    }
                    Err(e) => Err(Arc::new(e) as Erased),
                };
                if let Some(token) = lease {
                    // Hand the key back at once (value stored, or loader failed: let
                    // another instance try without waiting for the lease to expire).
                    let _ = self.kv().del_if_eq(&self.space.lease_key(key), token).await;
                }
                out
            })
            .await
            .clone();
        self.inner.flights.land(&full, &flight);
        match outcome {
            Ok(v) => match v.downcast_ref::<Option<T>>() {
                Some(v) => Ok(v.clone()),
                None => Err(RememberError::Cache(Error::new(
                    ErrorKind::Decode,
                    "remember: concurrent callers of one key used different value types",
                ))),
            },
            Err(e) => {
                if let Ok(e) = e.clone().downcast::<E>() {
                    return Err(RememberError::Loader(e));
                }
                match e.downcast_ref::<RememberError<E>>() {
                    Some(RememberError::Cache(c)) => Err(RememberError::Cache(c.clone())),
                    _ => Err(RememberError::Cache(Error::new(
                        ErrorKind::Decode,
                        "remember: concurrent callers of one key used different error types",
                    ))),
                }
            }
        }
    }

    /// Writes `key` like [`set`](Self::set), tagged: [`invalidate_tags`](Self::invalidate_tags)
    /// of any of `tags` later makes it a miss, on every instance, whatever the number of
    /// keys carrying the tag (lazy versions: the value records each tag's version; a read
    /// compares them with the current ones).
    pub async fn set_tagged<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Ttl,
        tags: &[&str],
    ) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let tags = check_tags(tags)?;
        let encoded = self.inner.codec.encode(value)?;
        let bytes = self.tag_value(&encoded, &tags).await?;
        self.tiered_write(&[&full], self.kv().set(&full, bytes, ttl))
            .await?;
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// [`set_json`](Self::set_json) with tags (for the HTTP service).
    pub async fn set_json_tagged(
        &self,
        key: &str,
        json: &[u8],
        ttl: Ttl,
        tags: &[&str],
    ) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let tags = check_tags(tags)?;
        let encoded = self.inner.codec.encode_raw_json(json)?;
        let bytes = self.tag_value(&encoded, &tags).await?;
        self.tiered_write(&[&full], self.kv().set(&full, bytes, ttl))
            .await?;
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Invalidates every value of this namespace written with any of `tags`: one write
    /// per tag, whatever the number of tagged keys. Returns the number of tags.
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<usize> {
        let tags = check_tags(tags)?;
        let items: Vec<(String, Bytes)> = tags
            .iter()
            .map(|t| {
                (
                    self.space.tag_key(t),
                    Bytes::from(new_version().to_string()),
                )
            })
            .collect();
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        self.tiered_write(&keys, self.kv().mset(&items, None))
            .await?;
        Ok(tags.len())
    }

    /// Encodes the tags' current versions into a value, creating versions for new tags.
    async fn tag_value(&self, encoded: &Bytes, tags: &[&str]) -> Result<Bytes> {
        if tags.is_empty() {
            return Ok(encoded.clone());
        }
        let keys: Vec<String> = tags.iter().map(|t| self.space.tag_key(t)).collect();
        let inits: Vec<Bytes> = tags
            .iter()
            .map(|_| Bytes::from(new_version().to_string()))
            .collect();
        let current = self.kv().get_or_init(&keys, &inits).await?;
        let pairs: Vec<(&str, u64)> = tags
            .iter()
            .zip(&current)
            .map(|(t, v)| (*t, parse_version(v).unwrap_or(0)))
            .collect();
        Ok(crate::codec::with_tags(encoded, &pairs))
    }

    /// Whether a stored value's tags are all at the versions it was written with.
    /// Untagged values are always fresh (one flag test).
    async fn fresh(&self, stored: &[u8]) -> bool {
        if crate::codec::is_negative(stored) {
            return false; // a cached absence is never a value
        }
        let tags = match crate::codec::tags_of(stored) {
            Ok(None) => return true,
            Ok(Some(t)) => t,
            Err(_) => return false,
        };
        let keys: Vec<String> = tags.iter().map(|(t, _)| self.space.tag_key(t)).collect();
        let mut current: Vec<Option<u64>> = vec![None; keys.len()];
        let mut wanted = Vec::new();
        match self.tier() {
            Some(tier) => {
                for (i, k) in keys.iter().enumerate() {
                    match tier.get(k) {
                        Some(e) => current[i] = parse_version(&e.bytes),
                        None => wanted.push(i),
                    }
                }
            }
            None => wanted.extend(0..keys.len()),
        }
        if !wanted.is_empty() {
            let ask: Vec<String> = wanted.iter().map(|&i| keys[i].clone()).collect();
            let tickets: Vec<_> = self
                .tier()
                .map(|t| ask.iter().map(|k| t.ticket(k)).collect())
                .unwrap_or_default();
            let Ok(vals) = self.kv().mget(&ask).await else {
                return false;
            };
            for (j, (i, v)) in wanted.iter().zip(vals).enumerate() {
                if let Some(v) = v {
                    current[*i] = parse_version(&v);
                    if let (Some(t), Some(ticket)) = (self.tier(), tickets.get(j))
                        && self.inner.store.state() == BackendState::Connected
                    {
                        t.insert(&ask[j], *ticket, v, None, None);
                    }
                }
            }
        }
        tags.iter()
            .zip(current)
            .all(|((_, written), now)| now == Some(*written))
    }

    /// `None` for a value whose tags were invalidated since it was written.
    async fn drop_stale(&self, stored: Option<Bytes>) -> Option<Bytes> {
        match stored {
            Some(b) if self.fresh(&b).await => Some(b),
            _ => None,
        }
    }

    /// Takes the cross-instance load lease of `key`, or waits for the holder's value.
    async fn take_lease<T>(&self, key: &str, lease: Duration) -> Result<Lease<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let lease_key = self.space.lease_key(key);
        let poll = (lease / 20).clamp(Duration::from_millis(2), Duration::from_millis(25));
        // Bounded: after ten lease periods without a value or a lease, load anyway.
        let deadline = tokio::time::Instant::now() + lease * 10;
        loop {
            if let Some(v) = self.get::<T>(key).await? {
                return Ok(Lease::Loaded(v));
            }
            let token = Bytes::from(new_version().to_string());
            if self.kv().set_nx(&lease_key, token.clone(), lease).await? {
                // Taken: check once more (the holder may have stored and released
                // between our read and our lease).
                if let Some(v) = self.get::<T>(key).await? {
                    let _ = self.kv().del_if_eq(&lease_key, token).await;
                    return Ok(Lease::Loaded(v));
                }
                return Ok(Lease::Held(token));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Lease::Unleased);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The tier, if there is one and it may serve this namespace right now.
    #[inline]
    fn tier(&self) -> Option<&Tier> {
        self.inner
            .tier
            .as_deref()
            .filter(|t| t.active_for(self.name.as_str()))
    }

    /// Runs a write of `keys`, keeping L1 coherent for this instance: the keys' stripes
    /// are bumped before and after (so no read in flight caches an older value) and the
    /// keys leave L1, so the next read on this instance sees the write.
    async fn tiered_write<R>(
        &self,
        keys: &[&str],
        write: impl std::future::Future<Output = Result<R>>,
    ) -> Result<R> {
        let Some(tier) = self.inner.tier.as_deref() else {
            return write.await;
        };
        keys.iter().for_each(|k| tier.invalidate(k));
        let r = write.await;
        keys.iter().for_each(|k| tier.invalidate(k));
        r
    }

    /// Writes `key` with a TTL (use [`Ttl::NEVER`] for none).
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Ttl) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let bytes = self.inner.codec.encode(value)?;
        self.tiered_write(&[&full], self.kv().set(&full, bytes, ttl))
            .await?;
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn del(&self, key: &str) -> Result<bool> {
        let full = self.space.key(key)?;
        let n = self
            .tiered_write(&[&full], self.kv().del(std::slice::from_ref(&full)))
            .await?;
        if n > 0 {
            self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(n > 0)
    }

    /// Whether `key` holds a value.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let full = self.space.key(key)?;
        self.kv().exists(&full).await
    }

    /// Reads many keys; the result has one slot per key, in order, `None` for a miss.
    pub async fn mget<T: DeserializeOwned>(
        &self,
        keys: &[impl AsRef<str>],
    ) -> Result<Vec<Option<T>>> {
        let full = self.full_keys(keys)?;
        if full.is_empty() {
            return Ok(Vec::new());
        }
        let stored = match self.tier() {
            None => self.kv().mget(&full).await?,
            Some(tier) => {
                // Keys resident in L1 are answered from it; only the others go to Redis.
                // Misses are not inserted here: MGET does not say when a key expires (get
                // fills L1 with the key's TTL).
                let mut stored: Vec<Option<Bytes>> = full
                    .iter()
                    .map(|k| tier.get(k).map(|e| e.bytes.clone()))
                    .collect();
                let missing: Vec<usize> =
                    (0..stored.len()).filter(|&i| stored[i].is_none()).collect();
                self.counters
                    .l1_hits
                    .fetch_add((stored.len() - missing.len()) as u64, Ordering::Relaxed);
                if !missing.is_empty() {
                    let ask: Vec<String> = missing.iter().map(|&i| full[i].clone()).collect();
                    for (i, v) in missing.into_iter().zip(self.kv().mget(&ask).await?) {
                        stored[i] = v;
                    }
                }
                stored
            }
        };
        let mut out = Vec::with_capacity(stored.len());
        for (k, s) in keys.iter().zip(stored) {
            let s = self.drop_stale(s).await;
            out.push(self.decode_counted(k.as_ref(), s));
        }
        Ok(out)
    }

    /// Writes many keys with one TTL.
    pub async fn mset<K: AsRef<str>, T: Serialize>(
        &self,
        items: &[(K, T)],
        ttl: Ttl,
    ) -> Result<()> {
        self.check_batch(items.len())?;
        let ttl = ttl.validate()?;
        let mut encoded = Vec::with_capacity(items.len());
        for (k, v) in items {
            encoded.push((self.space.key(k.as_ref())?, self.inner.codec.encode(v)?));
        }
        self.mset_encoded(encoded, ttl).await
    }

    async fn mset_encoded(
        &self,
        encoded: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        if encoded.is_empty() {
            return Ok(());
        }
        let n = encoded.len() as u64;
        let keys: Vec<&str> = encoded.iter().map(|(k, _)| k.as_str()).collect();
        self.tiered_write(&keys, self.kv().mset(&encoded, ttl))
            .await?;
        self.counters.sets.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes many keys; returns how many existed.
    pub async fn mdel(&self, keys: &[impl AsRef<str>]) -> Result<u64> {
        let full = self.full_keys(keys)?;
        if full.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&str> = full.iter().map(String::as_str).collect();
        let n = self.tiered_write(&keys, self.kv().del(&full)).await?;
        self.counters.deletes.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    fn full_keys(&self, keys: &[impl AsRef<str>]) -> Result<Vec<String>> {
        self.check_batch(keys.len())?;
        keys.iter().map(|k| self.space.key(k.as_ref())).collect()
    }

    /// Deletes every key of this namespace (SCAN + UNLINK in batches; never FLUSHDB).
    /// Returns how many keys were deleted.
    pub async fn clear(&self) -> Result<u64> {
        let n = self.delete_matching_tiered(&self.space.all()).await?;
        self.counters.deletes.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Deletes every key of this namespace matching the glob `pattern` (relative to the
    /// namespace: `"session:*"`). The pattern can never reach outside the namespace.
    pub async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let full = self.space.pattern(pattern)?;
        let n = self.delete_matching_tiered(&full).await?;
        self.counters.deletes.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Pattern deletes reach L1 as a flush of this instance's L1 once Redis is done
    /// (other instances get one invalidation per deleted key from Redis).
    async fn delete_matching_tiered(&self, pattern: &str) -> Result<u64> {
        let r = self.kv().delete_matching(pattern).await;
        if let Some(t) = self.inner.tier.as_deref() {
            t.flush();
        }
        r
    }

    /// One page of this namespace's keys matching `pattern` (`"*"` for all).
    ///
    /// Start with `cursor = None` and pass back each returned cursor until it is `None`.
    /// Like Redis SCAN, a page may hold fewer than `count` keys (even none) before the end,
    /// and a key may appear twice if the keyspace changes during the walk.
    pub async fn keys(&self, pattern: &str, cursor: Option<&str>, count: usize) -> Result<KeyPage> {
        let full = self.space.pattern(pattern)?;
        if cursor.is_some_and(|c| c.is_empty() || c.len() > 2048) {
            return Err(Error::new(
                ErrorKind::InvalidCursor,
                "invalid cursor: pass back the cursor a listing returned",
            ));
        }
        let count = count.clamp(1, self.inner.max_batch);
        let page = self.kv().scan(&full, cursor, count).await?;
        Ok(KeyPage {
            keys: page
                .keys
                .iter()
                .filter_map(|k| self.space.strip(k).map(str::to_owned))
                .collect(),
            cursor: page.cursor,
        })
    }

    /// Counts this namespace's keys by walking a listing (stopping at `limit`) and
    /// estimates the bytes they use from the first 64 keys seen (Redis `MEMORY USAGE`;
    /// exact entry weights in memory). Costs one SCAN step per page: meant for stats
    /// pages, never for hot paths.
    pub async fn usage(&self, limit: u64) -> Result<Usage> {
        const SAMPLE: usize = 64;
        let mut keys = 0u64;
        let mut sample: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let truncated = loop {
            let page = self
                .kv()
                .scan(&self.space.all(), cursor.as_deref(), 1000)
                .await?;
            keys += page.keys.len() as u64;
            let room = SAMPLE.saturating_sub(sample.len());
            sample.extend(page.keys.into_iter().take(room));
            if keys >= limit {
                break true;
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break false,
            }
        };
        let sizes = self.kv().sizes(&sample).await?;
        let sampled: u64 = sizes.iter().sum();
        let bytes = if sample.is_empty() {
            0
        } else {
            sampled * keys / sample.len() as u64
        };
        Ok(Usage {
            keys: keys.min(limit),
            truncated,
            bytes,
        })
    }

    /// Counters of this namespace and the store's figures.
    pub async fn stats(&self) -> Result<NamespaceStats> {
        let c = &self.counters;
        Ok(NamespaceStats {
            namespace: self.name.to_string(),
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            sets: c.sets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            decode_errors: c.decode_errors.load(Ordering::Relaxed),
            l1_hits: c.l1_hits.load(Ordering::Relaxed),
            store: self.inner.store.stats().await?,
        })
    }

    /// Reads `key` as JSON text (for the HTTP service). Values written as MessagePack by
    /// library users are transcoded.
    pub async fn get_json(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.get_json_tiered(key).await?.map(|(json, _)| json))
    }

    /// [`get_json`](Self::get_json), also saying whether L1 answered.
    pub async fn get_json_tiered(&self, key: &str) -> Result<Option<(Bytes, bool)>> {
        let full = self.space.key(key)?;
        let (stored, from_l1) = match self.tier() {
            None => (self.kv().get(&full).await?, false),
            Some(tier) => match tier.get(&full) {
                Some(e) => {
                    self.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
                    (Some(e.bytes.clone()), true)
                }
                None => {
                    let ticket = tier.ticket(&full);
                    let (stored, ttl) = self.kv().get_with_ttl(&full).await?;
                    if let Some(b) = &stored
                        && self.inner.store.state() == BackendState::Connected
                        && self.inner.codec.decode_to_json(b).is_ok()
                    {
                        tier.insert(&full, ticket, b.clone(), None, ttl);
                    }
                    (stored, false)
                }
            },
        };
        let Some(stored) = self.drop_stale(stored).await else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        match self.inner.codec.decode_to_json(&stored) {
            Ok(json) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Some((json, from_l1)))
            }
            Err(_) => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                self.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Writes an already-validated JSON document (for the HTTP service).
    pub async fn set_json(&self, key: &str, json: &[u8], ttl: Ttl) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let bytes = self.inner.codec.encode_raw_json(json)?;
        self.tiered_write(&[&full], self.kv().set(&full, bytes, ttl))
            .await?;
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Options of [`Namespace::remember_with`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RememberOptions {
    lease: Option<Duration>,
    negative_ttl: Option<Ttl>,
    early_refresh: Option<f64>,
}

impl RememberOptions {
    /// Coordinates loads across instances with a lease of this length: it should exceed
    /// the loader's usual duration (a longer load lets a waiting instance take over).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease.max(Duration::from_millis(10)));
        self
    }
}

impl RememberOptions {
    /// Refreshes hot keys before they expire (XFetch, probabilistic early expiration):
    /// a hit recomputes the value with a probability that grows as the key nears its
    /// expiry, scaled by how long the last computation took and by `beta` (1.0 is the
    /// usual choice; higher refreshes earlier). Under steady load a hot key is reloaded by
    /// one caller before it expires instead of by everyone after.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = (beta.is_finite() && beta > 0.0).then_some(beta);
        self
    }

    /// With [`Namespace::remember_optional`], caches a loader's `None` for this long.
    pub fn negative_ttl(mut self, ttl: Ttl) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }
}

/// What `remember` found before loading.
enum Lookup<T> {
    Found(T),
    /// The key is cached as absent (negative caching).
    Absent,
    Missing,
}

/// Outcome of `Namespace::take_lease`.
enum Lease<T> {
    /// Another instance loaded the value meanwhile.
    Loaded(T),
    /// We hold the lease (its token).
    Held(Bytes),
    /// Gave up waiting: load without a lease.
    Unleased,
}

/// `value` as JSON text (events and queue messages).
fn json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::new(ErrorKind::Encode, e.to_string()))
}

/// Calls `attempt` until it yields a value or `wait` has passed (always at least once),
/// sleeping between attempts with exponential backoff from 2 ms up to `max_pause`.
async fn poll_until<T, F, Fut>(
    wait: Duration,
    max_pause: Duration,
    mut attempt: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = attempt().await? {
            return Ok(Some(v));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(max_pause);
    }
}

/// Validates and deduplicates tags.
fn check_tags<'a>(tags: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut out: Vec<&str> = Vec::with_capacity(tags.len());
    for t in tags {
        crate::codec::validate_tag(t)?;
        if !out.contains(t) {
            out.push(t);
        }
    }
    if out.len() > crate::codec::MAX_TAGS {
        return Err(Error::new(
            ErrorKind::TooManyKeys,
            format!(
                "{} tags, over the limit of {}",
                out.len(),
                crate::codec::MAX_TAGS
            ),
        ));
    }
    Ok(out)
}

fn parse_version(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A fresh tag version: unpredictable and never reused, so a version key that is lost
/// and re-created can never make an invalidated value valid again.
fn new_version() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_compatibility() {
        let b = CacheBuilder::default();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            b.clone().with_vars(None, None, None).unwrap().backend,
            BackendChoice::Memory
        );
        assert_eq!(
            b.clone()
                .with_vars(None, s("redis://h:1"), None)
                .unwrap()
                .backend,
            BackendChoice::Redis("redis://h:1".into())
        );
        assert_eq!(
            b.clone()
                .with_vars(s("memory"), s("redis://h:1"), None)
                .unwrap()
                .backend,
            BackendChoice::Memory
        );
        assert!(b.clone().with_vars(s("redis"), None, None).is_err());
        assert_eq!(
            b.clone().cluster(["h1:7000", "h2:7001"]).backend,
            BackendChoice::Redis("redis+cluster://h1:7000,h2:7001".into())
        );
        assert_eq!(
            b.clone()
                .sentinel(vec!["s1:26379".to_owned()], "cache")
                .backend,
            BackendChoice::Redis("redis+sentinel://s1:26379/cache".into())
        );
        let e = b.clone().with_vars(s("memcached"), None, None).unwrap_err();
        assert!(e.message().contains("memcached"), "{e}");
        assert_eq!(
            b.with_vars(None, None, s("app"))
                .unwrap()
                .key_prefix
                .as_deref(),
            Some("app")
        );
    }

    #[test]
    fn ttl_bounds() {
        assert!(Ttl::millis(0).validate().is_err());
        assert!(Ttl::millis(1).validate().is_ok());
        assert!(
            Ttl::from(MAX_TTL + Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert_eq!(Ttl::NEVER.validate().unwrap(), None);
    }

    #[tokio::test]
    async fn bad_prefix_and_limits_are_config_errors() {
        let e = Cache::builder()
            .key_prefix("Bad Prefix")
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = Cache::builder().max_batch(0).build().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = Cache::builder()
            .redis("http://nope")
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
