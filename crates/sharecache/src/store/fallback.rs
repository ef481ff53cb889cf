//! Degrade to memory while Redis is down; reconcile on recovery.
//!
//! `FallbackStore` wraps two backends: the Redis one (the primary) and, with
//! [`Fallback::Memory`], a memory one. It decides *which* answers a call and what to
//! record for the replay; the answer itself always comes from a backend's own
//! [`Kv`]/[`Coord`] implementation, never from code of its own. While Redis answers,
//! every call goes to it.
//! The first call that fails with a connection-class error (refused, reset, timed out)
//! opens the circuit: from then on calls do not touch Redis at all (so none waits a full
//! timeout) and are answered by an in-memory store ([`Fallback::Memory`]) or fail at once
//! with [`ErrorKind::Unavailable`] ([`Fallback::Fail`]). A background task pings Redis
//! every `probe_interval`.
//!
//! **Guarantee** (coherence rule 4): after recovery no caller reads a value older than one
//! written during the outage. Every key written or deleted during the outage is recorded
//! (as are pattern deletes and clears). When the probe succeeds the store enters
//! `Recovering`: calls are still served by memory while the recorded pattern deletes are
//! replayed on Redis, then each recorded key is rewritten from memory (value and remaining
//! TTL, many SETs pipelined at once) or deleted there. Replay runs in rounds while writes
//! continue; once the backlog is small (or after a bounded number of rounds, so a steady
//! stream of writes cannot keep it from converging) a write gate closes: calls that need
//! memory wait while the last records are replayed (milliseconds), then the store
//! switches back to Redis and the memory store is emptied, so a later outage never serves
//! values from an earlier one.
//!
//! A memory write that is evicted for space during the outage is deleted in Redis on
//! recovery, never left at its pre-outage value.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::RwLock;

use super::memory::MemoryStore;
use super::{Backend, BackendState, Coord, Kv, ScanPage, StoreStats};
use crate::error::{Error, ErrorKind, Result};
use crate::queue::{ClaimOptions, QueueMessage, QueueStats};
use crate::ratelimit::{Decision, Limit};

/// What to do while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fallback {
    /// Keep answering from an in-memory store; reconcile on recovery (the default).
    #[default]
    Memory,
    /// Fail fast with [`ErrorKind::Unavailable`] until Redis is back.
    Fail,
}

const HEALTHY: u8 = 0;
const DEGRADED: u8 = 1;
const RECOVERING: u8 = 2;

#[derive(Default)]
struct Dirty {
    keys: HashSet<String>,
    patterns: Vec<String>,
}

pub(crate) struct FallbackStore {
    primary: Arc<dyn Backend>,
    memory: Option<MemoryStore>,
    mode: AtomicU8,
    /// Held shared by every call served from memory, exclusively by the switch back to
    /// Redis: no memory write can slip in after the last replay.
    gate: RwLock<()>,
    dirty: Mutex<Dirty>,
    /// The error that tripped the circuit: what calls failed fast with `Fallback::Fail`
    /// answer, so the caller learns the cause (a Redis `READONLY` keeps its code).
    tripped_by: Mutex<Option<Error>>,
    probe_interval: Duration,
    label: String,
    me: Weak<FallbackStore>,
}

impl std::fmt::Debug for FallbackStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackStore")
            .field("primary", &self.primary)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// The outcome of trying the primary: a value, or "serve this call from the fallback".
enum Tried<T> {
    Done(Result<T>),
    Fallback,
}

impl FallbackStore {
    pub(crate) fn new(
        primary: Arc<dyn Backend>,
        memory: Option<MemoryStore>,
        probe_interval: Duration,
        label: String,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            primary,
            memory,
            mode: AtomicU8::new(HEALTHY),
            gate: RwLock::new(()),
            dirty: Mutex::new(Dirty::default()),
            tripped_by: Mutex::new(None),
            probe_interval,
            label,
            me: me.clone(),
        })
    }

    /// Starts degraded (Redis was unreachable at start).
    pub(crate) fn start_degraded(&self, why: &Error) {
        self.trip(why);
    }

    fn mode(&self) -> u8 {
        self.mode.load(Ordering::Acquire)
    }

    /// Opens the circuit (once) and starts the recovery probe.
    fn trip(&self, why: &Error) {
        *self.tripped_by.lock() = Some(why.clone());
        if self
            .mode
            .compare_exchange(HEALTHY, DEGRADED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            match self.memory {
                Some(_) => {
                    tracing::warn!(backend = %self.label, error = %why, "redis unreachable: serving from the memory fallback")
                }
                None => {
                    tracing::warn!(backend = %self.label, error = %why, "redis unreachable: failing calls fast until it is back")
                }
            }
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(async move { me.recover().await });
            }
        }
    }

    async fn try_primary<T, F>(&self, op: F) -> Tried<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        if self.mode() != HEALTHY {
            return Tried::Fallback;
        }
        match op.await {
            Err(e) if e.is_unavailable() => {
                self.trip(&e);
                Tried::Fallback
            }
            other => Tried::Done(other),
        }
    }

    /// Runs `f` against the memory backend with the gate held; records `touched` keys.
    /// Returns `None` if the store switched back to Redis meanwhile (the caller retries).
    async fn on_memory<'s, T, Fut>(
        &'s self,
        touched: &[&str],
        pattern: Option<&str>,
        changed: impl FnOnce(&T) -> bool,
        f: impl FnOnce(&'s dyn Backend) -> Fut,
    ) -> Option<Result<T>>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        let Some(memory) = &self.memory else {
            return Some(Err(self.outage()));
        };
        let _gate = self.gate.read().await;
        if self.mode() == HEALTHY {
            return None;
        }
        let out = f(memory as &dyn Backend).await;
        let recorded = matches!(&out, Ok(v) if changed(v));
        if recorded && (!touched.is_empty() || pattern.is_some()) {
            let mut d = self.dirty.lock();
            d.keys.extend(touched.iter().map(|k| (*k).to_owned()));
            if let Some(p) = pattern {
                d.patterns.push(p.to_owned());
            }
        }
        Some(out)
    }

    /// Runs an operation that has no safe memory equivalent: on Redis when healthy, else
    /// `Unavailable` at once (tripping the circuit on a connection-class error).
    async fn primary_only<T>(&self, op: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        if self.mode() != HEALTHY {
            return Err(self.outage());
        }
        match op.await {
            Err(e) if e.is_unavailable() => {
                self.trip(&e);
                Err(e)
            }
            other => other,
        }
    }

    /// The error of a call that cannot be served during an outage: the one that tripped
    /// the circuit (its Redis code and source kept), else a plain `Unavailable`.
    fn outage(&self) -> Error {
        self.tripped_by.lock().clone().unwrap_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                format!("redis at {} is unavailable", self.label),
            )
        })
    }

    /// Waits for Redis to answer, replays the outage, then switches back.
    async fn recover(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.probe_interval).await;
            if self.primary.ping().await.is_err() {
                continue;
            }
            self.mode.store(RECOVERING, Ordering::Release);
            tracing::info!(backend = %self.label, "redis reachable again: replaying writes made during the outage");
            match self.replay().await {
                Ok(n) => {
                    tracing::info!(backend = %self.label, replayed = n, "redis recovered: serving from redis again");
                    return;
                }
                Err(e) => {
                    self.mode.store(DEGRADED, Ordering::Release);
                    tracing::warn!(backend = %self.label, error = %e, "replay failed: staying on the fallback");
                }
            }
        }
    }

    /// Replays in rounds while calls keep being served from memory; once the backlog is
    /// small (or after a few rounds, so a steady stream of writes cannot keep it from
    /// converging), closes the gate, replays the rest and switches back. Calls that need
    /// memory wait for that last, short step.
    async fn replay(&self) -> Result<usize> {
        const SMALL_BACKLOG: usize = 1000;
        const ROUNDS: usize = 8;
        let mut replayed = 0;
        for _ in 0..ROUNDS {
            let batch = std::mem::take(&mut *self.dirty.lock());
            let size = batch.keys.len() + batch.patterns.len();
            if let Err(e) = self.replay_batch(&batch).await {
                self.restore(batch);
                return Err(e);
            }
            replayed += size;
            if size <= SMALL_BACKLOG && self.dirty.lock().keys.len() <= SMALL_BACKLOG {
                break;
            }
        }
        let _gate = self.gate.write().await;
        let batch = std::mem::take(&mut *self.dirty.lock());
        if let Err(e) = self.replay_batch(&batch).await {
            self.restore(batch);
            return Err(e);
        }
        replayed += batch.keys.len() + batch.patterns.len();
        self.mode.store(HEALTHY, Ordering::Release);
        if let Some(m) = &self.memory {
            m.clear();
        }
        Ok(replayed)
    }

    /// Puts a batch that failed to replay back. Replay order is patterns first, then keys
    /// from memory's current state, so merging with newer records loses nothing.
    fn restore(&self, batch: Dirty) {
        let mut d = self.dirty.lock();
        d.keys.extend(batch.keys);
        let newer = std::mem::take(&mut d.patterns);
        d.patterns = batch.patterns;
        d.patterns.extend(newer);
    }

    async fn replay_batch(&self, batch: &Dirty) -> Result<()> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        for p in &batch.patterns {
            self.primary.delete_matching(p).await?;
        }
        let Some(memory) = &self.memory else {
            return Ok(());
        };
        let mut dels = Vec::new();
        let mut sets = Vec::new();
        for k in &batch.keys {
            match Kv::get_with_ttl(memory, k).await? {
                (Some(v), ttl) => sets.push((k.clone(), v, ttl)),
                (None, _) => dels.push(k.clone()),
            }
        }
        // Many SETs in flight at once: the multiplexed connection pipelines them.
        let primary = self.primary.clone();
        stream::iter(sets)
            .map(move |(k, v, ttl)| {
                let p = primary.clone();
                async move { p.set(&k, v, ttl).await }
            })
            .buffer_unordered(64)
            .try_collect::<()>()
            .await?;
        for chunk in dels.chunks(1000) {
            self.primary.del(chunk).await?;
        }
        Ok(())
    }
}

/// Serves one call: the primary when healthy, else the memory fallback. The touched keys
/// (and pattern) are recorded for replay when the memory call succeeds, or, given
/// `if = predicate`, only when the predicate says the call changed memory: a conditional
/// write that did nothing must not make replay overwrite (or delete) Redis's value.
macro_rules! serve {
    ($self:ident, $primary:expr, $touched:expr, $pattern:expr, $mem:expr) => {
        serve!($self, $primary, $touched, $pattern, $mem, if = |_| true)
    };
    ($self:ident, $primary:expr, $touched:expr, $pattern:expr, $mem:expr, if = $changed:expr) => {
        loop {
            if let Tried::Done(r) = $self.try_primary($primary).await {
                return r;
            }
            // Memory answers without ever returning Pending: spend coop budget so a
            // caller's tight loop cannot starve other tasks (the recovery probe among them).
            tokio::task::consume_budget().await;
            if let Some(r) = $self.on_memory($touched, $pattern, $changed, $mem).await {
                return r;
            }
        }
    };
}

/// Not replayed: Redis keeps presence sets as sets, memory as JSON; an outage's presence
/// changes stay local (heartbeats redo presence).
const NOT_REPLAYED: &[&str] = &[];

#[async_trait]
impl Kv for FallbackStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        serve!(self, self.primary.get(key), &[], None, |m| m.get(key))
    }

    async fn get_with_ttl(&self, key: &str) -> Result<(Option<Bytes>, Option<Duration>)> {
        serve!(self, self.primary.get_with_ttl(key), &[], None, |m| m
            .get_with_ttl(key))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        serve!(
            self,
            self.primary.set(key, value.clone(), ttl),
            &[key],
            None,
            |m| m.set(key, value.clone(), ttl)
        )
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        serve!(self, self.primary.mget(keys), &[], None, |m| m.mget(keys))
    }

    async fn mset(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        let touched: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        serve!(self, self.primary.mset(items, ttl), &touched, None, |m| m
            .mset(items, ttl))
    }

    async fn get_or_init(&self, keys: &[String], inits: &[Bytes]) -> Result<Vec<Bytes>> {
        let touched: Vec<&str> = keys.iter().map(String::as_str).collect();
        serve!(
            self,
            self.primary.get_or_init(keys, inits),
            &touched,
            None,
            |m| m.get_or_init(keys, inits)
        )
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.primary_only(self.primary.create(key, value, ttl))
            .await
    }

    async fn get_for_update(&self, key: &str) -> Result<Option<Bytes>> {
        self.primary_only(self.primary.get_for_update(key)).await
    }

    async fn set_if_eq(
        &self,
        key: &str,
        expected: Bytes,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.primary_only(self.primary.set_if_eq(key, expected, value, ttl))
            .await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        self.primary_only(self.primary.incr(key, by, ttl)).await
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        serve!(
            self,
            self.primary.set_nx(key, value.clone(), ttl),
            &[key],
            None,
            |m| m.set_nx(key, value.clone(), ttl),
            if = |set: &bool| *set
        )
    }

    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool> {
        serve!(
            self,
            self.primary.del_if_eq(key, value.clone()),
            &[key],
            None,
            |m| m.del_if_eq(key, value.clone()),
            if = |deleted: &bool| *deleted
        )
    }

    async fn del(&self, keys: &[String]) -> Result<u64> {
        let touched: Vec<&str> = keys.iter().map(String::as_str).collect();
        serve!(self, self.primary.del(keys), &touched, None, |m| m
            .del(keys))
    }

    // Memory holds only the outage's writes: it cannot hand out (and delete) a value
    // Redis holds, and answering "absent" would be a guess.
    async fn get_del(&self, key: &str) -> Result<Option<Bytes>> {
        self.primary_only(self.primary.get_del(key)).await
    }

    // TTL reads and changes are about keys Redis holds: memory, which holds only what
    // was written during the outage, cannot answer them, and a change made there would
    // be replayed as a delete of the real key. Both are `Unavailable` during an outage.
    async fn pttl(&self, key: &str) -> Result<Option<Option<Duration>>> {
        self.primary_only(self.primary.pttl(key)).await
    }

    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        self.primary_only(self.primary.expire(key, ttl)).await
    }

    async fn scan(&self, pattern: &str, cursor: Option<&str>, count: usize) -> Result<ScanPage> {
        // A cursor from Redis means nothing to memory and vice versa: a listing that spans
        // a switch restarts from the start of the other store (keys may repeat, none lost).
        let memory_cursor = cursor.filter(|c| c.parse::<u64>().is_err());
        serve!(
            self,
            self.primary.scan(pattern, cursor, count),
            &[],
            None,
            |m| m.scan(pattern, memory_cursor, count)
        )
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        serve!(
            self,
            self.primary.delete_matching(pattern),
            &[],
            Some(pattern),
            |m| m.delete_matching(pattern)
        )
    }

    async fn sizes(&self, keys: &[String]) -> Result<Vec<u64>> {
        serve!(self, self.primary.sizes(keys), &[], None, |m| m.sizes(keys))
    }

    async fn ping(&self) -> Result<Duration> {
        // Ping always asks Redis itself: it is how callers learn the real state.
        self.primary.ping().await
    }

    async fn stats(&self) -> Result<StoreStats> {
        let state = self.state();
        if state == BackendState::Connected
            && let Ok(s) = self.primary.stats().await
        {
            return Ok(s);
        }
        let mut stats = match &self.memory {
            Some(m) => Kv::stats(m).await?,
            None => StoreStats {
                keys: 0,
                bytes: 0,
                evictions: 0,
                state,
                evicting_policy: None,
            },
        };
        stats.state = state;
        Ok(stats)
    }

    fn state(&self) -> BackendState {
        match self.mode() {
            HEALTHY => BackendState::Connected,
            DEGRADED => BackendState::Degraded,
            _ => BackendState::Recovering,
        }
    }
}

#[async_trait]
impl Coord for FallbackStore {
    async fn rate_limit(&self, key: &str, limit: &Limit) -> Result<Decision> {
        // Rate limits fail closed: one process's memory knows nothing of the budget spent
        // before the outage or by other instances, so it would hand out a fresh one, and
        // replaying its state would overwrite Redis's. While Redis is down: `Unavailable`.
        self.primary_only(self.primary.rate_limit(key, limit)).await
    }

    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        // Locks fail closed: a lock taken in one process's memory excludes no other
        // process, and a fence counter restarted in memory would break the promise that
        // fences only grow. While Redis is down, acquiring is `Unavailable`.
        self.primary_only(self.primary.lock_acquire(key, fence_key, token, ttl))
            .await
    }

    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool> {
        self.primary_only(self.primary.lock_extend(key, token, ttl))
            .await
    }

    async fn lock_release(&self, key: &str, token: Bytes) -> Result<bool> {
        // Memory never holds a lock (acquiring fails closed), so it cannot say whether
        // `token` holds one in Redis: answering "not held" would be a guess.
        self.primary_only(self.primary.lock_release(key, token))
            .await
    }

    // Index sets fail closed: memory would hold only the outage's members, so listing or
    // ending "every session of a user" from it would miss those Redis holds and report
    // them ended, and members added in memory would never reach Redis's set.
    async fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        self.primary_only(self.primary.index_add(key, member, ttl))
            .await
    }

    async fn index_members(&self, key: &str) -> Result<Vec<String>> {
        self.primary_only(self.primary.index_members(key)).await
    }

    async fn index_remove(&self, key: &str, members: &[String]) -> Result<()> {
        self.primary_only(self.primary.index_remove(key, members))
            .await
    }

    // Streams and queues have no memory fallback: a message accepted into one process's
    // memory while Redis is down would be lost to every other consumer (see `queue`).
    async fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> Result<String> {
        self.primary_only(self.primary.stream_add(key, payload, max_len))
            .await
    }

    async fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>> {
        self.primary_only(self.primary.stream_range(key, after, count))
            .await
    }

    async fn queue_push(&self, key: &str, payload: Bytes) -> Result<String> {
        self.primary_only(self.primary.queue_push(key, payload))
            .await
    }

    async fn queue_claim(
        &self,
        key: &str,
        dlq: &str,
        consumer: &str,
        count: usize,
        opts: &ClaimOptions,
    ) -> Result<Vec<QueueMessage>> {
        self.primary_only(self.primary.queue_claim(key, dlq, consumer, count, opts))
            .await
    }

    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64> {
        self.primary_only(self.primary.queue_ack(key, ids)).await
    }

    async fn queue_dead(&self, key: &str, dlq: &str, count: usize) -> Result<Vec<QueueMessage>> {
        self.primary_only(self.primary.queue_dead(key, dlq, count))
            .await
    }

    async fn queue_stats(&self, key: &str, dlq: &str) -> Result<QueueStats> {
        self.primary_only(self.primary.queue_stats(key, dlq)).await
    }

    async fn queue_dead_take(
        &self,
        key: &str,
        dlq: &str,
        id: &str,
        requeue: bool,
    ) -> Result<Option<String>> {
        self.primary_only(self.primary.queue_dead_take(key, dlq, id, requeue))
            .await
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<u64> {
        // No memory equivalent: while Redis is down the caller delivers locally.
        self.primary_only(self.primary.publish(channel, payload))
            .await
    }

    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        serve!(
            self,
            self.primary.presence_beat(key, member, ttl),
            NOT_REPLAYED,
            None,
            |m| m.presence_beat(key, member, ttl)
        )
    }

    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool> {
        serve!(
            self,
            self.primary.presence_leave(key, member),
            NOT_REPLAYED,
            None,
            |m| m.presence_leave(key, member)
        )
    }

    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>> {
        serve!(self, self.primary.presence_list(key), &[], None, |m| m
            .presence_list(key))
    }
}
