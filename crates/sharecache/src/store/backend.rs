//! The backend traits and the figures they report.
//!
//! A backend works on stored keys (`ns:key`, already validated) and encoded values. Two
//! traits, because a backend is two things:
//!
//! * [`Kv`]: storage. Values by key with TTLs, batches, conditional writes, listing and
//!   pattern delete, sizes, health. Batch operations and SCAN stay behind it so a cluster
//!   backend can split them by slot and walk every node.
//! * [`Coord`]: coordination. Rate limits, locks' acquire and extend, index sets, event
//!   streams, queues, presence and publish: each one atomic step on the backend.
//!
//! Every backend implements both ([`Backend`]); the cache layer reaches them only
//! through [`Store::kv`](super::Store::kv) and [`Store::coord`](super::Store::coord).
//!
//! **Guarantee**: every backend gives the same answers to the same calls
//! (`tests/store_suite.rs` runs one behaviour suite on memory, Redis and Cluster).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::queue::{ClaimOptions, QueueMessage, QueueStats};
use crate::ratelimit::{Decision, Limit};

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
    /// A Redis node's `maxmemory-policy` when it may evict keys that have no TTL
    /// (`allkeys-*`): queues, durable event logs, user session indexes and fence counters
    /// among them. `None` for `noeviction` and `volatile-*`, and on the memory store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evicting_policy: Option<String>,
}

/// One page of a key listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScanPage {
    pub(crate) keys: Vec<String>,
    /// Opaque cursor for the next page, `None` when the walk is complete.
    pub(crate) cursor: Option<String>,
}

/// Storage: what every backend implements for key-value. Keys are stored keys; values
/// are encoded.
#[async_trait]
pub(crate) trait Kv: Send + Sync + fmt::Debug {
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
    /// Through the fallback, served from memory during an outage (leases).
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool>;
    /// `set_nx` for a caller's conditional write: never answered from the fallback,
    /// whose memory does not hold what Redis does (`Unavailable` during an outage).
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.set_nx(key, value, ttl).await
    }
    /// `get` for a caller's conditional write: never answered from the fallback.
    async fn get_for_update(&self, key: &str) -> Result<Option<Bytes>> {
        self.get(key).await
    }
    /// Stores `value` with `ttl` only if `key` holds exactly `expected` (compare-and-set);
    /// returns whether it did. Never answered from the fallback.
    async fn set_if_eq(
        &self,
        key: &str,
        expected: Bytes,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool>;
    /// Adds `by` to the integer at `key` (created at 0, with `ttl`, if absent) and returns
    /// the new value; `WrongType` if the key holds something else. Never answered from
    /// the fallback.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64>;
    /// Deletes `key` only if it holds `value`; returns whether it did.
    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool>;
    /// Deletes keys; returns how many existed.
    async fn del(&self, keys: &[String]) -> Result<u64>;
    /// Reads and deletes `key` in one atomic step (Redis `GETDEL`).
    async fn get_del(&self, key: &str) -> Result<Option<Bytes>>;
    /// The remaining time to live: `None` for no key, `Some(None)` for no expiry.
    async fn pttl(&self, key: &str) -> Result<Option<Option<Duration>>>;
    /// Sets the time to live of an existing key (`None`: no expiry) without touching its
    /// value; returns whether the key exists.
    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool>;
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

/// Coordination: each call one atomic step on the state kept at its keys.
#[async_trait]
pub(crate) trait Coord: Send + Sync + fmt::Debug {
    /// One rate-limit step on the state kept at `key` (see `ratelimit`).
    async fn rate_limit(&self, key: &str, limit: &Limit) -> Result<Decision>;
    /// Takes the lock at `key` for `token` if free (with `ttl`) and returns the next fence
    /// from the never-expiring counter at `fence_key`; `None` if the lock is held.
    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>>;
    /// Sets a new `ttl` on the lock at `key` only if `token` holds it.
    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool>;
    /// Deletes the lock at `key` only if `token` holds it.
    async fn lock_release(&self, key: &str, token: Bytes) -> Result<bool>;
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
        opts: &ClaimOptions,
    ) -> Result<Vec<QueueMessage>>;
    /// Queues: acknowledges messages; returns how many were pending.
    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64>;
    /// Queues: the first `count` dead-lettered messages.
    async fn queue_dead(&self, key: &str, dlq: &str, count: usize) -> Result<Vec<QueueMessage>>;
    /// Queues: how many messages are ready, pending and dead.
    async fn queue_stats(&self, key: &str, dlq: &str) -> Result<QueueStats>;
    /// Queues: removes the dead letter of message `id` (looking through at most
    /// [`MAX_DEAD_SCAN`](crate::queue::MAX_DEAD_SCAN) of them); with `requeue`, pushes its
    /// payload back as a new message and returns the new id, else returns `id`. `None`
    /// if there is no such dead letter.
    async fn queue_dead_take(
        &self,
        key: &str,
        dlq: &str,
        id: &str,
        requeue: bool,
    ) -> Result<Option<String>>;
    /// Publishes `payload` on `channel`; returns the receivers.
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<u64>;
    /// Presence: marks `member` of the set at `key` alive for `ttl`.
    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()>;
    /// Presence: removes `member`; returns whether it was there (alive).
    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool>;
    /// Presence: the members alive now, with the time each has left, soonest first.
    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>>;
}

/// A whole backend: storage and coordination.
pub(crate) trait Backend: Kv + Coord {}

impl<T: Kv + Coord> Backend for T {}
