//! The embedded in-memory store: bounded by bytes and by entries, per-entry TTL. Used as
//! the backend of `Cache::builder().memory()` and as the Redis fallback.
//!
//! * this module: the map (values, TTLs, eviction, listing);
//! * `coord`: [`Coord`](super::Coord): rate limits, locks, presence and index sets,
//!   streams, queues;
//! * `queue`: the in-memory work queue;
//! * `kv`: [`Kv`](super::Kv) over the map.
//!
//! Built on `quick_cache` (S3-FIFO-like CLOCK eviction, sharded, lock per shard): get and
//! set are O(1) and never walk other entries. `docs/decisions/0001-memory-engine.md`
//! records the measured comparison with moka that chose it.
//!
//! Expiry is lazy: an expired entry is never returned (every read checks its deadline) and
//! it is reclaimed when read, overwritten, or evicted as a cold entry. There is no sweeper
//! walking the map. Both bounds hold at all times: each entry weighs at least
//! `max_bytes / max_entries`, so the byte budget also caps the number of entries.
//!
//! As the Redis fallback the store never evicts ([`MemoryStore::refusing`]): everything it
//! holds was acknowledged to a caller and replay writes it to Redis, so evicting one
//! tenant's write to make room for another's would lose it in both places. It keeps an
//! account per namespace instead and refuses (`FallbackFull`) a write that would take its
//! namespace past its share or the store past `max_bytes`; the map itself is sized so
//! that what the account admits never makes it evict.

mod coord;
mod kv;
mod queue;

use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use crate::error::{Error, ErrorKind, Result};
use crate::key::glob_match;
use crate::store::clock::Clock;

pub(crate) use coord::parse_stream_id;

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

/// The fallback's account: bytes held per namespace and in all ([`MemoryStore::refusing`]).
/// Every map change is made with its lock held (account first, then the map's shard), so
/// the account always equals the weight of the entries in the map.
struct Admission {
    namespace_max_bytes: u64,
    usage: parking_lot::Mutex<Usage>,
}

#[derive(Default)]
struct Usage {
    total: u64,
    per_namespace: std::collections::HashMap<String, u64>,
    /// When expired entries were last dropped to make room (clock ms).
    purged_at: u64,
}

impl Usage {
    fn add(&mut self, key: &str, weight: u64) {
        self.total += weight;
        let ns = crate::key::namespace_of(key);
        match self.per_namespace.get_mut(ns) {
            Some(n) => *n += weight,
            None => {
                self.per_namespace.insert(ns.to_owned(), weight);
            }
        }
    }

    fn sub(&mut self, key: &str, weight: u64) {
        self.total = self.total.saturating_sub(weight);
        let ns = crate::key::namespace_of(key);
        if let Some(n) = self.per_namespace.get_mut(ns) {
            *n = n.saturating_sub(weight);
            if *n == 0 {
                self.per_namespace.remove(ns);
            }
        }
    }
}

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
    queues: parking_lot::Mutex<std::collections::HashMap<String, queue::MemQueue>>,
    weighter: EntryWeighter,
    /// Largest weight one entry may have (a shard's capacity).
    max_entry_weight: u64,
    limits: MemoryLimits,
    /// Set for the Redis fallback: refuse rather than evict.
    admission: Option<Admission>,
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

    /// The Redis fallback's store: it never evicts, and refuses (`FallbackFull`) a write
    /// that would take its namespace past `namespace_max_bytes` or the store past
    /// `limits.max_bytes`.
    pub(crate) fn refusing(limits: MemoryLimits, namespace_max_bytes: u64) -> Result<Self> {
        Self::build(limits, Clock::system(), Some(namespace_max_bytes))
    }

    pub(crate) fn with_clock(limits: MemoryLimits, clock: Clock) -> Result<Self> {
        Self::build(limits, clock, None)
    }

    fn build(limits: MemoryLimits, clock: Clock, refuse_over: Option<u64>) -> Result<Self> {
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
        if let Some(n) = refuse_over
            && n < 4096
        {
            return Err(Error::new(
                ErrorKind::Config,
                "the fallback's per-namespace budget must be at least 4096 bytes",
            ));
        }
        // Refusing: one shard of twice the budget, which the account never lets fill, so
        // the map has no reason to evict.
        let (shards, capacity) = match refuse_over {
            Some(_) => (1, limits.max_bytes.saturating_mul(2)),
            None => (shards, limits.max_bytes),
        };
        let lifecycle = EvictionCounter::default();
        let weighter = EntryWeighter { min_weight };
        let estimated = (limits.max_entries.min(limits.max_bytes / 256).max(16)) as usize;
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(capacity)
            .shards(shards)
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("memory store options: {e:?}")))?;
        let map = Map::with_options(
            options,
            weighter.clone(),
            DefaultHashBuilder::default(),
            lifecycle.clone(),
        );
        let max_entry_weight = match refuse_over {
            Some(n) => n.min(limits.max_bytes),
            None => map.shard_capacity(),
        };
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
            admission: refuse_over.map(|n| Admission {
                namespace_max_bytes: n.min(limits.max_bytes),
                usage: parking_lot::Mutex::new(Usage::default()),
            }),
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
            let _account = self.admission.as_ref().map(|a| a.usage.lock());
            let removed = self
                .map
                .remove_if(key, |e| !self.live(e, self.clock.now_ms()));
            if let (Some(mut usage), Some((k, e))) = (_account, removed) {
                usage.sub(&k, self.weighter.weight(&k, &e));
            }
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
        let entry = self.prepare(key, value, self.deadline(ttl))?;
        self.insert_all([entry])
    }

    /// Stores every item with `ttl`: all of them, or (refused for size or, as the
    /// fallback, for room) none.
    pub(crate) fn set_all<'k>(
        &self,
        items: impl IntoIterator<Item = (&'k str, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let expires_at = self.deadline(ttl);
        let mut entries = items
            .into_iter()
            .map(|(key, value)| self.prepare(key, value, expires_at))
            .collect::<Result<Vec<_>>>()?;
        if self.admission.is_some() && entries.len() > 1 {
            // A key given twice: the last one is what it holds, and the only one booked.
            let mut last = std::collections::HashMap::new();
            for (i, (k, _, _)) in entries.iter().enumerate() {
                last.insert(k.clone(), i);
            }
            if last.len() < entries.len() {
                let mut i = 0;
                entries.retain(|(k, _, _)| {
                    i += 1;
                    last[k] == i - 1
                });
            }
        }
        self.insert_all(entries)
    }

    /// The deadline of an entry stored now with `ttl` (0: never expires).
    fn deadline(&self, ttl: Option<Duration>) -> u64 {
        match ttl {
            Some(t) => self
                .clock
                .now_ms()
                .saturating_add(t.as_millis().max(1) as u64),
            None => 0,
        }
    }

    /// An entry and its weight, refused if it could never fit.
    fn prepare(&self, key: &str, value: Bytes, expires_at: u64) -> Result<(String, Entry, u64)> {
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
        Ok((key, entry, weight))
    }

    /// Puts prepared entries in the map, booked first as the fallback (all or none).
    fn insert_all<E>(&self, entries: E) -> Result<()>
    where
        E: AsRef<[(String, Entry, u64)]> + IntoIterator<Item = (String, Entry, u64)>,
    {
        let account = match &self.admission {
            Some(a) => Some(self.admit(a, entries.as_ref())?),
            None => None,
        };
        for (key, entry, _) in entries {
            let mut state = InsertState {
                inserting: self.lifecycle.hasher.hash_one(&key),
                evicted: 0,
            };
            self.map.insert_with_lifecycle(key, entry, &mut state);
            if state.evicted > 0 {
                self.evictions.fetch_add(state.evicted, Ordering::Relaxed);
            }
        }
        drop(account);
        Ok(())
    }

    /// Books `entries` in the fallback's account, or refuses them all; returns the
    /// account's lock, held until they are in the map.
    fn admit<'a>(
        &self,
        a: &'a Admission,
        entries: &[(String, Entry, u64)],
    ) -> Result<parking_lot::MutexGuard<'a, Usage>> {
        let mut usage = a.usage.lock();
        // `Err(Some(ns))`: past the namespace's share; `Err(None)`: past the whole budget.
        let fits = |usage: &Usage| -> std::result::Result<(), Option<String>> {
            // What the account would hold with the entries in (each replacing its key's
            // current entry): per namespace and in all.
            let mut trial: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
            let mut total = usage.total;
            for (key, _, weight) in entries {
                let ns = crate::key::namespace_of(key);
                let held = trial
                    .entry(ns)
                    .or_insert_with(|| usage.per_namespace.get(ns).copied().unwrap_or(0));
                let old = self
                    .map
                    .peek(key.as_str())
                    .map_or(0, |e| self.weighter.weight(key, &e));
                *held = (*held + weight).saturating_sub(old);
                total = (total + weight).saturating_sub(old);
                if *held > a.namespace_max_bytes {
                    return Err(Some(ns.to_owned()));
                }
            }
            if total > self.limits.max_bytes {
                return Err(None);
            }
            Ok(())
        };
        let mut verdict = fits(&usage);
        // Expired entries still count until dropped: drop them (at most once a second,
        // a walk of the map) and look again.
        let now = self.clock.now_ms();
        if verdict.is_err() && now.saturating_sub(usage.purged_at) >= 1000 {
            usage.purged_at = now;
            let cell = std::cell::RefCell::new(&mut *usage);
            self.map.retain(|k, e| {
                let live = self.live(e, now);
                if !live {
                    cell.borrow_mut().sub(k, self.weighter.weight(k, e));
                }
                live
            });
            verdict = fits(&usage);
        }
        if let Err(over) = verdict {
            let (what, limit) = match over {
                None => ("the memory fallback".to_owned(), self.limits.max_bytes),
                Some(ns) => (
                    format!("namespace {ns:?}'s share of the memory fallback"),
                    a.namespace_max_bytes,
                ),
            };
            return Err(Error::new(
                ErrorKind::FallbackFull,
                format!(
                    "redis is unreachable and {what} is full ({limit} bytes): nothing was \
                     written, and nothing already acknowledged was evicted to make room; \
                     retry once redis is back, or raise the fallback's budget \
                     ([backend] memory_max_bytes and fallback_namespace_max_bytes)"
                ),
            ));
        }
        for (key, _, weight) in entries {
            if let Some(e) = self.map.peek(key.as_str()) {
                usage.sub(key, self.weighter.weight(key, &e));
            }
            usage.add(key, *weight);
        }
        Ok(usage)
    }

    /// Stores `value` only if `key` has no live value (compare-and-set under `cas`).
    pub(crate) fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let _g = self.cas.lock();
        if self.get(key).is_some() {
            return Ok(false);
        }
        self.set(key, value, ttl).map(|()| true)
    }

    /// Adds `by` to the integer text at `key` (created with `ttl`), as Redis INCRBY does.
    pub(crate) fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let _g = self.cas.lock();
        let (old, keep) = match self.get_with_ttl(key) {
            None => (0, ttl),
            Some((v, left)) => {
                let n = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::WrongType,
                            "the key holds a value that is not an integer counter",
                        )
                    })?;
                (n, left)
            }
        };
        let new = old.checked_add(by).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "the counter would overflow a 64-bit integer",
            )
        })?;
        self.set(key, Bytes::from(new.to_string()), keep)?;
        Ok(new)
    }

    /// Gives an existing key a new time to live (`None`: no expiry), keeping its value.
    pub(crate) fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        let _g = self.cas.lock();
        match self.get(key) {
            Some(v) => self.set(key, v, ttl).map(|()| true),
            None => Ok(false),
        }
    }

    /// Deletes `key` only if it holds `value`.
    /// Stores `value` (with `ttl`) only if `key` holds `expected`; returns whether it did.
    pub(crate) fn set_if_eq(
        &self,
        key: &str,
        expected: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let _g = self.cas.lock();
        match self.get(key) {
            Some(v) if v[..] == *expected => self.set(key, value, ttl).map(|()| true),
            _ => Ok(false),
        }
    }

    pub(crate) fn del_if_eq(&self, key: &str, value: &[u8]) -> bool {
        let _g = self.cas.lock();
        match self.get(key) {
            Some(v) if v[..] == *value => self.del(key),
            _ => false,
        }
    }

    pub(crate) fn del(&self, key: &str) -> bool {
        self.take(key).is_some()
    }

    /// Removes `key`; its value if it was live.
    pub(crate) fn take(&self, key: &str) -> Option<Bytes> {
        let account = self.admission.as_ref().map(|a| a.usage.lock());
        let (k, e) = self.map.remove(key)?;
        if let Some(mut usage) = account {
            usage.sub(&k, self.weighter.weight(&k, &e));
        }
        self.live(&e, self.clock.now_ms()).then_some(e.value)
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
        let account = self.admission.as_ref().map(|a| a.usage.lock());
        let account = std::cell::RefCell::new(account);
        self.map.retain(|k, e| {
            if glob_match(pattern.as_bytes(), k.as_bytes()) {
                if self.live(e, now) {
                    deleted.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(usage) = account.borrow_mut().as_mut() {
                    usage.sub(k, self.weighter.weight(k, e));
                }
                false
            } else {
                true
            }
        });
        deleted.into_inner()
    }

    pub(crate) fn clear(&self) {
        let account = self.admission.as_ref().map(|a| a.usage.lock());
        self.map.clear();
        if let Some(mut usage) = account {
            let purged_at = usage.purged_at;
            *usage = Usage {
                purged_at,
                ..Usage::default()
            };
        }
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
        Clock::manual()
    }

    /// The fallback's store: each namespace within its share, the whole within
    /// `max_bytes`, overwrites and deletes booked exactly, batches all or nothing,
    /// expired entries reclaimed for room, and never an eviction.
    #[test]
    fn refusing_store_books_every_change_and_never_evicts() {
        let (clock, t) = manual();
        let limits = MemoryLimits {
            max_bytes: 64 << 10,
            max_entries: 10_000,
        };
        let m = MemoryStore::build(limits, clock, Some(16 << 10)).unwrap();
        let v = |n: usize| Bytes::from(vec![b'x'; n]);
        let full = |r: Result<()>| {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::FallbackFull, "{e}");
            e
        };
        // ~5 KB entries: three fit one namespace's 16 KiB share, the fourth does not.
        for i in 0..3 {
            m.set(&format!("a:{i}"), v(5000), None).unwrap();
        }
        let e = full(m.set("a:3", v(5000), None));
        assert!(e.message().contains("\"a\""), "{e}");
        // Overwriting a key books the difference only; the same key twice in a batch once
        // (the last value wins).
        m.set("a:0", v(5000), None).unwrap();
        m.set_all([("a:0", v(5000)), ("a:0", v(5000))], None)
            .unwrap();
        // Internal keys count for their namespace, under a prefix too.
        full(m.set("#lock:a:{x}", v(5000), None));
        full(m.set("p/a:k", v(5000), None));
        let e = m.set("z:k", v(17 << 10), None).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::ValueTooLarge,
            "bigger than a share: {e}"
        );
        // A batch that does not fit is refused whole.
        full(m.set_all([("b:0", v(8000)), ("b:1", v(9000))], None));
        assert!(
            m.get("b:0").is_none(),
            "nothing of a refused batch is stored"
        );
        // Deletes free the share: del, delete_matching, and an expired entry read.
        assert!(m.del("a:2"));
        m.set("a:3", v(5000), None).unwrap();
        assert_eq!(m.delete_matching("a:*"), 3);
        for i in 0..3 {
            m.set(&format!("a:{i}"), v(5000), Some(Duration::from_millis(10)))
                .unwrap();
        }
        t.store(20, Ordering::Relaxed);
        assert!(m.get("a:0").is_none());
        // a:1 and a:2 expired unread: the refusal's purge reclaims them.
        t.store(2000, Ordering::Relaxed);
        for i in 10..13 {
            m.set(&format!("a:{i}"), v(5000), None).unwrap();
        }
        // The whole store: four namespaces at their share fill most of 64 KiB; a fifth
        // namespace's first entry no longer fits.
        for ns in ["b", "c", "d"] {
            for i in 0..3 {
                m.set(&format!("{ns}:{i}"), v(5000), None).unwrap();
            }
        }
        let e = full(m.set("e:0", v(5000), None));
        assert!(e.message().contains("the memory fallback is full"), "{e}");
        assert_eq!(m.evictions(), 0);
        assert!(m.weight() <= limits.max_bytes, "{}", m.weight());
        for ns in ["a", "b", "c", "d"] {
            let base = if ns == "a" { 10 } else { 0 };
            for i in base..base + 3 {
                assert!(m.get(&format!("{ns}:{i}")).is_some(), "{ns}:{i} kept");
            }
        }
        // Clearing (after recovery) empties the account too.
        m.clear();
        for i in 0..3 {
            m.set(&format!("a:{i}"), v(5000), None).unwrap();
            m.set(&format!("e:{i}"), v(5000), None).unwrap();
        }
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
