//! Sessions: random ids, data encrypted at rest, idle and absolute timeouts enforced by
//! the server side.
//!
//! * **Ids** are 256 random bits from the OS CSPRNG, base64url (43 characters). The store
//!   never holds an id: a session lives at `#sess:ns:<hex sha-256 of the id>`, so reading
//!   Redis does not yield usable ids.
//! * **Data** is JSON sealed with XChaCha20-Poly1305 (RustCrypto) under the first
//!   configured key, with a random 192-bit nonce and the storage key as associated data:
//!   a ciphertext moved to another session's slot, or altered by one bit, does not open.
//!   Each value names its key by a 4-byte id, so after a key rotation (new key first in
//!   the list, old keys after it) existing sessions still open.
//! * **Timeouts**: the store TTL is the idle timeout, renewed on every read, capped by
//!   what is left of the absolute timeout, which is also checked against the creation
//!   time recorded inside the sealed data.
//! * An unknown, malformed, forged or tampered id is simply not found: it is never
//!   adopted and nothing is created for it.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// Longest absolute session lifetime: one year.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Largest session data, serialized: 64 KiB.
pub const MAX_SESSION_DATA: usize = 64 << 10;

/// Session encryption keys; the first one seals new data, every one opens.
#[derive(Clone)]
pub struct SessionKeys {
    keys: Vec<(u32, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SessionKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl SessionKeys {
    /// Keys of 32 bytes each, newest first.
    pub fn new(keys: &[[u8; 32]]) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "sessions need at least one 32-byte key",
            ));
        }
        Ok(Self {
            keys: keys
                .iter()
                .map(|k| {
                    let id =
                        u32::from_le_bytes(Sha256::digest(k)[..4].try_into().expect("4 bytes"));
                    (id, XChaCha20Poly1305::new(k.into()))
                })
                .collect(),
        })
    }

    /// A new random key (for tools that bootstrap one).
    pub fn generate() -> [u8; 32] {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        k
    }

    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Bytes> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| Error::new(ErrorKind::Encode, "session encryption failed"))?;
        let mut out = Vec::with_capacity(4 + 24 + ct.len());
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(Bytes::from(out))
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (id, rest) = sealed.split_at_checked(4)?;
        let (nonce, ct) = rest.split_at_checked(24)?;
        let id = u32::from_le_bytes(id.try_into().ok()?);
        let (_, cipher) = self.keys.iter().find(|(k, _)| *k == id)?;
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
    }
}

/// What a session holds, sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) data: serde_json::Value,
    pub(crate) created_ms: u64,
    pub(crate) idle_ms: u64,
    pub(crate) absolute_ms: u64,
}

/// Whether a session is past its absolute lifetime at `now_ms` (pure: tests drive it
/// with a virtual clock).
pub(crate) fn expired(r: &Record, now_ms: u64) -> bool {
    now_ms >= r.created_ms.saturating_add(r.absolute_ms)
}

/// The store TTL for a session at `now_ms`: the idle timeout, capped by what is left of
/// the absolute one. `None` when nothing is left.
pub(crate) fn store_ttl(r: &Record, now_ms: u64) -> Option<Duration> {
    let left = r
        .created_ms
        .saturating_add(r.absolute_ms)
        .checked_sub(now_ms)
        .filter(|l| *l > 0)?;
    Some(Duration::from_millis(r.idle_ms.min(left)))
}

/// A live session, as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionData {
    /// The session's data.
    pub data: serde_json::Value,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it expires if not used again, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// A session as listed for its user: never its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// A short, stable handle (a prefix of the SHA-256 of the id): enough to tell
    /// sessions apart, useless to take one over.
    pub handle: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it expires if not used again, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// A new session's id and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewSession {
    /// The session id (256 random bits, base64url). Give it to the client; it is not
    /// stored anywhere.
    pub id: String,
    /// When it expires if not used, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn new_id() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The storage slot of an id, or `None` for a malformed id (never looked up).
pub(crate) fn slot(id: &str) -> Option<String> {
    if id.len() != 43
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some(hex::encode(Sha256::digest(id.as_bytes())))
}

pub(crate) fn check_ttls(idle: Duration, absolute: Duration) -> Result<()> {
    let ok = |d: Duration| d >= Duration::from_millis(1) && d <= MAX_SESSION_TTL;
    if !ok(idle) || !ok(absolute) || idle > absolute {
        return Err(Error::new(
            ErrorKind::InvalidTtl,
            format!(
                "session timeouts must be between 1 ms and {} s, with idle <= absolute",
                MAX_SESSION_TTL.as_secs()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn seal_record(keys: &SessionKeys, storage_key: &str, r: &Record) -> Result<Bytes> {
    let plain = serde_json::to_vec(r).map_err(|e| Error::new(ErrorKind::Encode, e.to_string()))?;
    if plain.len() > MAX_SESSION_DATA {
        return Err(Error::new(
            ErrorKind::ValueTooLarge,
            format!(
                "session data is {} bytes, over the limit of {MAX_SESSION_DATA}",
                plain.len()
            ),
        ));
    }
    keys.seal(storage_key.as_bytes(), &plain)
}

pub(crate) fn open_record(keys: &SessionKeys, storage_key: &str, sealed: &[u8]) -> Option<Record> {
    let plain = keys.open(storage_key.as_bytes(), sealed)?;
    serde_json::from_slice(&plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000_000 {
            let id = new_id();
            assert_eq!(id.len(), 43);
            assert!(slot(&id).is_some());
            assert!(seen.insert(id), "duplicate session id");
        }
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &format!("{}/", "a".repeat(42)),
        ] {
            assert!(slot(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sealed_records_open_only_in_their_slot_and_untampered() {
        let old = SessionKeys::generate();
        let new = SessionKeys::generate();
        let keys = SessionKeys::new(&[old]).unwrap();
        let r = Record {
            data: serde_json::json!({"user": 42}),
            created_ms: 1,
            idle_ms: 2,
            absolute_ms: 3,
        };
        let sealed = seal_record(&keys, "#sess:auth:aa", &r).unwrap();
        assert_eq!(
            open_record(&keys, "#sess:auth:aa", &sealed).unwrap().data["user"],
            42
        );
        assert!(
            open_record(&keys, "#sess:auth:bb", &sealed).is_none(),
            "moved to another slot"
        );
        for i in 0..sealed.len() {
            let mut t = sealed.to_vec();
            t[i] ^= 0x01;
            assert!(
                open_record(&keys, "#sess:auth:aa", &t).is_none(),
                "bit flip at {i} accepted"
            );
        }
        assert!(open_record(&keys, "#sess:auth:aa", &sealed[..20]).is_none());
        // Rotation: the new key seals, the old one still opens.
        let rotated = SessionKeys::new(&[new, old]).unwrap();
        assert!(open_record(&rotated, "#sess:auth:aa", &sealed).is_some());
        let resealed = seal_record(&rotated, "#sess:auth:aa", &r).unwrap();
        assert!(
            open_record(&keys, "#sess:auth:aa", &resealed).is_none(),
            "the old set lacks the new key"
        );
        // Key material never shows in Debug.
        assert_eq!(format!("{rotated:?}"), "SessionKeys { keys: 2 }");
    }

    #[test]
    fn timeouts_on_a_virtual_clock() {
        let r = Record {
            data: serde_json::Value::Null,
            created_ms: 1000,
            idle_ms: 100,
            absolute_ms: 250,
        };
        assert_eq!(store_ttl(&r, 1000), Some(Duration::from_millis(100)));
        assert_eq!(
            store_ttl(&r, 1200),
            Some(Duration::from_millis(50)),
            "capped by the absolute timeout"
        );
        assert!(!expired(&r, 1249));
        assert!(expired(&r, 1250));
        assert_eq!(store_ttl(&r, 1250), None);
        assert!(check_ttls(Duration::from_secs(10), Duration::from_secs(5)).is_err());
        assert!(check_ttls(Duration::ZERO, Duration::from_secs(5)).is_err());
        assert!(
            check_ttls(
                Duration::from_secs(5),
                MAX_SESSION_TTL + Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
