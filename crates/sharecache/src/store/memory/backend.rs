//! [`Kv`] and [`Coord`] for the memory store: the async face of its synchronous
//! operations (see the parent module and `coord`).
//!
//! **Guarantee**: a memory call never returns `Pending` on its own, so the hot ones
//! (get, get with TTL, set) spend cooperative budget: a caller's tight loop yields now
//! and then instead of starving other tasks.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::MemoryStore;
use crate::error::Result;
use crate::queue::{ClaimOptions, QueueMessage};
use crate::ratelimit::{Decision, Limit};
use crate::store::{BackendState, Coord, Kv, ScanPage, StoreStats};

#[async_trait]
impl Kv for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        // Never Pending otherwise: let a tight loop of gets yield now and then.
        tokio::task::consume_budget().await;
        Ok(MemoryStore::get(self, key))
    }
    async fn get_with_ttl(&self, key: &str) -> Result<(Option<Bytes>, Option<Duration>)> {
        tokio::task::consume_budget().await;
        Ok(match MemoryStore::get_with_ttl(self, key) {
            Some((v, ttl)) => (Some(v), ttl),
            None => (None, None),
        })
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        tokio::task::consume_budget().await;
        MemoryStore::set(self, key, value, ttl)
    }
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys.iter().map(|k| MemoryStore::get(self, k)).collect())
    }
    async fn mset(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (k, v) in items {
            MemoryStore::set(self, k, v.clone(), ttl)?;
        }
        Ok(())
    }
    async fn get_or_init(&self, keys: &[String], inits: &[Bytes]) -> Result<Vec<Bytes>> {
        keys.iter()
            .zip(inits)
            .map(|(k, init)| match MemoryStore::get(self, k) {
                Some(v) => Ok(v),
                None => MemoryStore::set(self, k, init.clone(), None).map(|()| init.clone()),
            })
            .collect()
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        MemoryStore::set_nx(self, key, value, ttl)
    }
    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool> {
        Ok(MemoryStore::del_if_eq(self, key, &value))
    }
    async fn del(&self, keys: &[String]) -> Result<u64> {
        Ok(keys.iter().filter(|k| MemoryStore::del(self, k)).count() as u64)
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(MemoryStore::exists(self, key))
    }
    async fn scan(&self, pattern: &str, cursor: Option<&str>, count: usize) -> Result<ScanPage> {
        let (keys, cursor) = MemoryStore::scan(self, pattern, cursor, count);
        Ok(ScanPage { keys, cursor })
    }
    async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        Ok(MemoryStore::delete_matching(self, pattern))
    }
    async fn sizes(&self, keys: &[String]) -> Result<Vec<u64>> {
        Ok(keys.iter().map(|k| MemoryStore::size_of(self, k)).collect())
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

#[async_trait]
impl Coord for MemoryStore {
    async fn rate_limit(&self, key: &str, limit: &Limit) -> Result<Decision> {
        MemoryStore::rate_limit(self, key, limit)
    }
    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        MemoryStore::lock_acquire(self, key, fence_key, token, ttl)
    }
    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool> {
        MemoryStore::lock_extend(self, key, &token, ttl)
    }
    async fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        MemoryStore::index_add(self, key, member, ttl)
    }
    async fn index_members(&self, key: &str) -> Result<Vec<String>> {
        Ok(MemoryStore::index_members(self, key))
    }
    async fn index_remove(&self, key: &str, members: &[String]) -> Result<()> {
        MemoryStore::index_remove(self, key, members)
    }
    async fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> Result<String> {
        Ok(MemoryStore::stream_add(self, key, payload, max_len))
    }
    async fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>> {
        Ok(MemoryStore::stream_range(self, key, after, count))
    }
    async fn queue_push(&self, key: &str, payload: Bytes) -> Result<String> {
        MemoryStore::queue(self, key, |q, now| q.push(payload, now))
    }
    async fn queue_claim(
        &self,
        key: &str,
        _dlq: &str,
        _consumer: &str,
        count: usize,
        opts: &ClaimOptions,
    ) -> Result<Vec<QueueMessage>> {
        MemoryStore::queue(self, key, |q, now| Ok(q.claim(count, opts, now)))
    }
    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64> {
        MemoryStore::queue(self, key, |q, _| Ok(q.ack(ids)))
    }
    async fn queue_dead(&self, key: &str, _dlq: &str, count: usize) -> Result<Vec<QueueMessage>> {
        // In memory the dead letters live with their queue.
        MemoryStore::queue(self, key, |q, _| Ok(q.dead(count)))
    }
    async fn publish(&self, _channel: &str, _payload: Bytes) -> Result<u64> {
        // The memory store has no remote subscribers: the hub delivers locally.
        Ok(0)
    }
    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        MemoryStore::presence_beat(self, key, member, ttl)
    }
    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool> {
        MemoryStore::presence_leave(self, key, member)
    }
    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>> {
        Ok(MemoryStore::presence_list(self, key))
    }
}
