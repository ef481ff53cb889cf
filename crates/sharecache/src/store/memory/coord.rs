//! The memory store's coordination state: rate limits, locks and fences, presence sets,
//! index sets, capped event streams and work queues.
//!
//! Each structure that lives in a map entry (rate-limit state, lock, fence, presence,
//! index) is read and rewritten under the store's compare-and-set lock, so one step is
//! atomic against every other step, as the Redis scripts are on the server. Streams and
//! queues are kept beside the map (bounded per stream and per queue, outside the byte
//! budget).
//!
//! This is the memory store's [`Coord`] implementation itself: the fallback and the
//! embedded backend both call it, so there is one copy of each step.
//!
//! **Guarantee**: every time reading here comes from the store's [`Clock`](super::Clock)
//! (`wall_ms`), never from the system directly, so a manual clock drives expiry, rate
//! limits, presence and ids alike.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::MemoryStore;
use super::queue::MemQueue;
use crate::error::{Error, ErrorKind, Result};
use crate::queue::{ClaimOptions, QueueMessage, QueueStats};
use crate::ratelimit::{Algorithm, Decision, Limit, gcra, sliding_window};
use crate::store::Coord;

/// `ms-seq` stream ids as a comparable pair.
pub(crate) fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl MemoryStore {
    /// A presence set is one entry: a JSON map member -> expiry (wall ms). O(members) per
    /// call, under the CAS lock: fine for the embedded store; Redis uses a sorted set.
    fn presence_load(&self, key: &str) -> std::collections::BTreeMap<String, u64> {
        self.get(key)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn presence_store(
        &self,
        key: &str,
        set: &std::collections::BTreeMap<String, u64>,
        now: u64,
    ) -> Result<()> {
        match set.values().max() {
            None => {
                self.del(key);
                Ok(())
            }
            Some(&last) => {
                let bytes = serde_json::to_vec(set)
                    .map_err(|e| Error::new(ErrorKind::Encode, e.to_string()))?;
                self.set(
                    key,
                    Bytes::from(bytes),
                    Some(Duration::from_millis(last.saturating_sub(now).max(1))),
                )
            }
        }
    }

    /// Runs `f` on the in-memory queue at `key` (created on first use).
    fn queue<T>(&self, key: &str, f: impl FnOnce(&mut MemQueue, u64) -> Result<T>) -> Result<T> {
        let mut queues = self.queues.lock();
        let q = queues.entry(key.to_owned()).or_default();
        f(q, self.clock.wall_ms())
    }
}

#[async_trait]
impl Coord for MemoryStore {
    /// One rate-limit step on the state kept at `key`, with the store clock's wall
    /// reading (ms since the epoch, like Redis `TIME`, so a replay into Redis after an
    /// outage stays meaningful).
    async fn rate_limit(&self, key: &str, limit: &Limit) -> Result<Decision> {
        let now = self.clock.wall_ms();
        let _g = self.cas.lock();
        let stored = self.get(key);
        let text = stored.as_deref().and_then(|b| std::str::from_utf8(b).ok());
        let (decision, store) = match limit.algorithm {
            Algorithm::SlidingWindow => {
                let state = text.and_then(|t| {
                    let mut it = t.split(',').map(|p| p.parse::<u64>().ok());
                    Some((it.next()??, it.next()??, it.next()??))
                });
                let (d, s) = sliding_window(state, now, limit);
                (d, s.map(|((w, p, c), ttl)| (format!("{w},{p},{c}"), ttl)))
            }
            _ => {
                let tat = text.and_then(|t| t.parse::<u64>().ok());
                let (d, s) = gcra(tat, now, limit);
                (d, s.map(|(t, ttl)| (t.to_string(), ttl)))
            }
        };
        if let Some((value, ttl_ms)) = store {
            self.set(key, Bytes::from(value), Some(Duration::from_millis(ttl_ms)))?;
        }
        Ok(decision)
    }

    /// Takes a lock and draws its next fence (see `Backend::lock_acquire`).
    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        let _g = self.cas.lock();
        if self.get(key).is_some() {
            return Ok(None);
        }
        // max(counter + 1, the clock in µs), as the Redis script: the counter is an
        // ordinary entry the memory store may evict, and fences must still only grow.
        let fence = (self
            .get(fence_key)
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1)
        .max(self.clock.wall_ms().saturating_mul(1000));
        self.set(fence_key, Bytes::from(fence.to_string()), None)?;
        self.set(key, token, Some(ttl))?;
        Ok(Some(fence))
    }

    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let _g = self.cas.lock();
        let now = self.clock.wall_ms();
        let mut set = self.presence_load(key);
        set.retain(|_, exp| *exp > now);
        set.insert(member.to_owned(), now + ttl.as_millis().max(1) as u64);
        self.presence_store(key, &set, now)
    }

    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool> {
        let _g = self.cas.lock();
        let now = self.clock.wall_ms();
        let mut set = self.presence_load(key);
        let was = set.remove(member).is_some_and(|exp| exp > now);
        set.retain(|_, exp| *exp > now);
        self.presence_store(key, &set, now)?;
        Ok(was)
    }

    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>> {
        let now = self.clock.wall_ms();
        let mut v: Vec<(String, Duration)> = self
            .presence_load(key)
            .into_iter()
            .filter(|(_, exp)| *exp > now)
            .map(|(m, exp)| (m, Duration::from_millis(exp - now)))
            .collect();
        v.sort_by_key(|(m, left)| (*left, m.clone()));
        Ok(v)
    }

    /// An index set is one entry holding a JSON list, under the CAS lock.
    async fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let _g = self.cas.lock();
        let (mut set, left) = match self.get_with_ttl(key) {
            Some((b, left)) => (
                serde_json::from_slice::<Vec<String>>(&b).unwrap_or_default(),
                left,
            ),
            None => (Vec::new(), None),
        };
        if !set.iter().any(|m| m == member) {
            set.push(member.to_owned());
        }
        let ttl = left.map_or(ttl, |l| l.max(ttl));
        let bytes =
            serde_json::to_vec(&set).map_err(|e| Error::new(ErrorKind::Encode, e.to_string()))?;
        self.set(key, Bytes::from(bytes), Some(ttl))
    }

    async fn index_members(&self, key: &str) -> Result<Vec<String>> {
        Ok(self
            .get(key)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    async fn index_remove(&self, key: &str, members: &[String]) -> Result<()> {
        let _g = self.cas.lock();
        let Some((b, left)) = self.get_with_ttl(key) else {
            return Ok(());
        };
        let mut set: Vec<String> = serde_json::from_slice(&b).unwrap_or_default();
        set.retain(|m| !members.contains(m));
        if set.is_empty() {
            self.del(key);
            return Ok(());
        }
        let bytes =
            serde_json::to_vec(&set).map_err(|e| Error::new(ErrorKind::Encode, e.to_string()))?;
        self.set(key, Bytes::from(bytes), left)
    }

    /// Appends to the in-memory stream at `key`, keeping the last `max_len` entries.
    /// Ids are `ms-seq`, increasing like Redis stream ids.
    async fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> Result<String> {
        let mut streams = self.streams.lock();
        let s = streams.entry(key.to_owned()).or_default();
        let now = self.clock.wall_ms();
        let (last_ms, last_seq) = s
            .back()
            .map_or((0, 0), |(id, _)| parse_stream_id(id).unwrap_or((0, 0)));
        let id = if now > last_ms {
            format!("{now}-0")
        } else {
            format!("{last_ms}-{}", last_seq + 1)
        };
        s.push_back((id.clone(), payload));
        while s.len() > max_len {
            s.pop_front();
        }
        Ok(id)
    }

    async fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>> {
        let after = after.and_then(parse_stream_id);
        let streams = self.streams.lock();
        let Some(s) = streams.get(key) else {
            return Ok(Vec::new());
        };
        Ok(s.iter()
            .filter(|(id, _)| after.is_none_or(|a| parse_stream_id(id).is_some_and(|i| i > a)))
            .take(count)
            .cloned()
            .collect())
    }

    /// Extends a lock held by `token`.
    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool> {
        let _g = self.cas.lock();
        match self.get(key) {
            Some(v) if v == token => self.set(key, v, Some(ttl)).map(|()| true),
            _ => Ok(false),
        }
    }

    /// Releases a lock held by `token`.
    async fn lock_release(&self, key: &str, token: Bytes) -> Result<bool> {
        crate::store::Kv::del_if_eq(self, key, token).await
    }

    async fn queue_push(&self, key: &str, payload: Bytes) -> Result<String> {
        self.queue(key, |q, now| q.push(payload, now))
    }

    async fn queue_claim(
        &self,
        key: &str,
        _dlq: &str,
        _consumer: &str,
        count: usize,
        opts: &ClaimOptions,
    ) -> Result<Vec<QueueMessage>> {
        self.queue(key, |q, now| Ok(q.claim(count, opts, now)))
    }

    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64> {
        self.queue(key, |q, _| Ok(q.ack(ids)))
    }

    async fn queue_dead(&self, key: &str, _dlq: &str, count: usize) -> Result<Vec<QueueMessage>> {
        // In memory the dead letters live with their queue.
        self.queue(key, |q, _| Ok(q.dead(count)))
    }

    async fn queue_stats(&self, key: &str, _dlq: &str) -> Result<QueueStats> {
        self.queue(key, |q, _| Ok(q.stats()))
    }

    async fn queue_dead_take(
        &self,
        key: &str,
        _dlq: &str,
        id: &str,
        requeue: bool,
    ) -> Result<Option<String>> {
        self.queue(key, |q, now| q.dead_take(id, requeue, now))
    }

    async fn publish(&self, _channel: &str, _payload: Bytes) -> Result<u64> {
        // The memory store has no remote subscribers: the hub delivers locally.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::queue::ClaimOptions;
    use crate::ratelimit::{Algorithm, Limit};
    use crate::store::Coord;
    use crate::store::clock::Clock;
    use crate::store::memory::MemoryLimits;

    fn on_manual_clock() -> (MemoryStore, Arc<AtomicU64>) {
        let (clock, t) = Clock::manual();
        (
            MemoryStore::with_clock(MemoryLimits::default(), clock).unwrap(),
            t,
        )
    }

    fn advance(t: &AtomicU64, d: Duration) {
        t.fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }

    #[tokio::test]
    async fn gcra_refills_as_the_store_clock_advances() {
        let (m, t) = on_manual_clock();
        let l = Limit::per(2, Duration::from_secs(1));
        assert!(m.rate_limit("rl", &l).await.unwrap().allowed);
        assert!(m.rate_limit("rl", &l).await.unwrap().allowed);
        let refused = m.rate_limit("rl", &l).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        advance(&t, Duration::from_millis(499));
        assert!(!m.rate_limit("rl", &l).await.unwrap().allowed, "1 ms early");
        advance(&t, Duration::from_millis(1));
        assert!(
            m.rate_limit("rl", &l).await.unwrap().allowed,
            "refilled on time"
        );
    }

    #[tokio::test]
    async fn sliding_window_slides_with_the_store_clock() {
        let (m, t) = on_manual_clock();
        let l = Limit::per(2, Duration::from_secs(1)).algorithm(Algorithm::SlidingWindow);
        assert!(m.rate_limit("sw", &l).await.unwrap().allowed);
        assert!(m.rate_limit("sw", &l).await.unwrap().allowed);
        assert!(!m.rate_limit("sw", &l).await.unwrap().allowed);
        // One window later the previous one still weighs fully; two windows later it is
        // gone.
        advance(&t, Duration::from_secs(1));
        assert!(!m.rate_limit("sw", &l).await.unwrap().allowed);
        advance(&t, Duration::from_secs(1));
        assert!(m.rate_limit("sw", &l).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn presence_expires_on_the_store_clock() {
        let (m, t) = on_manual_clock();
        m.presence_beat("p", "a", Duration::from_millis(100))
            .await
            .unwrap();
        m.presence_beat("p", "b", Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(
            m.presence_list("p").await.unwrap(),
            vec![
                ("a".to_owned(), Duration::from_millis(100)),
                ("b".to_owned(), Duration::from_millis(300))
            ]
        );
        advance(&t, Duration::from_millis(100));
        assert_eq!(
            m.presence_list("p").await.unwrap(),
            vec![("b".to_owned(), Duration::from_millis(200))]
        );
        assert!(!m.presence_leave("p", "a").await.unwrap(), "a expired");
        assert!(m.presence_leave("p", "b").await.unwrap());
        assert!(m.presence_list("p").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn queue_visibility_and_stream_ids_follow_the_store_clock() {
        let (m, t) = on_manual_clock();
        let opts = ClaimOptions {
            visibility: Duration::from_secs(1),
            max_deliveries: 5,
        };
        m.queue_push("q", Bytes::from_static(b"job")).await.unwrap();
        let claim = || m.queue_claim("q", "dlq", "c", 1, &opts);
        let first = claim().await.unwrap();
        assert_eq!(first[0].deliveries, 1);
        advance(&t, Duration::from_millis(999));
        assert!(
            m.queue("q", |q, now| Ok(q.claim(1, &opts, now)))
                .unwrap()
                .is_empty()
        );
        advance(&t, Duration::from_millis(1));
        let again = claim().await.unwrap();
        assert_eq!(
            again[0].deliveries, 2,
            "redelivered after the visibility timeout"
        );

        let a = m
            .stream_add("s", Bytes::from_static(b"1"), 10)
            .await
            .unwrap();
        advance(&t, Duration::from_millis(5));
        let b = m
            .stream_add("s", Bytes::from_static(b"2"), 10)
            .await
            .unwrap();
        let (ams, _) = parse_stream_id(&a).unwrap();
        let (bms, _) = parse_stream_id(&b).unwrap();
        assert_eq!(bms - ams, 5, "{a} then {b}");
    }
}
