//! [`Kv`] for the memory store: the async face of the map's synchronous operations
//! (the parent module). [`Coord`](crate::store::Coord) is in `coord`.
//!
//! **Guarantee**: a memory call never returns `Pending` on its own, so the hot ones
//! (get, get with TTL, set) spend cooperative budget: a caller's tight loop yields now
//! and then instead of starving other tasks.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::MemoryStore;
use crate::error::Result;
use crate::store::{BackendState, Kv, ScanPage, StoreStats};

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
        MemoryStore::set_all(
            self,
            items.iter().map(|(k, v)| (k.as_str(), v.clone())),
            ttl,
        )
    }
    async fn get_or_init(&self, keys: &[String], inits: &[Bytes]) -> Result<Vec<Bytes>> {
        // All the missing ones stored at once, or none.
        let held: Vec<Option<Bytes>> = keys.iter().map(|k| MemoryStore::get(self, k)).collect();
        let missing = keys
            .iter()
            .zip(inits)
            .zip(&held)
            .filter(|(_, h)| h.is_none());
        MemoryStore::set_all(
            self,
            missing.map(|((k, init), _)| (k.as_str(), init.clone())),
            None,
        )?;
        Ok(held
            .into_iter()
            .zip(inits)
            .map(|(h, init)| h.unwrap_or_else(|| init.clone()))
            .collect())
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        MemoryStore::set_nx(self, key, value, ttl)
    }
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        MemoryStore::incr(self, key, by, ttl)
    }
    async fn set_if_eq(
        &self,
        key: &str,
        expected: Bytes,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        MemoryStore::set_if_eq(self, key, &expected, value, ttl)
    }
    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool> {
        Ok(MemoryStore::del_if_eq(self, key, &value))
    }
    async fn del(&self, keys: &[String]) -> Result<u64> {
        Ok(keys.iter().filter(|k| MemoryStore::del(self, k)).count() as u64)
    }
    async fn get_del(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(MemoryStore::take(self, key))
    }
    async fn pttl(&self, key: &str) -> Result<Option<Option<Duration>>> {
        Ok(MemoryStore::get_with_ttl(self, key).map(|(_, ttl)| ttl))
    }
    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        MemoryStore::expire(self, key, ttl)
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
            evicting_policy: None,
        })
    }
    fn state(&self) -> BackendState {
        BackendState::Memory
    }
}
