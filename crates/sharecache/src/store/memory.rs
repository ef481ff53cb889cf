//! The embedded in-memory store: bounded by bytes and by entries, per-entry TTL.
//!
//! Built on `quick_cache` (S3-FIFO-like CLOCK eviction, sharded, lock per shard): get and
//! set are O(1) and never walk other entries. `docs/decisions/0001-memory-engine.md`
//! records the measured comparison with moka that chose it.
//!
//! Expiry is lazy: an expired entry is never returned (every read checks its deadline) and
//! it is reclaimed when read, overwritten, or evicted as a cold entry. There is no sweeper
//! walking the map. Both bounds hold at all times: each entry weighs at least
//! `max_bytes / max_entries`, so the byte budget also caps the number of entries.

use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use crate::error::{Error, ErrorKind, Result};
use crate::key::glob_match;

/// Fixed per-entry overhead counted in the byte budget (map slot, header, bookkeeping).
const ENTRY_OVERHEAD: u64 = 64;

/// Limits of a memory store.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    /// Byte budget for keys, values and per-entry overhead.
    pub max_bytes: u64,
    /// Most entries held at once.
    pub max_entries: u64,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            max_entries: 1_000_000,
        }
    }
}

/// Time source: the system's monotonic clock, or a manual one for tests.
///
/// On Linux the system clock is `CLOCK_MONOTONIC_COARSE` (a vDSO read of the last tick,
/// ~5 ns, 1-4 ms resolution) instead of `Instant::now()` (~27 ns here): every get reads
/// the clock to check the deadline, and a TTL a few milliseconds early is fine for a
/// cache (Redis' own expiry is no more precise).
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    System(u64),
    #[cfg_attr(not(test), allow(dead_code))]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub(crate) fn system() -> Self {
        Clock::System(coarse_now_ms())
    }

    /// Milliseconds since the clock's origin, never 0 (0 means "no deadline").
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Clock::System(origin) => coarse_now_ms().saturating_sub(*origin) + 1,
            Clock::Manual(ms) => ms.load(Ordering::Relaxed) + 1,
        }
    }
}

/// Monotonic milliseconds from an arbitrary origin.
#[cfg(target_os = "linux")]
#[inline]
fn coarse_now_ms() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE) {
        Ok(t) => t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000,
        Err(_) => fallback_now_ms(),
    }
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn coarse_now_ms() -> u64 {
    fallback_now_ms()
}

#[cfg_attr(target_os = "linux", allow(dead_code))]
fn fallback_now_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// `ms-seq` stream ids as a comparable pair.
pub(crate) fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) value: Bytes,
    /// Deadline in clock milliseconds; 0 = never expires.
    expires_at: u64,
}

#[derive(Clone)]
struct EntryWeighter {
    min_weight: u64,
}

impl Weighter<String, Entry> for EntryWeighter {
    #[inline]
    fn weight(&self, key: &String, val: &Entry) -> u64 {
        (key.len() as u64 + val.value.len() as u64 + ENTRY_OVERHEAD).max(self.min_weight)
    }
}

/// Counts evictions. quick_cache also reports the value an insert replaces through
/// `on_evict`, so an insert passes the hash of its own key and that one is not counted.
/// Items rejected for size never reach here (set refuses them first).
#[derive(Clone, Default)]
struct EvictionCounter {
    hasher: DefaultHashBuilder,
}

#[derive(Default)]
struct InsertState {
    /// Hash of the key being inserted (its old value is replaced, not evicted).
    inserting: u64,
    evicted: u64,
}

impl Lifecycle<String, Entry> for EvictionCounter {
    type RequestState = InsertState;

    #[inline]
    fn on_evict(&self, state: &mut InsertState, key: String, _val: Entry) {
        if self.hasher.hash_one(&key) != state.inserting {
            state.evicted += 1;
        }
    }
}

type Map = QuickCache<String, Entry, EntryWeighter, DefaultHashBuilder, EvictionCounter>;

/// The bounded in-memory store. All operations are synchronous and non-blocking apart
/// from a shard lock held for the length of one map operation.
pub(crate) struct MemoryStore {
    map: Map,
    clock: Clock,
    evictions: Arc<AtomicU64>,
    lifecycle: EvictionCounter,
    /// Serializes the rare compare-and-set operations (leases) against each other.
    cas: parking_lot::Mutex<()>,
    /// Durable event streams of the embedded store (capped per stream).
    streams: parking_lot::Mutex<
        std::collections::HashMap<String, std::collections::VecDeque<(String, Bytes)>>,
    >,
    /// Work queues of the embedded store (not part of the byte budget: bounded per queue).
    queues: parking_lot::Mutex<std::collections::HashMap<String, crate::queue::MemQueue>>,
    weighter: EntryWeighter,
    /// Largest weight one entry may have (a shard's capacity).
    max_entry_weight: u64,
    limits: MemoryLimits,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub(crate) fn new(limits: MemoryLimits) -> Result<Self> {
        Self::with_clock(limits, Clock::system())
    }

    pub(crate) fn with_clock(limits: MemoryLimits, clock: Clock) -> Result<Self> {
        if limits.max_bytes < 4096 || limits.max_entries == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "memory store limits too small: max_bytes must be >= 4096 and max_entries >= 1",
            ));
        }
        let min_weight = limits.max_bytes.div_ceil(limits.max_entries).max(1);
        // quick_cache splits the budget across shards and refuses an item heavier than a
        // shard. Use fewer shards for small budgets so a shard holds at least 1/8 of it.
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (cores * 4).next_power_of_two().clamp(1, 64);
        let shards = if limits.max_bytes < (64 << 20) {
            shards.min(8)
        } else {
            shards
        };
        let lifecycle = EvictionCounter::default();
        let weighter = EntryWeighter { min_weight };
        let estimated = (limits.max_entries.min(limits.max_bytes / 256).max(16)) as usize;
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(limits.max_bytes)
            .shards(shards)
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("memory store options: {e:?}")))?;
        let map = Map::with_options(
            options,
            weighter.clone(),
            DefaultHashBuilder::default(),
            lifecycle.clone(),
        );
        let max_entry_weight = map.shard_capacity();
        Ok(Self {
            map,
            clock,
            evictions: Arc::new(AtomicU64::new(0)),
            lifecycle,
            cas: parking_lot::Mutex::new(()),
            queues: parking_lot::Mutex::new(std::collections::HashMap::new()),
            streams: parking_lot::Mutex::new(std::collections::HashMap::new()),
            weighter,
            max_entry_weight,
            limits,
        })
    }

    #[inline]
    fn live(&self, e: &Entry, now: u64) -> bool {
        e.expires_at == 0 || e.expires_at > now
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let e = self.map.get(key)?;
        if self.live(&e, self.clock.now_ms()) {
            Some(e.value)
        } else {
            self.map
                .remove_if(key, |e| !self.live(e, self.clock.now_ms()));
            None
        }
    }

    /// The value and its remaining time to live (`None` = no expiry).
    pub(crate) fn get_with_ttl(&self, key: &str) -> Option<(Bytes, Option<Duration>)> {
        let e = self.map.get(key)?;
        let now = self.clock.now_ms();
        if !self.live(&e, now) {
            return None;
        }
        let ttl = (e.expires_at != 0).then(|| Duration::from_millis(e.expires_at - now));
        Some((e.value, ttl))
    }

    pub(crate) fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let expires_at = match ttl {
            Some(t) => self
                .clock
                .now_ms()
                .saturating_add(t.as_millis().max(1) as u64),
            None => 0,
        };
        let entry = Entry { value, expires_at };
        let key = key.to_owned();
        let weight = self.weighter.weight(&key, &entry);
        if weight > self.max_entry_weight {
            // Refuse rather than let the map drop it silently.
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                format!(
                    "entry of {weight} bytes does not fit the memory store (at most {} bytes per \
                     entry with max_bytes = {}); raise the memory budget or store less",
                    self.max_entry_weight, self.limits.max_bytes
                ),
            ));
        }
        let mut state = InsertState {
            inserting: self.lifecycle.hasher.hash_one(&key),
            evicted: 0,
        };
        self.map.insert_with_lifecycle(key, entry, &mut state);
        if state.evicted > 0 {
            self.evictions.fetch_add(state.evicted, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Stores `value` only if `key` has no live value (compare-and-set under `cas`).
    pub(crate) fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let _g = self.cas.lock();
        if self.get(key).is_some() {
            return Ok(false);
        }
        self.set(key, value, Some(ttl)).map(|()| true)
    }

    /// One GCRA step on the TAT kept at `key`, with the wall clock (ms since the epoch,
    /// like Redis `TIME`, so a replay into Redis after an outage stays meaningful).
    pub(crate) fn rate_limit(
        &self,
        key: &str,
        limit: &crate::ratelimit::Limit,
    ) -> Result<crate::ratelimit::Decision> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let _g = self.cas.lock();
        let stored = self.get(key);
        let text = stored.as_deref().and_then(|b| std::str::from_utf8(b).ok());
        let (decision, store) = match limit.algorithm {
            crate::ratelimit::Algorithm::SlidingWindow => {
                let state = text.and_then(|t| {
                    let mut it = t.split(',').map(|p| p.parse::<u64>().ok());
                    Some((it.next()??, it.next()??, it.next()??))
                });
                let (d, s) = crate::ratelimit::sliding_window(state, now, limit);
                (d, s.map(|((w, p, c), ttl)| (format!("{w},{p},{c}"), ttl)))
            }
            _ => {
                let tat = text.and_then(|t| t.parse::<u64>().ok());
                let (d, s) = crate::ratelimit::gcra(tat, now, limit);
                (d, s.map(|(t, ttl)| (t.to_string(), ttl)))
            }
        };
        if let Some((value, ttl_ms)) = store {
            self.set(key, Bytes::from(value), Some(Duration::from_millis(ttl_ms)))?;
        }
        Ok(decision)
    }

    /// Takes a lock and draws its next fence (see `Backend::lock_acquire`).
    pub(crate) fn lock_acquire(
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
        let fence = self
            .get(fence_key)
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        self.set(fence_key, Bytes::from(fence.to_string()), None)?;
        self.set(key, token, Some(ttl))?;
        Ok(Some(fence))
    }

    fn wall_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

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

    pub(crate) fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let _g = self.cas.lock();
        let now = Self::wall_ms();
        let mut set = self.presence_load(key);
        set.retain(|_, exp| *exp > now);
        set.insert(member.to_owned(), now + ttl.as_millis().max(1) as u64);
        self.presence_store(key, &set, now)
    }

    pub(crate) fn presence_leave(&self, key: &str, member: &str) -> Result<bool> {
        let _g = self.cas.lock();
        let now = Self::wall_ms();
        let mut set = self.presence_load(key);
        let was = set.remove(member).is_some_and(|exp| exp > now);
        set.retain(|_, exp| *exp > now);
        self.presence_store(key, &set, now)?;
        Ok(was)
    }

    pub(crate) fn presence_list(&self, key: &str) -> Vec<(String, Duration)> {
        let now = Self::wall_ms();
        let mut v: Vec<(String, Duration)> = self
            .presence_load(key)
            .into_iter()
            .filter(|(_, exp)| *exp > now)
            .map(|(m, exp)| (m, Duration::from_millis(exp - now)))
            .collect();
        v.sort_by_key(|(m, left)| (*left, m.clone()));
        v
    }

    /// An index set is one entry holding a JSON list, under the CAS lock.
    pub(crate) fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
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

    pub(crate) fn index_members(&self, key: &str) -> Vec<String> {
        self.get(key)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(crate) fn index_remove(&self, key: &str, members: &[String]) -> Result<()> {
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
    pub(crate) fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> String {
        let mut streams = self.streams.lock();
        let s = streams.entry(key.to_owned()).or_default();
        let now = Self::wall_ms();
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
        id
    }

    pub(crate) fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Vec<(String, Bytes)> {
        let after = after.and_then(parse_stream_id);
        let streams = self.streams.lock();
        let Some(s) = streams.get(key) else {
            return Vec::new();
        };
        s.iter()
            .filter(|(id, _)| after.is_none_or(|a| parse_stream_id(id).is_some_and(|i| i > a)))
            .take(count)
            .cloned()
            .collect()
    }

    /// Runs `f` on the in-memory queue at `key` (created on first use).
    pub(crate) fn queue<T>(
        &self,
        key: &str,
        f: impl FnOnce(&mut crate::queue::MemQueue, u64) -> Result<T>,
    ) -> Result<T> {
        let mut queues = self.queues.lock();
        let q = queues.entry(key.to_owned()).or_default();
        f(q, Self::wall_ms())
    }

    /// Extends a lock held by `token`.
    pub(crate) fn lock_extend(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool> {
        let _g = self.cas.lock();
        match self.get(key) {
            Some(v) if v[..] == *token => self.set(key, v, Some(ttl)).map(|()| true),
            _ => Ok(false),
        }
    }

    /// Deletes `key` only if it holds `value`.
    pub(crate) fn del_if_eq(&self, key: &str, value: &[u8]) -> bool {
        let _g = self.cas.lock();
        match self.get(key) {
            Some(v) if v[..] == *value => self.del(key),
            _ => false,
        }
    }

    pub(crate) fn del(&self, key: &str) -> bool {
        match self.map.remove(key) {
            Some((_, e)) => self.live(&e, self.clock.now_ms()),
            None => false,
        }
    }

    /// Bytes the entry weighs in the budget, 0 if absent.
    pub(crate) fn size_of(&self, key: &str) -> u64 {
        self.map.get(key).map_or(0, |e| {
            if self.live(&e, self.clock.now_ms()) {
                self.weighter.weight(&key.to_owned(), &e)
            } else {
                0
            }
        })
    }

    pub(crate) fn exists(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// One page of keys matching `pattern`, in key order, after `cursor` (exclusive).
    /// Returns the keys and the cursor for the next page (`None` when done).
    ///
    /// Walks the whole map: O(n log count) per page. Fine for listing and admin work,
    /// which is what SCAN is for; never used on the get/set path.
    pub(crate) fn scan(
        &self,
        pattern: &str,
        after: Option<&str>,
        count: usize,
    ) -> (Vec<String>, Option<String>) {
        let now = self.clock.now_ms();
        let count = count.max(1);
        // Max-heap of the `count` smallest matching keys greater than `after`.
        let mut heap: BinaryHeap<String> = BinaryHeap::with_capacity(count + 1);
        for (k, e) in self.map.iter() {
            if !self.live(&e, now) || after.is_some_and(|a| k.as_str() <= a) {
                continue;
            }
            if heap.len() == count && heap.peek().is_some_and(|top| &k >= top) {
                continue;
            }
            if !glob_match(pattern.as_bytes(), k.as_bytes()) {
                continue;
            }
            heap.push(k);
            if heap.len() > count {
                heap.pop();
            }
        }
        let full = heap.len() == count;
        let keys = heap.into_sorted_vec();
        let next = if full { keys.last().cloned() } else { None };
        (keys, next)
    }

    /// Deletes every live key matching `pattern`; returns how many.
    pub(crate) fn delete_matching(&self, pattern: &str) -> u64 {
        let now = self.clock.now_ms();
        let deleted = AtomicU64::new(0);
        self.map.retain(|k, e| {
            if glob_match(pattern.as_bytes(), k.as_bytes()) {
                if self.live(e, now) {
                    deleted.fetch_add(1, Ordering::Relaxed);
                }
                false
            } else {
                true
            }
        });
        deleted.into_inner()
    }

    pub(crate) fn clear(&self) {
        self.map.clear();
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub(crate) fn weight(&self) -> u64 {
        self.map.weight()
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual() -> (Clock, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(0));
        (Clock::Manual(t.clone()), t)
    }

    #[test]
    fn ttl_expiry_on_a_manual_clock() {
        let (clock, t) = manual();
        let m = MemoryStore::with_clock(MemoryLimits::default(), clock).unwrap();
        m.set(
            "a",
            Bytes::from_static(b"1"),
            Some(Duration::from_millis(100)),
        )
        .unwrap();
        m.set("b", Bytes::from_static(b"2"), None).unwrap();
        t.store(99, Ordering::Relaxed);
        assert!(m.get("a").is_some());
        assert_eq!(
            m.get_with_ttl("a").unwrap().1,
            Some(Duration::from_millis(1))
        );
        t.store(100, Ordering::Relaxed);
        assert!(m.get("a").is_none());
        assert!(!m.exists("a"));
        assert!(!m.del("a"));
        assert_eq!(m.get_with_ttl("b").unwrap().1, None);
        t.store(1_000_000, Ordering::Relaxed);
        assert!(m.get("b").is_some());
    }

    #[test]
    fn bounded_by_entries_and_by_bytes() {
        let m = MemoryStore::new(MemoryLimits {
            max_bytes: 1 << 20,
            max_entries: 1000,
        })
        .unwrap();
        for i in 0..10_000 {
            m.set(&format!("k{i}"), Bytes::from_static(b"v"), None)
                .unwrap();
        }
        assert!(m.len() <= 1000, "{} entries", m.len());
        assert!(m.evictions() >= 9000 - 100, "{} evictions", m.evictions());

        let m = MemoryStore::new(MemoryLimits {
            max_bytes: 1 << 20,
            max_entries: 1_000_000,
        })
        .unwrap();
        let v = Bytes::from(vec![7u8; 10_000]);
        for i in 0..1000 {
            m.set(&format!("k{i}"), v.clone(), None).unwrap();
        }
        assert!(m.weight() <= 1 << 20, "weight {}", m.weight());
        assert!(m.len() <= 105, "{} entries of 10 KB in 1 MiB", m.len());
    }

    #[test]
    fn overwrites_are_not_evictions() {
        let m = MemoryStore::new(MemoryLimits {
            max_bytes: 1 << 20,
            max_entries: 2000,
        })
        .unwrap();
        for round in 0..50 {
            for i in 0..1000 {
                m.set(&format!("k{i}"), Bytes::from(vec![round as u8; 10]), None)
                    .unwrap();
            }
        }
        assert_eq!(
            m.evictions(),
            0,
            "1000 keys overwritten 50 times in room for 2000"
        );
        assert_eq!(m.len(), 1000);
    }

    #[test]
    fn refuses_an_entry_bigger_than_a_shard() {
        let m = MemoryStore::new(MemoryLimits {
            max_bytes: 1 << 20,
            max_entries: 100,
        })
        .unwrap();
        let e = m
            .set("big", Bytes::from(vec![0u8; 2 << 20]), None)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueTooLarge);
        assert!(m.get("big").is_none());
    }

    #[test]
    fn scan_pages_in_order_and_skips_expired() {
        let (clock, t) = manual();
        let m = MemoryStore::with_clock(MemoryLimits::default(), clock).unwrap();
        for i in 0..25 {
            m.set(&format!("ns:{i:02}"), Bytes::from_static(b"v"), None)
                .unwrap();
        }
        m.set(
            "ns:zz",
            Bytes::from_static(b"v"),
            Some(Duration::from_millis(5)),
        )
        .unwrap();
        m.set("other:1", Bytes::from_static(b"v"), None).unwrap();
        t.store(10, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (keys, next) = m.scan("ns:*", cursor.as_deref(), 10);
            all.extend(keys);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let want: Vec<String> = (0..25).map(|i| format!("ns:{i:02}")).collect();
        assert_eq!(all, want);
        assert_eq!(m.delete_matching("ns:1*"), 10);
        assert_eq!(m.delete_matching("ns:*"), 15);
        assert!(m.get("other:1").is_some());
    }
}
