//! `Store`: one public type over a private backend trait.
//!
//! Callers (the [`Cache`](crate::Cache) and the HTTP service) never name a backend type.
//! Each backend works on stored keys (`ns:key`, already validated) and encoded values.
//! Batch operations and SCAN stay behind the trait so a cluster backend can split them by
//! slot and walk every node.

pub(crate) mod link;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod topology;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

pub use memory::MemoryLimits;

/// Where a store's reads and writes go right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackendState {
    /// The embedded in-memory store (no Redis configured).
    Memory,
    /// Redis is reachable and serves every call.
    Connected,
    /// Redis is unreachable: calls are answered by the memory fallback (or fail fast with
    /// `Fallback::Fail`) while a background probe waits for it to come back.
    Degraded,
    /// Redis is back: writes made during the outage are being replayed before it serves
    /// reads again.
    Recovering,
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendState::Memory => "memory",
            BackendState::Connected => "connected",
            BackendState::Degraded => "degraded",
            BackendState::Recovering => "recovering",
        })
    }
}

/// Store-wide figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Keys held (for Redis: `DBSIZE` of the database; for memory: entries, including
    /// expired ones not yet reclaimed).
    pub keys: u64,
    /// Bytes used (for Redis: `used_memory`; for memory: the weighed size of entries).
    pub bytes: u64,
    /// Entries evicted for space since start (Redis: `evicted_keys`).
    pub evictions: u64,
    /// Where calls go right now.
    pub state: BackendState,
}

/// One page of a key listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScanPage {
    pub(crate) keys: Vec<String>,
    /// Opaque cursor for the next page, `None` when the walk is complete.
    pub(crate) cursor: Option<String>,
}

/// What every backend implements. Keys are stored keys; values are encoded.
#[async_trait]
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// The value and its remaining TTL (`None` = no expiry), in one round trip.
    async fn get_with_ttl(&self, key: &str) -> Result<(Option<Bytes>, Option<Duration>)>;
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()>;
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>>;
    async fn mset(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()>;
    /// For each key, its value, or `init` stored (without expiry) if it had none, as
    /// Redis `SET key init NX GET` does.
    async fn get_or_init(&self, keys: &[String], inits: &[Bytes]) -> Result<Vec<Bytes>>;
    /// Stores `value` with `ttl` only if `key` has no value; returns whether it did.
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool>;
    /// Deletes `key` only if it holds `value`; returns whether it did.
    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool>;
    /// One rate-limit step on the state kept at `key` (see `ratelimit`).
    async fn rate_limit(
        &self,
        key: &str,
        limit: &crate::ratelimit::Limit,
    ) -> Result<crate::ratelimit::Decision>;
    /// Takes the lock at `key` for `token` if free (with `ttl`) and returns the next fence
    /// from the never-expiring counter at `fence_key`; `None` if the lock is held.
    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>>;
    /// Index sets (sessions of a user): adds `member`, keeping the set at least `ttl`.
    async fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()>;
    /// Index sets: every member.
    async fn index_members(&self, key: &str) -> Result<Vec<String>>;
    /// Index sets: removes members.
    async fn index_remove(&self, key: &str, members: &[String]) -> Result<()>;
    /// Durable events: appends to a capped stream; returns the entry id.
    async fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> Result<String>;
    /// Durable events: up to `count` entries after `after` (exclusive; `None`: from the start).
    async fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>>;
    /// Queues: appends a message; returns its id.
    async fn queue_push(&self, key: &str, payload: Bytes) -> Result<String>;
    /// Queues: claims up to `count` messages for `consumer` (see `queue`).
    async fn queue_claim(
        &self,
        key: &str,
        dlq: &str,
        consumer: &str,
        count: usize,
        opts: &crate::queue::ClaimOptions,
    ) -> Result<Vec<crate::queue::QueueMessage>>;
    /// Queues: acknowledges messages; returns how many were pending.
    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64>;
    /// Queues: the first `count` dead-lettered messages.
    async fn queue_dead(
        &self,
        key: &str,
        dlq: &str,
        count: usize,
    ) -> Result<Vec<crate::queue::QueueMessage>>;
    /// Publishes `payload` on `channel`; returns the receivers.
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<u64>;
    /// Presence: marks `member` of the set at `key` alive for `ttl`.
    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()>;
    /// Presence: removes `member`; returns whether it was there (alive).
    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool>;
    /// Presence: the members alive now, with the time each has left, soonest first.
    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>>;
    /// Sets a new `ttl` on the lock at `key` only if `token` holds it.
    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool>;
    /// Deletes keys; returns how many existed.
    async fn del(&self, keys: &[String]) -> Result<u64>;
    async fn exists(&self, key: &str) -> Result<bool>;
    /// One page of keys matching a (confined, validated) pattern.
    async fn scan(&self, pattern: &str, cursor: Option<&str>, count: usize) -> Result<ScanPage>;
    /// Deletes every key matching the pattern, in batches; returns how many.
    async fn delete_matching(&self, pattern: &str) -> Result<u64>;
    /// Approximate bytes used by each key (key, value and overhead); 0 for a missing key.
    async fn sizes(&self, keys: &[String]) -> Result<Vec<u64>>;
    /// Round trip to the backend.
    async fn ping(&self) -> Result<Duration>;
    async fn stats(&self) -> Result<StoreStats>;
    fn state(&self) -> BackendState;
}

/// A handle on a backend: memory, Redis, or Redis with a memory fallback. Cheap to clone.
#[derive(Clone)]
pub struct Store(pub(crate) Arc<dyn Backend>);

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Store").field(&self.0).finish()
    }
}

impl Store {
    /// Key-value operations on stored keys (the cache layer's entry point).
    pub(crate) fn kv(&self) -> &dyn Backend {
        &*self.0
    }

    /// Coordination operations: rate limits, locks, indexes, streams, queues, presence,
    /// publish (the primitives' entry point).
    pub(crate) fn coord(&self) -> &dyn Backend {
        &*self.0
    }

    /// A standalone bounded in-memory store (what `Cache::builder().memory()` uses).
    pub fn memory(limits: MemoryLimits) -> Result<Store> {
        Ok(Store(Arc::new(memory::MemoryStore::new(limits)?)))
    }

    /// Low-level read of a stored key (`ns:key`), bypassing namespaces and decoding.
    /// Applications use [`Namespace`](crate::Namespace); this is for tools and benchmarks.
    pub async fn get_raw(&self, stored_key: &str) -> Result<Option<Bytes>> {
        self.0.get(stored_key).await
    }

    /// Low-level write of a stored key with already-encoded bytes. See [`Store::get_raw`].
    pub async fn set_raw(
        &self,
        stored_key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.0.set(stored_key, value, ttl).await
    }

    /// Where calls go right now.
    pub fn state(&self) -> BackendState {
        self.0.state()
    }

    /// Round-trip latency to the backend.
    pub async fn ping(&self) -> Result<Duration> {
        self.0.ping().await
    }

    /// Store-wide figures.
    pub async fn stats(&self) -> Result<StoreStats> {
        self.0.stats().await
    }
}

#[async_trait]
impl Backend for memory::MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        // Never Pending otherwise: let a tight loop of gets yield now and then.
        tokio::task::consume_budget().await;
        Ok(memory::MemoryStore::get(self, key))
    }
    async fn get_with_ttl(&self, key: &str) -> Result<(Option<Bytes>, Option<Duration>)> {
        tokio::task::consume_budget().await;
        Ok(match memory::MemoryStore::get_with_ttl(self, key) {
            Some((v, ttl)) => (Some(v), ttl),
            None => (None, None),
        })
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        tokio::task::consume_budget().await;
        memory::MemoryStore::set(self, key, value, ttl)
    }
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys
            .iter()
            .map(|k| memory::MemoryStore::get(self, k))
            .collect())
    }
    async fn mset(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (k, v) in items {
            memory::MemoryStore::set(self, k, v.clone(), ttl)?;
        }
        Ok(())
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        memory::MemoryStore::set_nx(self, key, value, ttl)
    }
    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool> {
        Ok(memory::MemoryStore::del_if_eq(self, key, &value))
    }
    async fn rate_limit(
        &self,
        key: &str,
        limit: &crate::ratelimit::Limit,
    ) -> Result<crate::ratelimit::Decision> {
        memory::MemoryStore::rate_limit(self, key, limit)
    }
    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        memory::MemoryStore::lock_acquire(self, key, fence_key, token, ttl)
    }
    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        memory::MemoryStore::presence_beat(self, key, member, ttl)
    }
    async fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        memory::MemoryStore::index_add(self, key, member, ttl)
    }
    async fn index_members(&self, key: &str) -> Result<Vec<String>> {
        Ok(memory::MemoryStore::index_members(self, key))
    }
    async fn index_remove(&self, key: &str, members: &[String]) -> Result<()> {
        memory::MemoryStore::index_remove(self, key, members)
    }
    async fn queue_push(&self, key: &str, payload: Bytes) -> Result<String> {
        memory::MemoryStore::queue(self, key, |q, now| q.push(payload, now))
    }
    async fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> Result<String> {
        Ok(memory::MemoryStore::stream_add(self, key, payload, max_len))
    }
    async fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>> {
        Ok(memory::MemoryStore::stream_range(self, key, after, count))
    }
    async fn queue_claim(
        &self,
        key: &str,
        _dlq: &str,
        _consumer: &str,
        count: usize,
        opts: &crate::queue::ClaimOptions,
    ) -> Result<Vec<crate::queue::QueueMessage>> {
        memory::MemoryStore::queue(self, key, |q, now| Ok(q.claim(count, opts, now)))
    }
    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64> {
        memory::MemoryStore::queue(self, key, |q, _| Ok(q.ack(ids)))
    }
    async fn queue_dead(
        &self,
        key: &str,
        _dlq: &str,
        count: usize,
    ) -> Result<Vec<crate::queue::QueueMessage>> {
        // In memory the dead letters live with their queue.
        memory::MemoryStore::queue(self, key, |q, _| Ok(q.dead(count)))
    }
    async fn publish(&self, _channel: &str, _payload: Bytes) -> Result<u64> {
        // The memory store has no remote subscribers: the hub delivers locally.
        Ok(0)
    }
    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool> {
        memory::MemoryStore::presence_leave(self, key, member)
    }
    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>> {
        Ok(memory::MemoryStore::presence_list(self, key))
    }
    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool> {
        memory::MemoryStore::lock_extend(self, key, &token, ttl)
    }
    async fn get_or_init(&self, keys: &[String], inits: &[Bytes]) -> Result<Vec<Bytes>> {
        keys.iter()
            .zip(inits)
            .map(|(k, init)| match memory::MemoryStore::get(self, k) {
                Some(v) => Ok(v),
                None => {
                    memory::MemoryStore::set(self, k, init.clone(), None).map(|()| init.clone())
                }
            })
            .collect()
    }
    async fn del(&self, keys: &[String]) -> Result<u64> {
        Ok(keys
            .iter()
            .filter(|k| memory::MemoryStore::del(self, k))
            .count() as u64)
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(memory::MemoryStore::exists(self, key))
    }
    async fn scan(&self, pattern: &str, cursor: Option<&str>, count: usize) -> Result<ScanPage> {
        let (keys, cursor) = memory::MemoryStore::scan(self, pattern, cursor, count);
        Ok(ScanPage { keys, cursor })
    }
    async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        Ok(memory::MemoryStore::delete_matching(self, pattern))
    }
    async fn sizes(&self, keys: &[String]) -> Result<Vec<u64>> {
        Ok(keys
            .iter()
            .map(|k| memory::MemoryStore::size_of(self, k))
            .collect())
    }
    async fn ping(&self) -> Result<Duration> {
        Ok(Duration::ZERO)
    }
    async fn stats(&self) -> Result<StoreStats> {
        Ok(StoreStats {
            keys: self.len(),
            bytes: self.weight(),
            evictions: self.evictions(),
            state: BackendState::Memory,
        })
    }
    fn state(&self) -> BackendState {
        BackendState::Memory
    }
}
