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
//! * **Imported ids** ([`Sessions::import`], for moving sessions from another store) are
//!   the one exception to "the library picks the id": 16..=256 URL-safe characters
//!   (`A-Z a-z 0-9 - _ . ~`) that must look random (at least [`MIN_IMPORTED_ID_BITS`]
//!   estimated from their character frequencies, which refuses short, repetitive and
//!   low-variety ids, though not every guessable one). They are stored hashed like every
//!   id.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Namespace;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Aux;

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
        crate::random::bytes::<32>()
    }

    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Bytes> {
        let (id, cipher) = &self.keys[0];
        let nonce = crate::random::bytes::<24>();
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
struct Record {
    pub(crate) data: serde_json::Value,
    pub(crate) created_ms: u64,
    pub(crate) idle_ms: u64,
    pub(crate) absolute_ms: u64,
    /// The user whose index lists this session ([`Sessions::create_for`]), so that a
    /// rotation moves the index entry with it. Absent in sessions made by `create` and in
    /// records sealed before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
}

/// Whether a session is past its absolute lifetime at `now_ms` (pure: tests drive it
/// with a virtual clock).
fn expired(r: &Record, now_ms: u64) -> bool {
    now_ms >= r.created_ms.saturating_add(r.absolute_ms)
}

/// What is left of a session's absolute lifetime at `now_ms`, ms (`None`: past it).
fn absolute_left(r: &Record, now_ms: u64) -> Option<u64> {
    r.created_ms
        .saturating_add(r.absolute_ms)
        .checked_sub(now_ms)
}

/// The store TTL for a session at `now_ms`: the idle timeout, capped by what is left of
/// the absolute one. `None` when nothing is left.
fn store_ttl(r: &Record, now_ms: u64) -> Option<Duration> {
    let left = absolute_left(r, now_ms).filter(|l| *l > 0)?;
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

/// Shortest id [`Sessions::import`] takes.
pub const MIN_IMPORTED_ID: usize = 16;
/// Longest session id, imported or not.
pub const MAX_SESSION_ID: usize = 256;
/// Least entropy an imported id must show, in bits (estimated: length times the Shannon
/// entropy of its characters' frequencies). A random UUID shows about 120, a 32-character
/// base64url id about 140, sixteen hex digits about 55.
pub const MIN_IMPORTED_ID_BITS: f64 = 96.0;

/// Characters of a session's handle (a prefix of its slot, the hex SHA-256 of the id).
const HANDLE_LEN: usize = 16;

/// Most users one page of [`Sessions::users`] lists.
pub const MAX_USERS_PAGE: usize = 100;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn new_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>())
}

/// The storage slot of an id, or `None` for a malformed id (never looked up). Ids the
/// library made are 43 base64url characters; imported ones may be any length from
/// [`MIN_IMPORTED_ID`] to [`MAX_SESSION_ID`] of URL-safe characters.
fn slot(id: &str) -> Option<String> {
    if !(MIN_IMPORTED_ID..=MAX_SESSION_ID).contains(&id.len())
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    {
        return None;
    }
    Some(hex::encode(Sha256::digest(id.as_bytes())))
}

/// Estimated entropy of `id` in bits: its length times the Shannon entropy of its
/// characters' frequencies.
fn estimated_bits(id: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in id.bytes() {
        counts[b as usize] += 1;
    }
    let n = id.len() as f64;
    let per_char: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    per_char * n
}

/// Checks an id a caller wants to import, saying what is wrong with it.
fn check_imported_id(id: &str) -> Result<String> {
    let Some(slot) = slot(id) else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "an imported session id is {MIN_IMPORTED_ID}..={MAX_SESSION_ID} characters of \
                 A-Z a-z 0-9 - _ . ~ (this one is {} bytes{})",
                id.len(),
                if id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
                {
                    ""
                } else {
                    ", with other characters"
                }
            ),
        ));
    };
    let bits = estimated_bits(id);
    if bits < MIN_IMPORTED_ID_BITS {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "an imported session id must look random: this one shows about {bits:.0} \
                 bits of entropy, under {MIN_IMPORTED_ID_BITS:.0} (use a longer random id, or \
                 let the session be created with a new one)"
            ),
        ));
    }
    Ok(slot)
}

fn check_ttls(idle: Duration, absolute: Duration) -> Result<()> {
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

fn seal_record(keys: &SessionKeys, storage_key: &str, r: &Record) -> Result<Bytes> {
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

fn open_record(keys: &SessionKeys, storage_key: &str, sealed: &[u8]) -> Option<Record> {
    let plain = keys.open(storage_key.as_bytes(), sealed)?;
    serde_json::from_slice(&plain).ok()
}

/// The sessions of one namespace, got from
/// [`Namespace::sessions`](crate::Namespace::sessions). Cheap to clone.
///
/// ```
/// # async fn demo() -> sharecache::Result<()> {
/// use std::time::Duration;
/// use sharecache::session::SessionKeys;
/// let cache = sharecache::Cache::builder()
///     .memory()
///     .session_keys(SessionKeys::new(&[SessionKeys::generate()])?)
///     .build()
///     .await?;
/// let sessions = cache.namespace("auth")?.sessions();
/// let new = sessions
///     .create(serde_json::json!({"user": 42}), Duration::from_secs(1800), Duration::from_secs(86400))
///     .await?;
/// assert_eq!(sessions.get(&new.id).await?.unwrap().data["user"], 42);
/// assert!(sessions.end(&new.id).await?);
/// assert!(sessions.get(&new.id).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Sessions {
    ns: Namespace,
}

impl Namespace {
    /// The sessions of this namespace (see [`crate::session`]). Their calls fail with a
    /// `Config` error unless the cache has [session keys](crate::CacheBuilder::session_keys).
    pub fn sessions(&self) -> Sessions {
        Sessions { ns: self.clone() }
    }
}

impl Sessions {
    /// Creates a session holding `data`, ending after `idle` without use or `absolute`
    /// after creation, whichever comes first. See [`crate::session`] for the guarantees.
    pub async fn create(
        &self,
        data: serde_json::Value,
        idle: Duration,
        absolute: Duration,
    ) -> Result<NewSession> {
        let (key, sealed, ttl, new) = self.seal_new(None, data, idle, absolute)?;
        self.ns.kv().set(&key, sealed, Some(ttl)).await?;
        Ok(new)
    }

    /// A new session's key, sealed record and TTL, and what its creator is told.
    fn seal_new(
        &self,
        user: Option<&str>,
        data: serde_json::Value,
        idle: Duration,
        absolute: Duration,
    ) -> Result<(String, Bytes, Duration, NewSession)> {
        let keys = self.keys()?;
        check_ttls(idle, absolute)?;
        let now = now_ms();
        let record = Record {
            data,
            created_ms: now,
            idle_ms: idle.as_millis() as u64,
            absolute_ms: absolute.as_millis() as u64,
            user: user.map(str::to_owned),
        };
        let id = new_id();
        let key = self
            .ns
            .space
            .aux_of(Aux::Session, &slot(&id).expect("fresh ids are well formed"));
        let sealed = seal_record(keys, &key, &record)?;
        let ttl = store_ttl(&record, now).expect("a new session has time left");
        let expires_at_ms = now + ttl.as_millis() as u64;
        Ok((key, sealed, ttl, NewSession { id, expires_at_ms }))
    }

    /// Like [`create`](Self::create), and records the session under
    /// `user`, so that [`list`](Self::list) and
    /// [`end_all`](Self::end_all) can find it.
    pub async fn create_for(
        &self,
        user: &str,
        data: serde_json::Value,
        idle: Duration,
        absolute: Duration,
    ) -> Result<NewSession> {
        let index = self.ns.space.aux(Aux::UserSessions, user)?;
        let (key, sealed, ttl, new) = self.seal_new(Some(user), data, idle, absolute)?;
        // The index first: while Redis is down it refuses (see `Coord::index_add` on the
        // fallback), and then nothing was stored that `end_all` could not find.
        let slot = slot(&new.id).expect("fresh ids are well formed");
        self.ns.coord().index_add(&index, &slot, absolute).await?;
        self.ns.kv().set(&key, sealed, Some(ttl)).await?;
        Ok(new)
    }

    /// Creates a session under `id`, an id the caller chose: for moving sessions from
    /// another store (express-session, connect-redis...) without logging everybody out.
    /// The id is checked (see [`crate::session`]: length, characters, entropy) and
    /// refused with `InvalidArgument`; `Ok(None)` and nothing written if a session
    /// already has that id. With `user`, the session is listed under it like one made by
    /// [`create_for`](Self::create_for). Timeouts count from now.
    pub async fn import(
        &self,
        id: &str,
        user: Option<&str>,
        data: serde_json::Value,
        idle: Duration,
        absolute: Duration,
    ) -> Result<Option<NewSession>> {
        let keys = self.keys()?;
        let slot = check_imported_id(id)?;
        let index = user
            .map(|u| self.ns.space.aux(Aux::UserSessions, u))
            .transpose()?;
        check_ttls(idle, absolute)?;
        let now = now_ms();
        let record = Record {
            data,
            created_ms: now,
            idle_ms: idle.as_millis() as u64,
            absolute_ms: absolute.as_millis() as u64,
            user: user.map(str::to_owned),
        };
        let key = self.ns.space.aux_of(Aux::Session, &slot);
        let sealed = seal_record(keys, &key, &record)?;
        let ttl = store_ttl(&record, now).expect("a new session has time left");
        // Created first (atomically, never from the fallback): an id that is taken must
        // not be added to this user's index, where it would list (and let end) a session
        // that may be another user's.
        if !self.ns.kv().create(&key, sealed, Some(ttl)).await? {
            return Ok(None);
        }
        if let Some(index) = index
            && let Err(e) = self.ns.coord().index_add(&index, &slot, absolute).await
        {
            // Unlisted, `end_all` could not find it: take it back.
            let _ = self.ns.kv().del(std::slice::from_ref(&key)).await;
            return Err(e);
        }
        Ok(Some(NewSession {
            id: id.to_owned(),
            expires_at_ms: now + ttl.as_millis() as u64,
        }))
    }

    /// The live sessions of `user`. Each carries a `handle` (not the id, which is never
    /// stored) and its times. Ended or expired sessions are pruned from the index.
    pub async fn list(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let keys = self.keys()?;
        let index = self.ns.space.aux(Aux::UserSessions, user)?;
        let now = now_ms();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for slot in self.ns.coord().index_members(&index).await? {
            let key = self.ns.space.aux_of(Aux::Session, &slot);
            let record = match self.ns.kv().get_with_ttl(&key).await? {
                (Some(sealed), ttl) => open_record(keys, &key, &sealed)
                    .filter(|r| !expired(r, now))
                    .map(|r| (r, ttl)),
                _ => None,
            };
            match record {
                Some((r, ttl)) => out.push(SessionInfo {
                    handle: slot[..HANDLE_LEN].to_owned(),
                    created_ms: r.created_ms,
                    expires_at_ms: now + ttl.map_or(0, |t| t.as_millis() as u64),
                }),
                None => gone.push(slot),
            }
        }
        self.ns.coord().index_remove(&index, &gone).await?;
        out.sort_by_key(|i| i.created_ms);
        Ok(out)
    }

    /// Ends every session of `user` (after a password change, say); returns how many
    /// were live.
    pub async fn end_all(&self, user: &str) -> Result<u64> {
        self.keys()?;
        let index = self.ns.space.aux(Aux::UserSessions, user)?;
        let slots = self.ns.coord().index_members(&index).await?;
        let keys: Vec<String> = slots
            .iter()
            .map(|s| self.ns.space.aux_of(Aux::Session, s))
            .collect();
        let ended = if keys.is_empty() {
            0
        } else {
            self.ns.kv().del(&keys).await?
        };
        self.ns.coord().index_remove(&index, &slots).await?;
        Ok(ended)
    }

    /// Ends the session of `user` whose [handle](SessionInfo::handle) is `handle` (as
    /// [`list`](Self::list) shows it); returns whether one was live. Handles that are not
    /// 16 lowercase hex digits match nothing.
    pub async fn end_handle(&self, user: &str, handle: &str) -> Result<bool> {
        self.keys()?;
        let index = self.ns.space.aux(Aux::UserSessions, user)?;
        if handle.len() != HANDLE_LEN
            || !handle
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Ok(false);
        }
        let slots: Vec<String> = self
            .ns
            .coord()
            .index_members(&index)
            .await?
            .into_iter()
            .filter(|s| s.starts_with(handle))
            .collect();
        if slots.is_empty() {
            return Ok(false);
        }
        let keys: Vec<String> = slots
            .iter()
            .map(|s| self.ns.space.aux_of(Aux::Session, s))
            .collect();
        let ended = self.ns.kv().del(&keys).await?;
        self.ns.coord().index_remove(&index, &slots).await?;
        Ok(ended > 0)
    }

    /// Counts this namespace's live sessions by walking their keys (SCAN in bounded
    /// steps, never `KEYS`), stopping at `limit`: `truncated` says there are more.
    /// Needs no session keys: nothing is opened.
    pub async fn count(&self, limit: u64) -> Result<crate::MatchCount> {
        let mut keys = 0u64;
        let mut cursor: Option<String> = None;
        // SCAN may answer empty pages: the step bound keeps a sparse walk finite.
        for _ in 0..limit / 10 + 1000 {
            let page = self
                .ns
                .aux_names(Aux::Session, cursor.as_deref(), 1000)
                .await?;
            keys += page.keys.len() as u64;
            if keys >= limit {
                return Ok(crate::MatchCount {
                    keys: limit,
                    truncated: true,
                });
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => {
                    return Ok(crate::MatchCount {
                        keys,
                        truncated: false,
                    });
                }
            }
        }
        Ok(crate::MatchCount {
            keys,
            truncated: true,
        })
    }

    /// The users with sessions recorded by [`create_for`](Self::create_for), at most
    /// `count` per page (clamped to 1..=[`MAX_USERS_PAGE`]); pass the cursor back for
    /// more. A user's index outlives its sessions by at most their absolute timeout
    /// ([`list`](Self::list) prunes it), so a listed user may have none left.
    pub async fn users(&self, cursor: Option<&str>, count: usize) -> Result<crate::KeyPage> {
        self.ns
            .aux_names(Aux::UserSessions, cursor, count.clamp(1, MAX_USERS_PAGE))
            .await
    }

    /// Reads a session and renews its idle timeout. `None` for an unknown, expired,
    /// malformed or tampered id.
    pub async fn get(&self, id: &str) -> Result<Option<SessionData>> {
        let Some((key, record)) = self.load(id).await? else {
            return Ok(None);
        };
        let now = now_ms();
        let Some(ttl) = store_ttl(&record, now) else {
            return Ok(None);
        };
        // Renew: re-seal (fresh nonce) with the idle TTL, capped by the absolute one.
        let sealed = seal_record(self.keys()?, &key, &record)?;
        self.ns.kv().set(&key, sealed, Some(ttl)).await?;
        Ok(Some(SessionData {
            data: record.data,
            created_ms: record.created_ms,
            expires_at_ms: now + ttl.as_millis() as u64,
        }))
    }

    /// Replaces a session's data (and renews it); `false` if there is no such session.
    pub async fn update(&self, id: &str, data: serde_json::Value) -> Result<bool> {
        let Some((key, mut record)) = self.load(id).await? else {
            return Ok(false);
        };
        record.data = data;
        let Some(ttl) = store_ttl(&record, now_ms()) else {
            return Ok(false);
        };
        let sealed = seal_record(self.keys()?, &key, &record)?;
        self.ns.kv().set(&key, sealed, Some(ttl)).await?;
        Ok(true)
    }

    /// Ends a session now; `false` if there was none.
    pub async fn end(&self, id: &str) -> Result<bool> {
        self.keys()?;
        let Some(slot) = slot(id) else {
            return Ok(false);
        };
        Ok(self
            .ns
            .kv()
            .del(&[self.ns.space.aux_of(Aux::Session, &slot)])
            .await?
            > 0)
    }

    /// Gives a session a new id (after a login or a privilege change): the same data and
    /// deadlines under a fresh id; the old id is dead at once. `None` if there was none.
    pub async fn rotate(&self, id: &str) -> Result<Option<NewSession>> {
        let Some((old_key, record)) = self.load(id).await? else {
            return Ok(None);
        };
        let now = now_ms();
        let Some(ttl) = store_ttl(&record, now) else {
            return Ok(None);
        };
        let new_id = new_id();
        let new_slot = slot(&new_id).expect("fresh ids are well formed");
        let key = self.ns.space.aux_of(Aux::Session, &new_slot);
        let sealed = seal_record(self.keys()?, &key, &record)?;
        // A listed session stays listed: the new slot joins its user's index before the
        // new id exists (so `end_all` can always find it), the old one leaves after the
        // old id is dead.
        let index = match &record.user {
            Some(user) => {
                let index = self.ns.space.aux(Aux::UserSessions, user)?;
                let left = absolute_left(&record, now).unwrap_or(0);
                self.ns
                    .coord()
                    .index_add(&index, &new_slot, Duration::from_millis(left.max(1)))
                    .await?;
                Some(index)
            }
            None => None,
        };
        self.ns.kv().set(&key, sealed, Some(ttl)).await?;
        self.ns.kv().del(&[old_key]).await?;
        if let Some(index) = index {
            let old_slot = slot(id).expect("a loaded id is well formed");
            self.ns.coord().index_remove(&index, &[old_slot]).await?;
        }
        Ok(Some(NewSession {
            id: new_id,
            expires_at_ms: now + ttl.as_millis() as u64,
        }))
    }

    async fn load(&self, id: &str) -> Result<Option<(String, Record)>> {
        let keys = self.keys()?;
        let Some(slot) = slot(id) else {
            return Ok(None);
        };
        let key = self.ns.space.aux_of(Aux::Session, &slot);
        let Some(sealed) = self.ns.kv().get(&key).await? else {
            return Ok(None);
        };
        let Some(record) = open_record(keys, &key, &sealed) else {
            tracing::warn!(namespace = %self.ns.name, "a session did not open (tampered, or sealed with an unknown key)");
            return Ok(None);
        };
        if expired(&record, now_ms()) {
            self.ns.kv().del(std::slice::from_ref(&key)).await?;
            return Ok(None);
        }
        Ok(Some((key, record)))
    }

    fn keys(&self) -> Result<&SessionKeys> {
        self.ns.inner.session_keys.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "sessions need keys: CacheBuilder::keys (service: [sessions] keys)",
            )
        })
    }
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
            &"a".repeat(257),
            &format!("{}=", "a".repeat(42)),
            &format!("{}/", "a".repeat(42)),
            &format!("{} ", "a".repeat(42)),
        ] {
            assert!(slot(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn imported_ids_must_be_long_url_safe_and_random_looking() {
        // What other stores hand out: a UUID v4, express-session's 32 base64url
        // characters, 64 hex digits, this library's own ids.
        for good in [
            "9b2d6a4e-3c1f-4f8a-b7e2-5d9c0a1e8f47",
            "eZbsxpMWD0Bf3hBqJ1hS2nuckVUiLhQz",
            "4f9a1c0e7b3d52a8e6f1094b7c2d8a3e5f60b1c7d9e2a4f8b3c5d7e9f0a1b2c3",
            &new_id(),
        ] {
            assert!(
                check_imported_id(good).is_ok(),
                "{good}: {:.0} bits",
                estimated_bits(good)
            );
        }
        for (bad, why) in [
            ("0123456789abcdef", "look random"),
            (&"a".repeat(64) as &str, "look random"),
            (&"ab".repeat(40), "look random"),
            ("session-of-ada-lovelace", "look random"),
            ("short", "characters of"),
            ("has space in it and is long enough", "characters of"),
            ("sl/ash0123456789abcdef0123456789", "characters of"),
        ] {
            let e = check_imported_id(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(why), "{bad}: {e}");
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
            user: None,
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
            user: None,
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
