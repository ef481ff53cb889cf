//! `CacheBuilder`: every setting of a cache, and `build`, which opens the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Cache, DEFAULT_MAX_BATCH, Inner};
use crate::codec::{Codec, Format};
use crate::error::{Error, ErrorKind, Result};
use crate::key::NamespaceName;
use crate::store::{Fallback, MemoryLimits, RedisOptions, Store};
use crate::tier::{LocalTier, Tier};

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
    /// Per-namespace formats that differ from `codec.format`.
    formats: HashMap<String, Format>,
    memory: MemoryLimits,
    /// Each namespace's share of the memory fallback; `None`: a quarter of `memory`.
    fallback_namespace_max_bytes: Option<u64>,
    connect_timeout: Duration,
    command_timeout: Duration,
    probe_interval: Duration,
    key_prefix: Option<String>,
    max_batch: usize,
    local_tier: Option<LocalTier>,
    session_keys: Option<crate::session::SessionKeys>,
    subscriber_buffer: crate::events::SubscriberBuffer,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Memory,
            fallback: Fallback::Memory,
            codec: Codec::default(),
            formats: HashMap::new(),
            memory: MemoryLimits::default(),
            fallback_namespace_max_bytes: None,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_millis(250),
            key_prefix: None,
            max_batch: DEFAULT_MAX_BATCH,
            local_tier: None,
            session_keys: None,
            subscriber_buffer: crate::events::SubscriberBuffer::default(),
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
    /// format are read regardless. [`Format::Plain`] stores JSON text as is, readable by
    /// RESP clients.
    pub fn format(mut self, format: Format) -> Self {
        self.codec.format = format;
        self
    }

    /// The format of one namespace's new values, overriding [`format`](Self::format):
    /// for example [`Format::Plain`] for a namespace shared with services that speak RESP.
    /// The name is checked when the cache is built.
    pub fn namespace_format(mut self, namespace: &str, format: Format) -> Self {
        self.formats.insert(namespace.to_owned(), format);
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

    /// How many bytes of the memory fallback one namespace may fill while Redis is down
    /// (default: a quarter of [`memory_limits`](Self::memory_limits)' `max_bytes`, at
    /// least 4096). The fallback never evicts what it acknowledged: a write past the
    /// namespace's share, or past the whole budget, fails with
    /// [`ErrorKind::FallbackFull`](crate::ErrorKind::FallbackFull) instead, so one tenant
    /// filling it cannot push out another's writes.
    pub fn fallback_namespace_max_bytes(mut self, bytes: u64) -> Self {
        self.fallback_namespace_max_bytes = Some(bytes);
        self
    }

    /// How far one event subscription may fall behind (unread events and bytes) before
    /// it is dropped; see [`events`](crate::events). Both must be at least 1.
    pub fn subscriber_buffer(mut self, buffer: crate::events::SubscriberBuffer) -> Self {
        self.subscriber_buffer = buffer;
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

    /// A prefix before every namespace (`prefix/ns:key`), for sharing one Redis database
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
        if self.subscriber_buffer.max_events == 0 || self.subscriber_buffer.max_bytes == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "subscriber_buffer: max_events and max_bytes must be at least 1",
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
                let share = self
                    .fallback_namespace_max_bytes
                    .unwrap_or((self.memory.max_bytes / 4).max(4096));
                let (store, link) = Store::redis(
                    url,
                    opts,
                    self.fallback,
                    self.memory,
                    share,
                    self.probe_interval,
                )
                .await?;
                (store, Some(link))
            }
        };
        let tier = match (&link, self.local_tier) {
            (Some(link), Some(cfg)) => {
                let tier = Arc::new(Tier::new(cfg));
                let track_prefix = prefix
                    .as_ref()
                    .map(|p| crate::key::deployment_head(Some(p.as_str())));
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
        let formats = self
            .formats
            .iter()
            .map(|(ns, f)| Ok((NamespaceName::new(ns)?, *f)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Cache {
            inner: Arc::new(Inner {
                hub: crate::events::Hub::new(link, self.subscriber_buffer),
                session_keys: self.session_keys,
                store,
                flights: crate::load::Flights::default(),
                tier,
                codec: self.codec,
                formats,
                prefix,
                max_batch: self.max_batch,
                counters: Mutex::new(HashMap::new()),
            }),
        })
    }
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
        for buffer in [(0, 1), (1, 0)] {
            let e = Cache::builder()
                .subscriber_buffer(crate::events::SubscriberBuffer {
                    max_events: buffer.0,
                    max_bytes: buffer.1,
                })
                .build()
                .await
                .unwrap_err();
            assert!(e.message().contains("subscriber_buffer"), "{e}");
        }
        // Checked before any connection: the URL need not answer.
        let e = Cache::builder()
            .redis("redis://127.0.0.1:1")
            .fallback_namespace_max_bytes(100)
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.message().contains("4096"), "{e}");
    }
}
