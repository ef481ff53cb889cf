//! The one read path. `get`, `get_shared`, `get_with_source` (raw JSON for the HTTP
//! service is `get_with_source::<RawJson>`) and `mget` all go through [`Namespace::settle`],
//! which alone decides, for what a read found in L1 or in the store:
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
use crate::error::Result;
use crate::store::BackendState;
use crate::tier::{Ticket, Tier};

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
struct Found {
    bytes: Bytes,
    /// What L1 decoded when the entry went in (any type), if anything.
    decoded: Option<Erased>,
    source: Source,
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
    pub async fn get<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Ok(self
            .read::<T>(key)
            .await?
            .map(|(v, _)| Arc::unwrap_or_clone(v)))
    }

    /// Like [`get`](Self::get), but returns the value behind an `Arc`: an L1 hit then
    /// costs a reference count instead of a clone of `T` (use it for big values).
    pub async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        Ok(self.read::<T>(key).await?.map(|(v, _)| v))
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
        Ok(self
            .read::<T>(key)
            .await?
            .map(|(v, s)| (Arc::unwrap_or_clone(v), s)))
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
        let from_store = |b: Option<Bytes>| {
            b.map(|bytes| Found {
                bytes,
                decoded: None,
                source: Source::Store,
            })
        };
        let found: Vec<Option<Found>> = match self.tier() {
            None => self
                .kv()
                .mget(&full)
                .await?
                .into_iter()
                .map(from_store)
                .collect(),
            Some(tier) => {
                // Misses are not put in L1 here: MGET does not say when a key expires
                // (`get` fills L1 with the key's TTL).
                let mut found: Vec<Option<Found>> = full
                    .iter()
                    .map(|k| {
                        tier.get(k).map(|e| Found {
                            bytes: e.bytes.clone(),
                            decoded: e.decoded.clone(),
                            source: Source::L1,
                        })
                    })
                    .collect();
                let missing: Vec<usize> =
                    (0..found.len()).filter(|&i| found[i].is_none()).collect();
                if !missing.is_empty() {
                    let ask: Vec<String> = missing.iter().map(|&i| full[i].clone()).collect();
                    for (i, v) in missing.into_iter().zip(self.kv().mget(&ask).await?) {
                        found[i] = from_store(v);
                    }
                }
                found
            }
        };
        let mut out = Vec::with_capacity(found.len());
        for (k, f) in keys.iter().zip(found) {
            let v = self.settle::<T>(k.as_ref(), f, None).await;
            out.push(v.map(|(v, _)| Arc::unwrap_or_clone(v)));
        }
        Ok(out)
    }

    /// The single-key read behind `get`, `get_shared` and `get_with_source`.
    async fn read<T>(&self, key: &str) -> Result<Option<(Arc<T>, Source)>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let Some(tier) = self.tier() else {
            let full = self.space.key(key)?;
            let found = self.kv().get(&full).await?.map(|bytes| Found {
                bytes,
                decoded: None,
                source: Source::Store,
            });
            return Ok(self.settle(key, found, None).await);
        };
        crate::key::validate_key(key)?;
        // An L1 lookup builds the stored key in a reused buffer: a hit allocates nothing.
        if let Some(e) = self.space.with_key(key, |full| tier.get(full)) {
            let found = Found {
                bytes: e.bytes.clone(),
                decoded: e.decoded.clone(),
                source: Source::L1,
            };
            return Ok(self.settle(key, Some(found), None).await);
        }
        let full = self.space.key(key)?;
        let ticket = tier.ticket(&full);
        let (stored, ttl) = self.kv().get_with_ttl(&full).await?;
        let found = stored.map(|bytes| Found {
            bytes,
            decoded: None,
            source: Source::Store,
        });
        let fill = Fill {
            tier,
            key: &full,
            ticket,
            ttl,
        };
        Ok(self.settle(key, found, Some(fill)).await)
    }

    /// Decides what a read found: a fresh value that decodes as `T` is a hit (and may
    /// fill L1); anything else is a miss. Every read is counted here and only here.
    async fn settle<T>(
        &self,
        key: &str,
        found: Option<Found>,
        fill: Option<Fill<'_>>,
    ) -> Option<(Arc<T>, Source)>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let c = &self.counters;
        let Some(found) = found else {
            c.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if !self.fresh(&found.bytes).await {
            c.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let value = match found.decoded.and_then(|d| d.downcast::<T>().ok()) {
            Some(v) => v,
            None => match self.inner.codec.decode::<T>(&found.bytes) {
                Ok(v) => Arc::new(v),
                Err(e) => {
                    c.misses.fetch_add(1, Ordering::Relaxed);
                    c.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(namespace = %self.name, key, error = %e, "stored value does not decode: counted as a miss");
                    return None;
                }
            },
        };
        c.hits.fetch_add(1, Ordering::Relaxed);
        if found.source == Source::L1 {
            c.l1_hits.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(f) = fill
            && self.inner.store.state() == BackendState::Connected
        {
            let decoded: Erased = value.clone();
            f.tier
                .insert(f.key, f.ticket, found.bytes, Some(decoded), f.ttl);
        }
        Some((value, found.source))
    }
}
