//! Distributed locks with fencing tokens.
//!
//! `acquire` takes the lock with a random token and a TTL and, in the same atomic step,
//! draws the next *fence* from a counter that never expires: fences are strictly
//! increasing in acquisition order. Release and extend act only if the caller's token
//! still holds the lock (compare-and-act scripts on Redis; the store's compare-and-set
//! lock in memory).
//!
//! A lock with a TTL can be lost without the holder knowing (a long GC pause, a process
//! stopped past the TTL). Fences make that safe: a resource that remembers the highest
//! fence it accepted rejects a write carrying an older one (`tests/lock.rs` shows such a
//! resource rejecting a holder that slept past its TTL).
//!
//! [`LockGuard`] extends its lock every third of the TTL and signals when an extension
//! fails ([`LockGuard::lost`]); drop releases it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::{Error, ErrorKind, Result};

/// Longest lock TTL accepted: one day.
pub const MAX_LOCK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest wait for a lock: one hour.
pub const MAX_LOCK_WAIT: Duration = Duration::from_secs(3600);

/// A held lock: the token that proves ownership and the fence to hand to resources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockLease {
    /// Proof of ownership (random, 128 bits, hex).
    pub token: String,
    /// Strictly increasing per lock, in acquisition order.
    pub fence: u64,
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < Duration::from_millis(1) || ttl > MAX_LOCK_TTL {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "lock ttl must be between 1 ms and {} s",
                MAX_LOCK_TTL.as_secs()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_wait(wait: Duration) -> Result<()> {
    if wait > MAX_LOCK_WAIT {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("lock wait must be at most {} s", MAX_LOCK_WAIT.as_secs()),
        ));
    }
    Ok(())
}

/// A random 128-bit token, hex.
pub(crate) fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", part(), part())
}

/// A lock held by this process, extended in the background until dropped or released.
#[derive(Debug)]
pub struct LockGuard {
    pub(crate) ns: crate::Namespace,
    pub(crate) name: String,
    pub(crate) lease: LockLease,
    pub(crate) lost: watch::Receiver<bool>,
    pub(crate) keeper: Option<tokio::task::JoinHandle<()>>,
}

impl LockGuard {
    /// The fence of this acquisition.
    pub fn fence(&self) -> u64 {
        self.lease.fence
    }

    /// The token of this acquisition.
    pub fn token(&self) -> &str {
        &self.lease.token
    }

    /// Whether an extension failed: the lock may now be held by someone else.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lock is lost (an extension failed).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|l| *l).await;
    }

    /// Releases the lock now; `false` if it was no longer ours.
    pub async fn release(mut self) -> Result<bool> {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
        let r = self.ns.lock_release(&self.name, &self.lease.token).await;
        self.lease.token.clear(); // nothing left for Drop to release
        r
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
        if !self.lease.token.is_empty()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (ns, name, token) = (self.ns.clone(), self.name.clone(), self.lease.token.clone());
            rt.spawn(async move {
                let _ = ns.lock_release(&name, &token).await;
            });
        }
    }
}

/// Extends the lock every `ttl / 3`; on the first failure, signals `lost` and stops.
pub(crate) fn spawn_keeper(
    ns: crate::Namespace,
    name: String,
    token: String,
    ttl: Duration,
    lost: watch::Sender<bool>,
) -> tokio::task::JoinHandle<()> {
    let token = Arc::new(token);
    tokio::spawn(async move {
        let every = (ttl / 3).max(Duration::from_millis(1));
        loop {
            tokio::time::sleep(every).await;
            match ns.lock_extend(&name, &token, ttl).await {
                Ok(true) => {}
                _ => {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    })
}

pub(crate) fn token_bytes(token: &str) -> Bytes {
    Bytes::copy_from_slice(token.as_bytes())
}
