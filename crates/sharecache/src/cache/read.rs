//! The one read path. `get`, `get_shared`, `get_with_source` (raw JSON for the HTTP
//! service is `get_with_source::<RawJson>`) and `mget` all go through [`Namespace::settle`],
//! which decides, for what a read found in L1 or in the store (the common L1 hit is
//! decided inline in `read` by the same rules):
//!
//! * whether it is still a value (a cached absence is not; a value whose tags were
//!   invalidated is not);
//! * how it decodes (reusing what L1 decoded when the type matches);
//! * how it is counted: every read is one hit or one miss, `l1_hits` counts the hits L1
//!   answered (so `l1_hits <= hits` always), `decode_errors` the misses that did not
//!   decode;
//! * whether it fills L1 (only a value read from a connected Redis, with its TTL).

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::Namespace;
use crate::error::{ErrorKind, Result};
use crate::store::BackendState;
use crate::tier::{L1Entry, Ticket, Tier};

/// Where a read was answered ([`Namespace::get_with_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The in-process L1 tier.
    L1,
    /// The store: Redis, the embedded memory store, or the memory fallback during an
    /// outage ([`Cache::state`](crate::Cache::state) tells which).
    Store,
}

/// A value decoded into the type the caller asked for, shared with L1.
type Erased = Arc<dyn Any + Send + Sync>;

/// What a read found, before it is checked, decoded and counted.
enum Found {
    /// An L1 entry (its bytes, and what was decoded when it went in).
    L1(Arc<L1Entry>),
    /// Bytes from the store.
    Store(Bytes),
}

impl Found {
    #[inline]
    fn bytes(&self) -> &Bytes {
        match self {
            Found::L1(e) => &e.bytes,
            Found::Store(b) => b,
        }
    }
}

/// A hit, in the cheapest form the read could produce it: callers take it as an owned
/// value ([`Value::owned`]) or shared ([`Value::shared`]) without an extra copy or
/// reference count on the L1 path.
enum Value<T> {
    /// Decoded by this read, held by nobody else.
    Owned(T),
    /// Decoded by this read and also put in L1.
    Shared(Arc<T>),
    /// Decoded earlier: the L1 entry's `decoded` is a `T`.
    InL1(Arc<L1Entry>),
}

impl<T: Send + Sync + 'static> Value<T> {
    #[inline]
    fn l1_value(e: &L1Entry) -> &T {
        e.decoded
            .as_deref()
            .and_then(|d| d.downcast_ref::<T>())
            .expect("settle checked the entry holds a T")
    }

    #[inline(always)]
    fn owned(self) -> T
    where
        T: Clone,
    {
        match self {
            Value::Owned(v) => v,
            Value::Shared(v) => Arc::unwrap_or_clone(v),
            Value::InL1(e) => Self::l1_value(&e).clone(),
        }
    }

    // `read`'s outputs, as fn items rather than closures: a closure is not inlined
    // into `read` (measured: an L1 hit of a struct ~8 ns slower).
    #[inline(always)]
    fn owned_from(self, _: Source, _: Option<Duration>) -> T
    where
        T: Clone,
    {
        self.owned()
    }

    #[inline(always)]
    fn shared_from(self, _: Source, _: Option<Duration>) -> Arc<T> {
        self.shared()
    }

    #[inline(always)]
    fn with_source(self, source: Source, _: Option<Duration>) -> (T, Source)
    where
        T: Clone,
    {
        (self.owned(), source)
    }

    #[inline(always)]
    fn entry(self, source: Source, ttl: Option<Duration>) -> Entry<T>
    where
        T: Clone,
    {
        Entry {
            value: self.owned(),
            source,
            ttl,
        }
    }

    #[inline(always)]
    fn shared(self) -> Arc<T> {
        match self {
            Value::Owned(v) => Arc::new(v),
            Value::Shared(v) => v,
            Value::InL1(e) => e
                .decoded
                .clone()
                .and_then(|d| d.downcast::<T>().ok())
                .expect("settle checked the entry holds a T"),
        }
    }
}

/// A hit with where it was answered and how long its key has left
/// ([`Namespace::get_entry`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Entry<T> {
    /// The value.
    pub value: T,
    /// Where it was answered.
    pub source: Source,
    /// Time left before the key expires, `None` if it does not. From L1, as Redis told
    /// it when the entry was filled (an `EXPIRE` since then invalidates the entry).
    pub ttl: Option<Duration>,
}

/// Where a value read from the store may go in L1.
struct Fill<'a> {
    tier: &'a Tier,
    key: &'a str,
    ticket: Ticket,
    ttl: Option<Duration>,
}

impl Namespace {
    /// Reads `key`. A miss, or a stored value that does not decode as `T` (another
    /// format, version or type), is `Ok(None)` and counted as a miss.
    ///
    /// With a [`LocalTier`](crate::LocalTier), a hit in L1 returns a clone of the value
    /// decoded when it entered L1 (no parsing); a miss reads Redis and fills L1 (see
    /// `tier` for the coherence guarantees).
    // Not `async fn`: the returned future is `read`'s own, so an L1 hit polls one state
    // machine instead of two (measured: ~10 ns of a ~150 ns hit).
    #[allow(clippy::manual_async_fn)]
    pub fn get<'a, T>(&'a self, key: &'a str) -> impl Future<Output = Result<Option<T>>> + Send + 'a
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.read::<T, T, false>(key, Value::<T>::owned_from)
    }

    /// Like [`get`](Self::get), but returns the value behind an `Arc`: an L1 hit then
    /// costs a reference count instead of a clone of `T` (use it for big values).
    #[allow(clippy::manual_async_fn)]
    pub fn get_shared<'a, T>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<Arc<T>>>> + Send + 'a
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.read::<T, Arc<T>, false>(key, Value::<T>::shared_from)
    }

    /// Reads `key` and deletes it in one atomic step (Redis `GETDEL`): of many callers
    /// racing on one key, exactly one gets the value (a one-time code, a claim ticket).
    /// A value that does not decode as `T`, or that tags invalidated, is deleted all the
    /// same and answered `None`. During an outage it is `Unavailable`: the fallback's
    /// memory cannot hand out a value Redis holds.
    pub async fn take<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let full = self.space.key(key)?;
        let found = self
            .tiered_write(&[full.as_str()], self.kv().get_del(&full))
            .await?;
        if found.is_some() {
            self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        }
        let found = self.checked(found.map(Found::Store)).await;
        Ok(self
            .settle::<T>(key, found, None, true)?
            .map(|(v, _)| v.owned()))
    }

    /// Like [`get`](Self::get), also saying where the value came from. With
    /// [`RawJson`](crate::RawJson) as `T` it returns the stored JSON text without
    /// decoding it into a Rust type (MessagePack values are transcoded).
    ///
    /// ```
    /// # async fn demo() -> sharecache::Result<()> {
    /// use sharecache::{Cache, RawJson, Source, Ttl};
    /// let users = Cache::builder().memory().build().await?.namespace("user")?;
    /// users.set("a", &RawJson::from_slice(br#"{"n": 1}"#)?, Ttl::NEVER).await?;
    /// let (json, source) = users.get_with_source::<RawJson>("a").await?.unwrap();
    /// assert_eq!((json.get(), source), (r#"{"n": 1}"#, Source::Store));
    /// # Ok(()) }
    /// ```
    pub async fn get_with_source<T>(&self, key: &str) -> Result<Option<(T, Source)>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.read::<T, (T, Source), false>(key, Value::<T>::with_source)
            .await
    }

    /// Like [`get_with_source`](Self::get_with_source), also giving the time the key has
    /// left (what the HTTP service sends in `x-cache-ttl-ms`), learnt by the same read:
    /// from L1, or in the store's round trip.
    ///
    /// ```
    /// # async fn demo() -> sharecache::Result<()> {
    /// use sharecache::{Cache, RawJson, Ttl};
    /// let users = Cache::builder().memory().build().await?.namespace("user")?;
    /// users.set("a", &1, Ttl::secs(60)).await?;
    /// let e = users.get_entry::<RawJson>("a").await?.unwrap();
    /// assert!(e.ttl.unwrap() <= std::time::Duration::from_secs(60));
    /// # Ok(()) }
    /// ```
    pub async fn get_entry<T>(&self, key: &str) -> Result<Option<Entry<T>>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.read::<T, Entry<T>, true>(key, Value::<T>::entry).await
    }

    /// Reads many keys; the result has one slot per key, in order, `None` for a miss.
    /// Keys resident in L1 are answered from it; the others go to the store in one call.
    pub async fn mget<T>(&self, keys: &[impl AsRef<str>]) -> Result<Vec<Option<T>>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let full = self.full_keys(keys)?;
        if full.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<Option<Found>> = match self.tier() {
            None => {
                let got = self.kv().mget(&full).await?;
                got.into_iter().map(|b| b.map(Found::Store)).collect()
            }
            Some(tier) => {
                // Misses are not put in L1 here: MGET does not say when a key expires
                // (`get` fills L1 with the key's TTL).
                let mut found: Vec<Option<Found>> =
                    full.iter().map(|k| tier.get(k).map(Found::L1)).collect();
                let missing: Vec<usize> =
                    (0..found.len()).filter(|&i| found[i].is_none()).collect();
                if !missing.is_empty() {
                    let ask: Vec<String> = missing.iter().map(|&i| full[i].clone()).collect();
                    for (i, v) in missing.into_iter().zip(self.kv().mget(&ask).await?) {
                        found[i] = v.map(Found::Store);
                    }
                }
                found
            }
        };
        let mut out = Vec::with_capacity(found.len());
        for (k, f) in keys.iter().zip(found) {
            // A batch answers a plain value that is not JSON as a miss (`None`), rather
            // than failing every other key with it.
            let v = self.settle::<T>(k.as_ref(), self.checked(f).await, None, false)?;
            out.push(v.map(|(v, _)| v.owned()));
        }
        Ok(out)
    }

    /// What a read found, with whether it is still a value: a cached absence is not;
    /// an untagged value is (both decided from the header, with no further future); a
    /// tagged one is if its tags were not invalidated since (`tags.rs`).
    #[inline]
    async fn checked(&self, found: Option<Found>) -> Option<(Found, bool)> {
        let found = found?;
        let fresh = self.readable(found.bytes()).await;
        Some((found, fresh))
    }

    /// The single-key read behind `get`, `get_shared`, `get_with_source` and
    /// `get_entry`. With `TTL`, `out` is also given the time the key has left (`None`: no
    /// expiry); without, `None` and nothing is spent finding it.
    #[inline]
    async fn read<T, R, const TTL: bool>(
        &self,
        key: &str,
        out: impl FnOnce(Value<T>, Source, Option<Duration>) -> R + Send,
    ) -> Result<Option<R>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let Some(tier) = self.tier() else {
            let full = self.space.key(key)?;
            let (stored, ttl) = if TTL {
                self.kv().get_with_ttl(&full).await?
            } else {
                (self.kv().get(&full).await?, None)
            };
            let found = stored.map(Found::Store);
            let v = self.settle(key, self.checked(found).await, None, true)?;
            return Ok(v.map(|(v, s)| out(v, s, ttl)));
        };
        crate::key::validate_key(key)?;
        // An L1 lookup builds the stored key in a reused buffer: a hit allocates nothing.
        if let Some(e) = self.space.with_key(key, |full| tier.get(full)) {
            // The common hit, kept straight-line: an untagged value L1 already decoded as
            // a `T`. It is what `settle` would decide (same rule, same counter); `settle`
            // out of line keeps its decode and fill code out of this path (measured:
            // criterion tier/l1_hit 146 -> 117 ns, l1_hit_shared 96 -> 74 ns).
            let left = if TTL { tier.remaining(&e) } else { None };
            if crate::codec::untagged_fresh(&e.bytes) == Some(true)
                && e.decoded.as_deref().is_some_and(|d| d.is::<T>())
            {
                self.counters.hit(Source::L1);
                return Ok(Some(out(Value::InL1(e), Source::L1, left)));
            }
            let found = Found::L1(e);
            let fresh = self.readable(found.bytes()).await;
            let v = self.settle(key, Some((found, fresh)), None, true)?;
            return Ok(v.map(|(v, s)| out(v, s, left)));
        }
        let full = self.space.key(key)?;
        let ticket = tier.ticket(&full);
        let (stored, ttl) = self.kv().get_with_ttl(&full).await?;
        let found = stored.map(Found::Store);
        let fill = Fill {
            tier,
            key: &full,
            ticket,
            ttl,
        };
        let v = self.settle(key, self.checked(found).await, Some(fill), true)?;
        Ok(v.map(|(v, s)| out(v, s, if TTL { ttl } else { None })))
    }

    /// Decides what a read found: a fresh value that decodes as `T` is a hit (and may
    /// fill L1); anything else is a miss. Every read is counted here, except the common
    /// L1 hit (untagged, already decoded as `T`), which `read` decides and counts by the
    /// same rule without calling this.
    ///
    /// Freshness (tags, cached absences) is checked by [`checked`](Self::checked), which
    /// awaits the tag versions; this part is synchronous, so an L1 hit costs no further
    /// future.
    ///
    /// With `strict`, a plain value that is not JSON read as [`RawJson`](crate::RawJson)
    /// is an error ([`ErrorKind::NotJson`]: the key exists, so a miss would be a lie);
    /// counted as a miss and a decode error like every value that does not decode.
    #[inline(never)]
    fn settle<T>(
        &self,
        key: &str,
        found: Option<(Found, bool)>,
        fill: Option<Fill<'_>>,
        strict: bool,
    ) -> Result<Option<(Value<T>, Source)>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let c = &self.counters;
        let Some((found, true)) = found else {
            c.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        let (value, source) = match found {
            // L1 decoded this value as a `T` when it went in: nothing to parse.
            Found::L1(e) if e.decoded.as_deref().is_some_and(|d| d.is::<T>()) => {
                (Value::InL1(e), Source::L1)
            }
            found => {
                let source = match found {
                    Found::L1(_) => Source::L1,
                    Found::Store(_) => Source::Store,
                };
                let bytes = found.bytes();
                let v = match self.codec.decode::<T>(bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        c.misses.fetch_add(1, Ordering::Relaxed);
                        c.decode_errors.fetch_add(1, Ordering::Relaxed);
                        if strict && e.kind() == ErrorKind::NotJson {
                            return Err(e);
                        }
                        tracing::debug!(namespace = %self.name, key, error = %e, "stored value does not decode: counted as a miss");
                        return Ok(None);
                    }
                };
                match fill {
                    Some(f) if self.inner.store.state() == BackendState::Connected => {
                        let v = Arc::new(v);
                        let decoded: Erased = v.clone();
                        f.tier
                            .insert(f.key, f.ticket, bytes.clone(), Some(decoded), f.ttl);
                        (Value::Shared(v), source)
                    }
                    _ => (Value::Owned(v), source),
                }
            }
        };
        c.hit(source);
        Ok(Some((value, source)))
    }
}
