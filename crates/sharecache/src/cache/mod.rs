//! `Cache` and `Namespace`: the typed, namespaced key-value API over a [`Store`].
//!
//! A [`Namespace`] owns the key-value core: `get`, `get_shared`, `get_with_source`,
//! `set`, `del`, `exists`, `mget`, `mset`, `mdel`, `clear`, `delete_pattern`, `keys`,
//! `usage`, `stats`, `remember*` and tags. Every key a caller passes is validated and
//! stored as `[prefix:]ns:key`; no call reaches outside its namespace. Primitives are
//! handles got from a namespace, each in its own module: [`Namespace::locks`],
//! [`Namespace::sessions`], [`Namespace::rate_limits`], [`Namespace::presence`],
//! [`Namespace::channel`], [`Namespace::queue`].
//!
//! * `builder.rs`: [`CacheBuilder`], every setting, and opening the store.
//! * `read.rs`: the one read path through L1, where hits, misses and L1 fills are decided.
//! * `tags.rs`: tagged writes and lazy tag invalidation.
//! * `remember.rs`: read-or-load with single-flight, leases and early refresh.
//!
//! Guarantee: every write of a key goes through [`Namespace::tiered_write`], so this
//! instance's L1 never serves a value older than its own last write.

mod builder;
mod read;
mod remember;
mod tags;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;

pub use builder::CacheBuilder;
pub use read::Source;
pub use remember::RememberOptions;

use crate::codec::Codec;
use crate::error::{Error, ErrorKind, Result};
use crate::key::{KeySpace, NamespaceName};
use crate::store::{BackendState, Coord, Kv, Store, StoreStats};
use crate::tier::Tier;
use crate::ttl::Ttl;

/// Default most keys in one batch call (`mget`, `mset`, `mdel`).
pub const DEFAULT_MAX_BATCH: usize = 10_000;

pub(crate) struct Inner {
    pub(crate) hub: Arc<crate::events::Hub>,
    pub(crate) session_keys: Option<crate::session::SessionKeys>,
    pub(crate) store: Store,
    pub(crate) flights: crate::load::Flights,
    pub(crate) tier: Option<Arc<Tier>>,
    pub(crate) codec: Codec,
    pub(crate) prefix: Option<NamespaceName>,
    pub(crate) max_batch: usize,
    pub(crate) counters: Mutex<HashMap<NamespaceName, Arc<Counters>>>,
}

/// Per-namespace operation counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
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
    pub(crate) inner: Arc<Inner>,
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

    /// Store-wide figures: keys, bytes, evictions and where calls go.
    pub async fn stats(&self) -> Result<StoreStats> {
        self.inner.store.stats().await
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
    pub(crate) inner: Arc<Inner>,
    pub(crate) name: NamespaceName,
    pub(crate) space: KeySpace,
    pub(crate) counters: Arc<Counters>,
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

    /// Writes `key` with a TTL (use [`Ttl::NEVER`] for none).
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Ttl) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let bytes = self.inner.codec.encode(value)?;
        self.write_encoded(&full, bytes, ttl).await
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
}

/// Crate-internal plumbing shared by the key-value core and the primitives' handles.
impl Namespace {
    /// Key-value operations on stored keys.
    pub(crate) fn kv(&self) -> &dyn Kv {
        self.inner.store.kv()
    }

    /// Coordination operations (rate limits, locks, indexes, streams, queues, presence).
    pub(crate) fn coord(&self) -> &dyn Coord {
        self.inner.store.coord()
    }

    pub(crate) fn check_batch(&self, n: usize) -> Result<()> {
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

    pub(crate) fn full_keys(&self, keys: &[impl AsRef<str>]) -> Result<Vec<String>> {
        self.check_batch(keys.len())?;
        keys.iter().map(|k| self.space.key(k.as_ref())).collect()
    }

    /// The tier, if there is one and it may serve this namespace right now.
    #[inline]
    pub(crate) fn tier(&self) -> Option<&Tier> {
        self.inner
            .tier
            .as_deref()
            .filter(|t| t.active_for(self.name.as_str()))
    }

    /// Runs a write of `keys`, keeping L1 coherent for this instance: the keys' stripes
    /// are bumped before and after (so no read in flight caches an older value) and the
    /// keys leave L1, so the next read on this instance sees the write.
    pub(crate) async fn tiered_write<R>(
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

    /// Writes one encoded value (tagged or not) with a validated TTL.
    pub(crate) async fn write_encoded(
        &self,
        full: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.tiered_write(&[full], self.kv().set(full, bytes, ttl))
            .await?;
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Refuses an event or message payload over the value size limit.
    pub(crate) fn check_payload(&self, json: &[u8], what: &str) -> Result<()> {
        if json.len() > self.inner.codec.max_value_bytes {
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                format!("{what} is over the value size limit"),
            ));
        }
        Ok(())
    }
}

/// Calls `attempt` until it yields a value or `wait` has passed (always at least once),
/// sleeping between attempts with exponential backoff from 2 ms up to `max_pause`. Lock
/// waits and queue claims use it.
pub(crate) async fn poll_until<T, F, Fut>(
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
