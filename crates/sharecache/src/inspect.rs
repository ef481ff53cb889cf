//! Looking inside a namespace, for operators (the dashboard and the CLI): a key's stored
//! bytes with its TTL and size, decoded when it decodes; rewriting a value or a TTL
//! while keeping the other; counting the keys a pattern matches with a bound.
//!
//! These are operator tools, not hot paths: each costs a read before its write, and a
//! write from another caller between the two is overwritten (last writer wins, as with
//! any `set`). Writes go through the same L1-invalidating path as [`Namespace::set`].

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::cache::Namespace;
use crate::codec::RawJson;
use crate::error::Result;

/// What one key holds, from [`Namespace::inspect`].
#[derive(Debug, Clone)]
pub struct Inspected {
    /// The bytes as stored (a framed value keeps its header).
    pub raw: Bytes,
    /// The value as JSON, when it decodes (framed JSON or MessagePack, possibly
    /// compressed, or plain JSON text); `None` for anything else (binary, other formats).
    pub json: Option<RawJson>,
    /// Time left, `None` for no expiry.
    pub ttl: Option<Duration>,
    /// Bytes the store reports for the key (Redis `MEMORY USAGE`; the entry's weight in
    /// memory).
    pub size: u64,
}

/// How many keys a pattern matched, from [`Namespace::count_matching`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MatchCount {
    /// Keys counted (at most the limit).
    pub keys: u64,
    /// The walk stopped at the limit: there may be more.
    pub truncated: bool,
}

impl Namespace {
    /// The key as stored in Redis (`[prefix/]ns:key`), for operator tools that read a
    /// key another client wrote with a type of its own (a hash, a list...).
    pub fn stored_key(&self, key: &str) -> Result<String> {
        self.space.key(key)
    }

    /// The stored value of `key` with its TTL and size; `None` when it does not exist.
    pub async fn inspect(&self, key: &str) -> Result<Option<Inspected>> {
        let full = self.space.key(key)?;
        let (stored, ttl) = self.kv().get_with_ttl(&full).await?;
        let Some(raw) = stored else {
            return Ok(None);
        };
        let size = self
            .kv()
            .sizes(std::slice::from_ref(&full))
            .await?
            .first()
            .copied()
            .unwrap_or(raw.len() as u64);
        let json = self.inner.codec.decode::<RawJson>(&raw).ok();
        Ok(Some(Inspected {
            raw,
            json,
            ttl,
            size,
        }))
    }

    /// Replaces the value of an existing `key`, keeping the time it has left. Returns
    /// false (and writes nothing) when the key does not exist.
    pub async fn set_keeping_ttl<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<bool> {
        let full = self.space.key(key)?;
        let (stored, ttl) = self.kv().get_with_ttl(&full).await?;
        if stored.is_none() {
            return Ok(false);
        }
        let bytes = self.inner.codec.encode(value)?;
        // A TTL that ran down below a millisecond between the read and now is kept at 1 ms
        // rather than turned into "no expiry".
        let ttl = ttl.map(|t| t.max(Duration::from_millis(1)));
        self.write_encoded(&full, bytes, ttl).await?;
        Ok(true)
    }

    /// Counts the keys matching `pattern`, walking the listing page by page and stopping
    /// once `limit` keys were seen (so the cost is bounded by the limit, not the
    /// namespace).
    pub async fn count_matching(&self, pattern: &str, limit: u64) -> Result<MatchCount> {
        let mut keys = 0u64;
        let mut cursor: Option<String> = None;
        // SCAN may return empty pages; the step bound keeps a sparse walk finite too.
        let max_steps = limit / 10 + 1000;
        for _ in 0..max_steps {
            let page = self.keys(pattern, cursor.as_deref(), 1000).await?;
            keys += page.keys.len() as u64;
            if keys >= limit {
                return Ok(MatchCount {
                    keys: limit,
                    truncated: true,
                });
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => {
                    return Ok(MatchCount {
                        keys,
                        truncated: false,
                    });
                }
            }
        }
        Ok(MatchCount {
            keys,
            truncated: true,
        })
    }
}
