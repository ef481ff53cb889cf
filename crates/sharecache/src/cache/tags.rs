//! Tags: `set_tagged` records each tag's current version in the value; one write of
//! `invalidate_tags` bumps the versions, and a read compares them (lazy invalidation:
//! one write per tag whatever the number of tagged keys, on every instance).

use bytes::Bytes;
use serde::Serialize;

use super::Namespace;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Aux;
use crate::store::BackendState;
use crate::ttl::Ttl;

impl Namespace {
    /// Writes `key` like [`set`](Self::set), tagged: [`invalidate_tags`](Self::invalidate_tags)
    /// of any of `tags` later makes it a miss, on every instance, whatever the number of
    /// keys carrying the tag (lazy versions: the value records each tag's version; a read
    /// compares them with the current ones).
    pub async fn set_tagged<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Ttl,
        tags: &[&str],
    ) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let tags = check_tags(tags)?;
        let encoded = self.codec.encode(value)?;
        let bytes = self.tag_value(&encoded, &tags).await?;
        self.write_encoded(&full, bytes, ttl).await
    }

    /// Invalidates every value of this namespace written with any of `tags`: one write
    /// per tag, whatever the number of tagged keys. Returns the number of tags.
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<usize> {
        let tags = check_tags(tags)?;
        let items: Vec<(String, Bytes)> = tags
            .iter()
            .map(|t| {
                (
                    self.space.aux_of(Aux::Tag, t),
                    Bytes::from(crate::random::u64().to_string()),
                )
            })
            .collect();
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        self.tiered_write(&keys, self.kv().mset(&items, None))
            .await?;
        Ok(tags.len())
    }

    /// Encodes the tags' current versions into a value, creating versions for new tags.
    async fn tag_value(&self, encoded: &Bytes, tags: &[&str]) -> Result<Bytes> {
        if tags.is_empty() {
            return Ok(encoded.clone());
        }
        let keys: Vec<String> = tags
            .iter()
            .map(|t| self.space.aux_of(Aux::Tag, t))
            .collect();
        let inits: Vec<Bytes> = tags
            .iter()
            .map(|_| Bytes::from(crate::random::u64().to_string()))
            .collect();
        let current = self.kv().get_or_init(&keys, &inits).await?;
        let pairs: Vec<(&str, u64)> = tags
            .iter()
            .zip(&current)
            .map(|(t, v)| (*t, parse_version(v).unwrap_or(0)))
            .collect();
        Ok(crate::codec::with_tags(encoded, &pairs))
    }

    /// Whether a stored value is one reads return: not a cached absence, and not a
    /// tagged value whose tags were invalidated since it was written.
    #[inline]
    pub(super) async fn readable(&self, stored: &[u8]) -> bool {
        match crate::codec::untagged_fresh(stored) {
            Some(fresh) => fresh,
            None => self.tags_current(stored).await,
        }
    }

    /// Whether a tagged value's tags are all at the versions it was written with (a
    /// missing version or a corrupt tag section is "no"). Untagged values never get here:
    /// `read.rs` decides them from their header (`codec::untagged_fresh`).
    pub(super) async fn tags_current(&self, stored: &[u8]) -> bool {
        let Ok(Some(tags)) = crate::codec::tags_of(stored) else {
            return false;
        };
        let keys: Vec<String> = tags
            .iter()
            .map(|(t, _)| self.space.aux_of(Aux::Tag, t))
            .collect();
        let mut current: Vec<Option<u64>> = vec![None; keys.len()];
        let mut wanted = Vec::new();
        match self.tier() {
            Some(tier) => {
                for (i, k) in keys.iter().enumerate() {
                    match tier.get(k) {
                        Some(e) => current[i] = parse_version(&e.bytes),
                        None => wanted.push(i),
                    }
                }
            }
            None => wanted.extend(0..keys.len()),
        }
        if !wanted.is_empty() {
            let ask: Vec<String> = wanted.iter().map(|&i| keys[i].clone()).collect();
            let tickets: Vec<_> = self
                .tier()
                .map(|t| ask.iter().map(|k| t.ticket(k)).collect())
                .unwrap_or_default();
            let Ok(vals) = self.kv().mget(&ask).await else {
                return false;
            };
            for (j, (i, v)) in wanted.iter().zip(vals).enumerate() {
                if let Some(v) = v {
                    current[*i] = parse_version(&v);
                    if let (Some(t), Some(ticket)) = (self.tier(), tickets.get(j))
                        && self.inner.store.state() == BackendState::Connected
                    {
                        t.insert(&ask[j], *ticket, v, None, None);
                    }
                }
            }
        }
        tags.iter()
            .zip(current)
            .all(|((_, written), now)| now == Some(*written))
    }
}

/// Validates and deduplicates tags.
fn check_tags<'a>(tags: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut out: Vec<&str> = Vec::with_capacity(tags.len());
    for t in tags {
        crate::codec::validate_tag(t)?;
        if !out.contains(t) {
            out.push(t);
        }
    }
    if out.len() > crate::codec::MAX_TAGS {
        return Err(Error::new(
            ErrorKind::TooManyKeys,
            format!(
                "{} tags, over the limit of {}",
                out.len(),
                crate::codec::MAX_TAGS
            ),
        ));
    }
    Ok(out)
}

fn parse_version(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}
