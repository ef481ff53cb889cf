//! `Store`: one public type over private backend traits, and every backend beside it.
//!
//! * `backend`: the traits. [`Kv`] is storage only (values by key, batches, listing,
//!   health); [`Coord`] is coordination (rate limits, locks, index sets, streams,
//!   queues, presence, publish). Every backend implements both.
//! * `memory/`: the bounded in-memory store (the embedded backend and the fallback).
//! * `redis/`: Redis standalone, Cluster and Sentinel, split by role
//!   (`commands -> fanout/exec -> link -> url`, Lua in `redis/lua/`).
//! * `fallback`: wraps the Redis backend with the memory one while Redis is down, and
//!   reconciles on recovery.
//! * `clock`: the time source every time-dependent path of the memory store reads.
//!
//! Callers (the [`Cache`](crate::Cache) and the HTTP service) never name a backend type:
//! the cache layer reaches a store only through [`Store::kv`] and [`Store::coord`].
//! Imports run one way: `fallback -> memory, redis`; nothing below imports what sits
//! above it.
//!
//! **Guarantee**: a Redis store is always built behind its fallback policy
//! ([`Store::redis`]), so no caller ever holds a bare Redis backend.

mod backend;
pub(crate) mod clock;
pub(crate) mod fallback;
pub(crate) mod memory;
pub(crate) mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;

pub(crate) use backend::{Backend, Coord, Kv, ScanPage};
pub use backend::{BackendState, StoreStats};
pub use fallback::Fallback;
pub use memory::MemoryLimits;
pub(crate) use redis::url::RedisOptions;
pub use redis::url::{RedisKind, RedisUrl};

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
    pub(crate) fn kv(&self) -> &dyn Kv {
        &*self.0
    }

    /// Coordination operations: rate limits, locks, indexes, streams, queues, presence,
    /// publish (the primitives' entry point).
    pub(crate) fn coord(&self) -> &dyn Coord {
        &*self.0
    }

    /// A standalone bounded in-memory store (what `Cache::builder().memory()` uses).
    pub fn memory(limits: MemoryLimits) -> Result<Store> {
        Ok(Store(Arc::new(memory::MemoryStore::new(limits)?)))
    }

    /// Redis at `url` behind the fallback policy, and the link the L1 tier and the events
    /// hub share. Checks the connection once: if Redis is unreachable and the fallback is
    /// `Memory`, the store starts degraded and recovers by itself; with `Fail`, the error
    /// is returned. A refused configuration (URL, credentials) is always an error.
    pub(crate) async fn redis(
        url: &str,
        opts: RedisOptions,
        fallback: Fallback,
        memory: MemoryLimits,
        namespace_max_bytes: u64,
        probe_interval: Duration,
    ) -> Result<(Store, Arc<redis::link::Link>)> {
        let redis = redis::RedisStore::open(url, opts)?;
        let label = redis.display_url().to_owned();
        let link = redis.link();
        let memory = match fallback {
            Fallback::Memory => Some(memory::MemoryStore::refusing(memory, namespace_max_bytes)?),
            Fallback::Fail => None,
        };
        let first = redis.check().await?;
        let store =
            fallback::FallbackStore::new(Arc::new(redis), memory, probe_interval, label.clone());
        match first {
            Ok(()) => tracing::info!(backend = %label, "connected to redis"),
            Err(e) if e.is_unavailable() && fallback == Fallback::Memory => {
                store.start_degraded(&e);
            }
            Err(e) => return Err(e),
        }
        Ok((Store(store), link))
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
