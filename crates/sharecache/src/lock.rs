//! Distributed locks with fencing tokens: [`Locks`], got from
//! [`Namespace::locks`](crate::Namespace::locks).
//!
//! ```
//! # async fn demo() -> sharecache::Result<()> {
//! use std::time::Duration;
//! let chat = sharecache::Cache::builder().memory().build().await?.namespace("chat")?;
//! let locks = chat.locks();
//! let guard = locks.acquire("room:1", Duration::from_secs(10), Duration::ZERO).await?.unwrap();
//! assert!(locks.acquire("room:1", Duration::from_secs(10), Duration::ZERO).await?.is_none());
//! let fence = guard.fence();          // hand this to the resource the lock protects
//! guard.release().await?;
//! let next = locks.acquire("room:1", Duration::from_secs(10), Duration::ZERO).await?.unwrap();
//! assert!(next.fence() > fence);      // fences strictly increase
//! # Ok(()) }
//! ```
//!
//! `acquire` takes the lock with a random token and a TTL and, in the same atomic step,
//! draws the next *fence*: max(a counter that never expires + 1, the store's clock in
//! microseconds). Fences are strictly increasing in acquisition order, and stay so when
//! Redis loses the counter (a restart without persistence, an `allkeys-*` eviction): the
//! clock part is then above every earlier fence. Release and extend act only if the
//! caller's token still holds the lock (compare-and-act scripts on Redis; the store's
//! compare-and-set lock in memory). While Redis is down, acquire, extend and release all
//! fail with `Unavailable`: memory cannot tell who holds a lock in Redis.
//!
//! **An acquire that failed is never left holding the lock.** When acquiring times out or
//! its connection drops, Redis may still run the command (a paused server runs what sits
//! in its socket when it resumes): the lock would then be held by nobody for its whole
//! TTL. So such a failure starts a background release with the attempt's token, retried
//! (backoff up to 1 s) until Redis answers or the TTL has passed, and made once more half
//! a second after a first "not held"; a release with a token nobody holds changes
//! nothing.
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

use crate::Namespace;
use crate::cache::poll_until;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Aux;

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

fn check_ttl(ttl: Duration) -> Result<()> {
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

/// The locks of one namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Locks {
    ns: Namespace,
}

impl Namespace {
    /// The locks of this namespace (see [`crate::lock`]).
    pub fn locks(&self) -> Locks {
        Locks { ns: self.clone() }
    }
}

impl Locks {
    /// Takes lock `name` (waiting up to `wait`; zero: try once) and keeps it: a
    /// background task extends it every `ttl / 3` until the guard is released or dropped,
    /// and the guard reports when an extension fails ([`LockGuard::lost`]). `None` if it
    /// stayed held by someone else.
    pub async fn acquire(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<LockGuard>> {
        let Some(lease) = self.acquire_lease(name, ttl, wait).await? else {
            return Ok(None);
        };
        let (tx, rx) = watch::channel(false);
        let keeper = spawn_keeper(self.clone(), name.to_owned(), lease.token.clone(), ttl, tx);
        Ok(Some(LockGuard {
            locks: self.clone(),
            name: name.to_owned(),
            lease,
            lost: rx,
            keeper: Some(keeper),
        }))
    }

    /// Takes lock `name` for `ttl` without keeping it (the caller extends and releases
    /// it with the lease's token, as the HTTP service does). `None` if it stayed held.
    pub async fn acquire_lease(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<LockLease>> {
        check_ttl(ttl)?;
        check_wait(wait)?;
        let space = &self.ns.space;
        let (key, fence_key) = (&space.aux(Aux::Lock, name)?, &space.aux(Aux::Fence, name)?);
        poll_until(wait, Duration::from_millis(50), || async move {
            let token = crate::random::hex::<16>();
            let fence = match self
                .ns
                .coord()
                .lock_acquire(key, fence_key, token_bytes(&token), ttl)
                .await
            {
                Ok(fence) => fence,
                Err(e) => {
                    if e.is_unavailable() {
                        self.compensate(key.clone(), token, ttl);
                    }
                    return Err(e);
                }
            };
            Ok(fence.map(|fence| LockLease { token, fence }))
        })
        .await
    }

    /// Releases, in the background, what a failed acquire with `token` may still take
    /// once Redis runs it: retried until Redis answers or `ttl` has passed.
    fn compensate(&self, key: String, token: String, ttl: Duration) {
        let locks = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + ttl;
            let mut backoff = Duration::from_millis(50);
            // "Not held" once is not proof: the stalled acquire may sit on another
            // connection that the server has not read yet. Look once more, later.
            let mut looked_again = false;
            loop {
                match locks.ns.coord().lock_release(&key, token_bytes(&token)).await {
                    Ok(true) => {
                        tracing::info!(lock = %key, "released a lock a failed acquire took after all");
                        return;
                    }
                    Ok(false) if looked_again => return,
                    Ok(false) => {
                        looked_again = true;
                        backoff = Duration::from_millis(500);
                    }
                    Err(e) if e.is_unavailable() => {}
                    Err(e) => {
                        tracing::warn!(lock = %key, error = %e, "could not release a lock a failed acquire may hold");
                        return;
                    }
                }
                if tokio::time::Instant::now() + backoff >= deadline {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        });
    }

    /// Releases lock `name` if `token` holds it; returns whether it did.
    pub async fn release(&self, name: &str, token: &str) -> Result<bool> {
        let key = self.ns.space.aux(Aux::Lock, name)?;
        self.ns.coord().lock_release(&key, token_bytes(token)).await
    }

    /// Sets a new TTL on lock `name` if `token` holds it; returns whether it did.
    pub async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(ttl)?;
        let key = self.ns.space.aux(Aux::Lock, name)?;
        self.ns
            .coord()
            .lock_extend(&key, token_bytes(token), ttl)
            .await
    }
}

/// Most locks one page of [`Locks::held`] shows: each costs a TTL read.
pub const MAX_HELD_PAGE: usize = 100;

/// A lock someone holds, as an operator sees it: never its holder's token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeldLock {
    /// The lock's name.
    pub name: String,
    /// Time left before it expires unless extended (`None`: no expiry, which the library
    /// never sets; a lock written by another client could have none).
    pub ttl: Option<Duration>,
    /// The fence last drawn for it: the holder's, unless it was taken again meanwhile.
    pub fence: u64,
}

/// A page of [`Locks::held`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct HeldLocks {
    /// The locks held, in the listing's order.
    pub locks: Vec<HeldLock>,
    /// Pass back to list on; `None` when the listing is complete.
    pub cursor: Option<String>,
}

impl Locks {
    /// The locks held in this namespace now, at most `count` per page (clamped to
    /// 1..=[`MAX_HELD_PAGE`]), with the time each has left and its current fence; never
    /// the holder's token. Listed by SCAN (bounded steps, a cursor: never `KEYS`), so
    /// it stays cheap however many keys the store holds. A lock released or expired
    /// between the listing and the TTL read is left out.
    pub async fn held(&self, cursor: Option<&str>, count: usize) -> Result<HeldLocks> {
        let count = count.clamp(1, MAX_HELD_PAGE);
        let page = self.ns.aux_names(Aux::Lock, cursor, count).await?;
        let space = &self.ns.space;
        let fences: Vec<String> = page
            .keys
            .iter()
            .map(|n| space.aux_of(Aux::Fence, n))
            .collect();
        let fence_values = if fences.is_empty() {
            Vec::new()
        } else {
            self.ns.kv().mget(&fences).await?
        };
        let ttls = futures_util::future::try_join_all(
            page.keys
                .iter()
                .map(|n| async move { self.ns.kv().pttl(&space.aux_of(Aux::Lock, n)).await }),
        )
        .await?;
        let locks = page
            .keys
            .into_iter()
            .zip(ttls)
            .zip(fence_values)
            .filter_map(|((name, ttl), fence)| {
                let fence = fence
                    .and_then(|f| std::str::from_utf8(&f).ok()?.parse().ok())
                    .unwrap_or(0);
                Some(HeldLock {
                    name,
                    ttl: ttl?,
                    fence,
                })
            })
            .collect();
        Ok(HeldLocks {
            locks,
            cursor: page.cursor,
        })
    }
}

/// A lock held by this process, extended in the background until dropped or released.
#[derive(Debug)]
pub struct LockGuard {
    locks: Locks,
    name: String,
    lease: LockLease,
    lost: watch::Receiver<bool>,
    keeper: Option<tokio::task::JoinHandle<()>>,
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
        let r = self.locks.release(&self.name, &self.lease.token).await;
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
            let (locks, name) = (self.locks.clone(), self.name.clone());
            let token = self.lease.token.clone();
            rt.spawn(async move {
                let _ = locks.release(&name, &token).await;
            });
        }
    }
}

/// Extends the lock every `ttl / 3`; on the first failure, signals `lost` and stops.
fn spawn_keeper(
    locks: Locks,
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
            match locks.extend(&name, &token, ttl).await {
                Ok(true) => {}
                _ => {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    })
}

fn token_bytes(token: &str) -> Bytes {
    Bytes::copy_from_slice(token.as_bytes())
}
